"""Sinks against a Milvus server process: nasty ids, verify and repair, a server that goes away."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest_fixtures import FakeHashEmbedder, dump_store

from vllm_embed.ingest import Document, ingest, search
from vllm_embed.ingest.verify import verify_collection
from vllm_embed.sinks import MilvusSink

NASTY_IDS = ["bell\x07", "nul\x00byte", "tab\tline\nbreak", 'dq"', "sq'", "back\\slash", "日本 😀", "\u2028"]


@pytest.mark.parametrize("layout", ["vllm-embed", "langchain", "llama-index"])
def test_milvus_server_round_trips_nasty_ids_and_repairs_invalid_vectors(
    milvus_server: str, layout: str
) -> None:
    fake = FakeHashEmbedder(max_input_tokens=32)
    collection = "nasty_" + layout.replace("-", "_")
    with MilvusSink(collection, uri=milvus_server, layout=layout) as sink:
        docs = [Document("word " * 30, id=i, metadata={"source": i}) for i in NASTY_IDS]
        ingest(docs, embedder=fake, sink=sink, progress=False)
        for doc_id in NASTY_IDS:
            hits = search("q", embedder=fake, sink=sink, top_k=50, filter={"source": doc_id})
            assert {h.doc_id for h in hits} == {doc_id} and len(hits) > 1
        ingest([Document("short", id=i, metadata={"source": i}) for i in NASTY_IDS],
               embedder=fake, sink=sink, progress=False)  # fmt: skip
        stored = dump_store(sink)
        assert sorted(fields["doc_id"] for fields, _ in stored.values()) == sorted(NASTY_IDS)

        bad = sorted(stored)[:3]
        rows = sink.client.get(collection, ids=bad, output_fields=["*"])
        nan = [float("nan")] * 8
        sink.client.upsert(collection, [{**row, sink.layout.milvus_vector: nan} for row in rows])
        assert verify_collection(sink, batch_size=3).invalid == 3
        assert verify_collection(sink, fake, repair=True, batch_size=3).repaired == 3
        assert verify_collection(sink).invalid == 0


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
