"""`QdrantEdgeSink` across processes: an ingest killed with SIGKILL resumes to exactly what an uninterrupted
run stores; a collection open in another process is busy and names it; an unclosed sink exits cleanly.

No engine: FakeHashEmbedder vectors (the store is what is under test).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import stop_process_tree
from ingest_fixtures import FakeHashEmbedder, open_sink

from vllm_embed.errors import StoreBusyError
from vllm_embed.ingest import ingest
from vllm_embed.sinks import QdrantEdgeSink

TEXTS = [f"passage {i}: " + " ".join(f"word{(i * 7 + j) % 97}" for j in range(12)) for i in range(400)]
BATCH = 8

SLOW_INGEST = """
import sys, time
from pathlib import Path
from ingest_fixtures import FakeHashEmbedder, open_sink
from vllm_embed.ingest import ingest

class Slow(FakeHashEmbedder):
    def embed_documents(self, texts):
        time.sleep(0.02)
        return super().embed_documents(texts)

texts = [line for line in sys.stdin.read().split("\\n") if line]
sink = open_sink("qdrant-edge", Path(sys.argv[1]), quantization="int8", index_fields=["lang"])
upsert = sink.upsert
def reporting_upsert(chunks, vectors):
    upsert(chunks, vectors)
    print(len(chunks), flush=True)  # acknowledged by the engine
sink.upsert = reporting_upsert
ingest(texts, embedder=Slow(), sink=sink, batch_size=int(sys.argv[2]), progress=False)
"""

HOLDER = """
import sys, time
from pathlib import Path
from ingest_fixtures import FakeHashEmbedder, open_sink
from vllm_embed.ingest import ingest
sink = open_sink("qdrant-edge", Path(sys.argv[1]))
ingest(["held"], embedder=FakeHashEmbedder(), sink=sink, progress=False)
print("ready", flush=True)
time.sleep(600)
"""

UNCLOSED = """
import gc, sys
from pathlib import Path
from ingest_fixtures import FakeHashEmbedder, open_sink
from vllm_embed.ingest import ingest

gc.disable()
class App:
    pass
app = App()
app.itself, app.sink = app, open_sink("qdrant-edge", Path(sys.argv[1]))
ingest(["one", "two"], embedder=FakeHashEmbedder(), sink=app.sink, progress=False)
print(app.sink.count())
"""


def python(script: str, *args: str, **kwargs) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args], text=True, env=env, **kwargs
    )


def stored(sink: QdrantEdgeSink) -> dict[str, tuple[str, np.ndarray]]:
    vectors = {point_id: vector for batch in sink.iter_vectors(256) for point_id, vector in batch}
    texts = sink.fetch_texts(sorted(vectors))
    return {point_id: (texts[point_id], vector) for point_id, vector in vectors.items()}


def test_sigkill_mid_ingest_then_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    crashed, reference = tmp_path / "crashed", tmp_path / "reference"
    process = python(SLOW_INGEST, str(crashed), str(BATCH), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("\n".join(TEXTS))
    process.stdin.close()
    acknowledged = 0
    try:
        while acknowledged < 10 * BATCH:
            line = process.stdout.readline()
            assert line, f"the ingest ended early (exit code {process.wait()})"
            acknowledged += int(line)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    fake = FakeHashEmbedder()
    with open_sink("qdrant-edge", crashed) as sink:
        partial = sink.count()
        assert acknowledged <= partial < len(TEXTS), (
            "every acknowledged point survives; the kill lands mid-run"
        )
        report = ingest(TEXTS, embedder=fake, sink=sink, batch_size=BATCH, progress=False)
        assert (report.skipped, report.embedded, sink.count()) == (partial, len(TEXTS) - partial, len(TEXTS))
        resumed = stored(sink)
        info = sink.info()
    assert info.storage["quantization"] == "int8" and set(info.payload_indexes) == {"doc_id", "metadata.lang"}

    with open_sink("qdrant-edge", reference, quantization="int8") as sink:
        ingest(TEXTS, embedder=fake, sink=sink, batch_size=BATCH, progress=False)
        expected = stored(sink)
    assert sorted(resumed) == sorted(expected)
    for point_id, (text, vector) in expected.items():
        assert resumed[point_id][0] == text
        np.testing.assert_allclose(resumed[point_id][1], vector, atol=1e-6)


def test_a_collection_open_in_another_process_is_busy_and_names_it(tmp_path: Path) -> None:
    holder = python(HOLDER, str(tmp_path), stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreBusyError) as failure:
            open_sink("qdrant-edge", tmp_path)
        message = str(failure.value)
        assert "is open elsewhere" in message and f"PID {holder.pid}: " in message and "-c" in message
        with open_sink("qdrant-edge", tmp_path, collection="other") as other:  # other collections are free
            assert other.read_manifest() is None
    finally:
        stop_process_tree(holder.pid)
    with open_sink("qdrant-edge", tmp_path) as sink:
        assert sink.count() == 1


def test_an_unclosed_sink_releases_its_collection_at_exit_without_a_traceback(tmp_path: Path) -> None:
    process = python(UNCLOSED, str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = process.communicate(timeout=120)
    assert (process.returncode, stdout.strip(), stderr) == (0, "2", "")
    with open_sink("qdrant-edge", tmp_path) as sink:
        assert sink.count() == 2
