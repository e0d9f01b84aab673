"""Ray Data scale-out on a local Ray (2 CPUs): the same vectors, points and resumption as the single-process
ingest. Each test starts its own replicas (Ray Data actors live for one dataset run), so they are slow:
all but the CLI ingest into a Qdrant path are marked `slow` (`make test-slow`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from cli_helpers import run
from ingest_fixtures import assert_same_store, dump_store

from vllm_embed import Embedder
from vllm_embed.datasets import python_docstrings
from vllm_embed.ingest import ingest, load_path, search
from vllm_embed.ingest.duplicates import OnDuplicate
from vllm_embed.sinks import MilvusSink, QdrantSink

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.usefixtures("ray_local")

BATCH = 16
LIMIT_SECONDS = 900  # a safety net for a wedged run, not a timing assertion


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ray-corpus") / "docstrings.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in python_docstrings(limit=120)))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("replicas", [1, 2])
def test_embed_dataset_equals_embed_documents(
    replicas: int, minilm_path: str, minilm_embedder: Embedder
) -> None:
    from vllm_embed.ray_data import embed_dataset

    texts = [f"text {i}: " + "a few words about vectors " * (i % 5) for i in range(40)]
    ds = ray.data.from_items([{"id": i, "text": t, "extra": f"x{i}"} for i, t in enumerate(texts)])
    rows = embed_dataset(ds, model=minilm_path, dtype="float32", replicas=replicas, batch_size=8).take_all()
    rows.sort(key=lambda row: row["id"])
    assert [(r["text"], r["extra"]) for r in rows] == [(t, f"x{i}") for i, t in enumerate(texts)]
    vectors = np.stack([r["embedding"] for r in rows])
    assert vectors.dtype == np.float32 and vectors.shape == (40, 384)
    assert _cosines(vectors, minilm_embedder.embed_documents(texts)).min() >= 0.999


@pytest.mark.slow
def test_embed_dataset_query_kind_uses_the_query_prompt(
    tiny_qwen3_path: Path, qwen3_embedder: Embedder
) -> None:
    from vllm_embed.ray_data import embed_dataset

    queries = ["what is a vector database?", "how fast is vllm?"]
    ds = ray.data.from_items([{"id": i, "text": q} for i, q in enumerate(queries)])
    rows = sorted(
        embed_dataset(ds, model=str(tiny_qwen3_path), dtype="float32", kind="query").take_all(),
        key=lambda row: row["id"],
    )
    vectors = np.stack([r["embedding"] for r in rows])
    assert _cosines(vectors, qwen3_embedder.embed_queries(queries)).min() >= 0.999
    assert _cosines(vectors, qwen3_embedder.embed_documents(queries)).max() < 0.999


def _reference(
    kind: str,
    root: Path,
    corpus: Path,
    embedder: Embedder,
    milvus_uri: str | None,
    *more: Path,
    on_duplicate: OnDuplicate = "error",
) -> dict[str, Any]:
    sink = (
        QdrantSink("docs", path=str(root / "reference"))
        if kind == "qdrant"
        else MilvusSink("reference", uri=milvus_uri)
    )
    with sink:
        documents = [doc for path in (corpus, *more) for doc in load_path(path)]
        ingest(
            documents,
            embedder=embedder,
            sink=sink,
            batch_size=BATCH,
            progress=False,
            on_duplicate=on_duplicate,
        )
        hits = [h.id for h in search("how do I open a file?", embedder=embedder, sink=sink, top_k=5)]
        manifest = sink.read_manifest()
        assert manifest is not None
        chunking = {name: getattr(manifest, name) for name in ("splitter", "chunk_tokens", "chunk_overlap")}
        return {"points": dump_store(sink), "hits": hits, "chunking": chunking}


@pytest.fixture(scope="module")
def markdown_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Markdown file of several 512-token chunks: the loaders have it split along headings."""
    sections = [
        f"## Section {i}\n\n" + f"Paragraph {i} about opening files and reading them line by line. " * 12
        for i in range(12)
    ]
    path = tmp_path_factory.mktemp("ray-markdown") / "guide.md"
    path.write_text("# Guide\n\n" + "\n\n".join(sections) + "\n")
    return path


