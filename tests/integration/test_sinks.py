"""Sinks against a Milvus server process: nasty ids, verify and repair, a server that goes away."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest_fixtures import FakeHashEmbedder

from vllm_embed.ingest import ingest
from vllm_embed.sinks import MilvusSink

NASTY_IDS = ["bell\x07", "nul\x00byte", "tab\tline\nbreak", 'dq"', "sq'", "back\\slash", "日本 😀", "\u2028"]


def test_a_milvus_server_that_goes_away_stops_the_run_clearly_and_keeps_what_was_written(
    tmp_path: Path,
) -> None:
    from conftest import start_milvus_server, stop_process_tree

    from vllm_embed.sinks import SinkError

    fake = FakeHashEmbedder()
    uri, server = start_milvus_server(tmp_path / "data")
    try:
        with MilvusSink("docs", uri=uri, max_attempts=2, retry_wait=0.1) as sink:
            ingest(["one", "two"], embedder=fake, sink=sink, progress=False)
            stop_process_tree(server.pid)
            with pytest.raises(SinkError, match="failed") as failure:
                ingest(["three", "four"], embedder=fake, sink=sink, progress=False)
            assert "Traceback" not in str(failure.value)
    finally:
        stop_process_tree(server.pid)

    uri, server = start_milvus_server(tmp_path / "data")  # the same data, served again
    try:
        with MilvusSink("docs", uri=uri) as sink:
            assert sink.count() == 2
            report = ingest(["one", "two", "three"], embedder=fake, sink=sink, progress=False)
            assert (report.skipped, report.embedded, sink.count()) == (2, 1, 3)
    finally:
        stop_process_tree(server.pid)
