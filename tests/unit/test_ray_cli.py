"""`ingest --ray` checks the collection's chunking as without `--ray`, before Ray or a replica starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import FakeEngine, no_engine, run

from vllm_embed import cli

ray = pytest.importorskip("ray")


def test_ray_ingest_refuses_other_chunking_before_ray_starts(tmp_path: Path, monkeypatch) -> None:
    corpus = tmp_path / "notes.md"
    corpus.write_text("# Tea\n\nGreen tea is made from unoxidised leaves.\n")
    store = ["-c", "docs", "--qdrant", str(tmp_path / "q"), "-m", "fake-model", "--no-progress"]
    monkeypatch.setattr(cli, "make_embedder", FakeEngine())
    code, _, err = run("ingest", str(corpus), *store)
    assert code == 0, err

    monkeypatch.setattr(cli, "make_embedder", no_engine)
    was_running = ray.is_initialized()
    code, _, err = run("ingest", str(corpus), *store, "--splitter", "tokens", "--ray", "local")
    assert code != 0 and "chunked differently" in err and "--rechunk" in err
    assert ray.is_initialized() == was_running


def test_ray_workers_reopen_a_hybrid_sink_as_hybrid() -> None:
    from vllm_embed.cli.commands import _open_sink
    from vllm_embed.sinks import QdrantSink

    sink = _open_sink("http://127.0.0.1:1", None, "docs", None, None, True)
    spec = sink.spec()
    assert spec.shared and spec.sink.endswith(":QdrantSink") and spec.options["hybrid"] is True
    reopened = spec.open()
    assert isinstance(reopened, QdrantSink) and reopened._hybrid is True
    reopened.close()
    sink.close()