@pytest.fixture(scope="module")
def updates_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Newer versions of two documents of `corpus_file`, one of them twice (`--on-duplicate last`)."""
    rows = [
        {"id": "abc.ABC", "text": "An abstract base class, first update.", "module": "abc"},
        {"id": "abc.abstractmethod", "text": "Marks a method abstract (updated).", "module": "abc"},
        {"id": "abc.ABC", "text": "An abstract base class, second update. " * 40, "module": "abc"},
    ]
    path = tmp_path_factory.mktemp("ray-updates") / "updates.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("kind", ["qdrant", pytest.param("milvus-server", marks=pytest.mark.slow)])
def test_cli_ray_ingest_equals_the_single_process_ingest(
    kind: str,
    tmp_path: Path,
    corpus_file: Path,
    markdown_file: Path,
    updates_file: Path,
    minilm_path: str,
    minilm_embedder: Embedder,
    request: Any,
) -> None:
    uri = request.getfixturevalue("milvus_server") if kind == "milvus-server" else None
    target = ["--qdrant", str(tmp_path / "ray")] if kind == "qdrant" else ["--milvus", str(uri), "-c", "ray"]
    args = [
        "ingest",
        str(corpus_file),
        str(markdown_file),
        str(updates_file),
        "--on-duplicate",
        "last",
        "-m",
        minilm_path,
        "--dtype",
        "float32",
        "--batch-size",
        str(BATCH),
    ]
    args += ["--no-progress", "--ray", "local", "--replicas", "2", *target]
    if kind == "qdrant":
        args += ["-c", "docs"]
    code, out, err = run(*args)
    assert code == 0, err[-3000:]
    assert "replicas:" in out and "0 already stored" in out
    assert "3 earlier versions of repeated ids dropped" in out

    expected = _reference(
        kind, tmp_path, corpus_file, minilm_embedder, uri, markdown_file, updates_file, on_duplicate="last"
    )
    assert expected["chunking"]["splitter"] == "text" and expected["chunking"]["chunk_tokens"] is not None
    sink = QdrantSink("docs", path=str(tmp_path / "ray")) if kind == "qdrant" else MilvusSink("ray", uri=uri)
    with sink:
        manifest = sink.read_manifest()
        assert manifest is not None
        assert {name: getattr(manifest, name) for name in expected["chunking"]} == expected["chunking"]
        assert_same_store(dump_store(sink), expected["points"])
        hits = [h.id for h in search("how do I open a file?", embedder=minilm_embedder, sink=sink, top_k=5)]
        assert hits == expected["hits"]


def _qdrant_points(path: Path) -> int:
    """Points the running driver has committed, read from the store's SQLite file beside its client.

    A read-write connection (used for reading only) sees a WAL-mode database as it is being written; a
    `mode=ro` one cannot open it while the writer holds the WAL's shared memory.
    """
    storage = path / "collection" / "docs" / "storage.sqlite"
    if not storage.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(storage, timeout=0.1)) as db:
            return int(db.execute("select count(*) from points").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


@pytest.fixture(scope="module")
def larger_corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough chunks that a kill after the first write lands mid-run."""
    path = tmp_path_factory.mktemp("ray-corpus-larger") / "docstrings.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in python_docstrings(limit=400)))
    return path


@pytest.mark.slow
def test_sigkill_of_the_driver_then_rerun_embeds_only_what_is_missing(
    tmp_path: Path, larger_corpus_file: Path, minilm_path: str, minilm_embedder: Embedder
) -> None:
    corpus_file = larger_corpus_file
    store = tmp_path / "qdrant"
    command = [sys.executable, "-m", "vllm_embed.cli", "ingest", str(corpus_file), "-m", minilm_path]
    command += ["--dtype", "float32", "-c", "docs", "--qdrant", str(store), "--batch-size", str(BATCH)]
    command += ["--no-progress", "--ray", "local", "--replicas", "1"]
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as err:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + LIMIT_SECONDS
        while _qdrant_points(store) == 0:
            assert process.poll() is None, stderr.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the ingest never wrote anything"
            time.sleep(0.01)
    finally:
        # The driver and everything it started (its local Ray, the replica and its engine) die at once.
        tree = [process, *psutil.Process(process.pid).children(recursive=True)]
        os.killpg(process.pid, signal.SIGKILL)
        for member in tree:
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                member.kill()
        process.wait()

    from vllm_embed.config import EmbedderConfig
    from vllm_embed.ray_data import ingest_paths

    with QdrantSink("docs", path=str(store)) as sink:
        partial = sink.count()
        report = ingest_paths(
            [corpus_file],
            sink=sink,
            config=EmbedderConfig(model=minilm_path, dtype="float32"),
            batch_size=BATCH,
            progress=False,
        )
        assert 0 < partial < report.chunks, "the kill must land mid-ingest"
        assert report.skipped == partial and report.embedded == report.chunks - partial
        resumed = dump_store(sink)
    assert len(resumed) == report.chunks
    assert_same_store(resumed, _reference("qdrant", tmp_path, corpus_file, minilm_embedder, None)["points"])


@pytest.mark.slow
def test_a_killed_replica_is_restarted_and_the_run_completes(
    tmp_path: Path, larger_corpus_file: Path, minilm_path: str, minilm_embedder: Embedder
) -> None:
    from vllm_embed.ray_data import ingest_dataset

    # The larger corpus keeps the replica embedding for several seconds after its first write.
    records = [json.loads(line) for line in larger_corpus_file.read_text().splitlines()]
    ds = ray.data.from_items(records)
    killed: list[int] = []

    with QdrantSink("docs", path=str(tmp_path / "q")) as sink:

        def kill_the_replica_once_it_has_written() -> None:
            deadline = time.monotonic() + LIMIT_SECONDS
            while time.monotonic() < deadline and not killed:
                replicas = [
                    p
                    for p in psutil.process_iter(["cmdline"])
                    if "IngestReplica" in " ".join(p.info["cmdline"] or [])
                ]
                if replicas and sink.count() > 0:
                    for replica in replicas:
                        for member in [*replica.children(recursive=True), replica]:
                            member.kill()
                        killed.append(replica.pid)
                time.sleep(0.2)

        killer = threading.Thread(target=kill_the_replica_once_it_has_written, daemon=True)
        killer.start()
        report = ingest_dataset(
            ds,
            sink=sink,
            model=minilm_path,
            dtype="float32",
            batch_size=BATCH,
            id_column=None,
            progress=False,
        )
        killer.join()
        assert killed, "no replica was killed"
        assert report.written == report.chunks == sink.count()
        stored = dump_store(sink)

    with QdrantSink("docs", path=str(tmp_path / "reference")) as reference:
        ingest(records, embedder=minilm_embedder, sink=reference, batch_size=BATCH, progress=False)
        assert_same_store(stored, dump_store(reference))
