"""The `vllm-embed ingest` command `advise` prints, when run, creates exactly the recommended collection."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from advise_corpus import stdlib_documents
from cli_helpers import run

from vllm_embed import Embedder


def test_the_printed_ingest_command_creates_the_recommended_collection(
    qwen3_embedder: Embedder, tiny_qwen3_path: Path, tmp_path: Path
) -> None:
    # The CLI's engines share the session's tiny-Qwen3 engine (same model and engine settings).
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(row) + "\n" for row in stdlib_documents(120)))
    model = str(tiny_qwen3_path)
    # A low target makes the recommendation a truncated, quantized configuration.
    args = ["advise", str(corpus), "-m", model, "--dtype", "float32", "--sample", "100", "--held-out", "20"]
    args += ["--target-recall", "0.5"]
    code, stdout, stderr = run(*args, "--json")
    assert code == 0, stderr
    best = json.loads(stdout)["recommendation"]
    assert best["dimensions"] < 64 or best["quantization"] != "float32"

    code, stdout, stderr = run(*args)
    assert code == 0, stderr
    (line,) = [line for line in stdout.splitlines() if line.startswith("vllm-embed ingest ")]
    store = tmp_path / "edge"
    words = [{"NAME": "advised", "DIR": str(store)}.get(word, word) for word in shlex.split(line)[1:]]
    assert words[words.index("--dtype") + 1] == "float32"  # the engine flags are repeated
    code, _stdout, stderr = run(*words, "--no-progress")
    assert code == 0, stderr

    from vllm_embed.sinks.qdrant import QdrantEdgeSink

    sink = QdrantEdgeSink("advised", path=str(store))
    try:
        info = sink.info()
    finally:
        sink.close()
    assert info.manifest is not None and info.manifest.dimensions == best["dimensions"]
    assert info.dimensions == best["dimensions"]
    storage = info.storage or {}
    if best["quantization"] == "float32":
        assert storage.get("quantization") is None
    else:
        assert storage.get("quantization") == best["quantization"]
        assert storage.get("on_disk") is True
