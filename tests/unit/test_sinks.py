"""Sinks on real embedded stores (Qdrant local, Milvus Lite): manifests, hostile filter values, long texts,
argument checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from ingest_fixtures import STORE_LAYOUTS, FakeHashEmbedder, dump_store, open_sink

from vllm_embed.ingest import Document, ingest, search
from vllm_embed.sinks import MilvusSink, QdrantSink
from vllm_embed.sinks.milvus import milvus_literal, truncate_utf8

HOSTILE_VALUES = [
    'it\'s "quoted"',
    '" or 1 == 1 or "',
    "') or true or ('",
    "back\\slash\\",
    'a" || metadata["lang"] != "',
    "line\nbreak\ttab",
    "ünïcödé — 日本語",
]


@pytest.fixture(params=STORE_LAYOUTS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """(store kind, directory, payload layout): filters and manifests are checked in every layout."""
    kind, layout = request.param
    return kind, tmp_path, layout


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_filters_match_values_with_quotes_and_operators_exactly(store, value: str) -> None:
    kind, root, layout = store
    docs = [
        Document("the match", id="match", metadata={"tag": value, "n": 3, "flag": True}),
        Document("other one", id="other", metadata={"tag": "plain", "n": 4, "flag": False}),
        Document("near miss", id="near", metadata={"tag": value + " ", "n": 3, "flag": True}),
    ]
    fake = FakeHashEmbedder()
    with open_sink(kind, root, layout=layout) as sink:
        ingest(docs, embedder=fake, sink=sink, progress=False)
        hits = search("anything", embedder=fake, sink=sink, top_k=10, filter={"tag": value})
        assert [h.doc_id for h in hits] == ["match"]
        hits = search(
            "anything", embedder=fake, sink=sink, top_k=10, filter={"tag": value, "n": 3, "flag": True}
        )
        assert [h.doc_id for h in hits] == ["match"]
        assert search("anything", embedder=fake, sink=sink, top_k=10, filter={"tag": value, "n": 4}) == []


def test_filters_on_keys_with_spaces_and_dots_and_numbers(store) -> None:
    kind, root, layout = store
    docs = [
        Document("a", id="a", metadata={"file name.txt": "x", "score": 0.5}),
        Document("b", id="b", metadata={"file name.txt": "y", "score": 1.5}),
    ]
    fake = FakeHashEmbedder()
    with open_sink(kind, root, layout=layout) as sink:
        ingest(docs, embedder=fake, sink=sink, progress=False)
        assert [h.doc_id for h in search("q", embedder=fake, sink=sink, filter={"file name.txt": "y"})] == [
            "b"
        ]
        assert [h.doc_id for h in search("q", embedder=fake, sink=sink, filter={"score": 0.5})] == ["a"]
        with pytest.raises(ValueError, match="must be a string, number or boolean"):
            search("q", embedder=fake, sink=sink, filter={"score": [1, 2]})  # type: ignore[dict-item]


@pytest.mark.parametrize("layout", ["langchain", "llama-index"])
@pytest.mark.parametrize("kind", ["qdrant", "milvus"])
def test_metadata_keys_a_framework_layout_writes_itself_are_refused_before_writing(
    kind: str, layout: str, tmp_path: Path
) -> None:
    docs = [Document("fine", id="ok"), Document("clash", id="bad", metadata={"doc_id": "mine"})]
    fake = FakeHashEmbedder()
    with open_sink(kind, tmp_path, layout=layout) as sink:
        reserved = f"document 'bad': metadata key 'doc_id' is reserved by the {layout}"
        with pytest.raises(ValueError, match=reserved):
            ingest(docs, embedder=fake, sink=sink, progress=False)
        assert fake.calls == []
    with open_sink(kind, tmp_path, layout="vllm-embed", collection="own") as sink:
        ingest(docs, embedder=fake, sink=sink, progress=False)  # vllm-embed's layout nests metadata
        assert sink.count() == 2


def test_milvus_literals_are_escaped() -> None:
    assert milvus_literal('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    assert milvus_literal(True) == "true" and milvus_literal(3) == "3" and milvus_literal(0.5) == "0.5"
    # Other control characters stand for themselves (Milvus has no escape for them): see test_sink_ids.py.
    assert milvus_literal("bell\x07") == '"bell\x07"'


def test_milvus_texts_longer_than_the_field_are_stored_cut_and_not_reembedded(tmp_path: Path) -> None:
    long_text = "é" * 40 + " tail"  # 2-byte characters: the cut must fall on a character boundary
    fake = FakeHashEmbedder(max_input_tokens=10_000)
    with MilvusSink("docs", uri=str(tmp_path / "m.db"), text_max_bytes=25) as sink:
        ingest([Document(long_text, id="long")], embedder=fake, sink=sink, progress=False)
        [(payload, vector)] = dump_store(sink).values()
        assert payload["text"] == "é" * 12
        np.testing.assert_allclose(vector, fake.embed_query(long_text), atol=1e-6)

        again = FakeHashEmbedder(max_input_tokens=10_000)
        report = ingest([Document(long_text, id="long")], embedder=again, sink=sink, progress=False)
        assert (report.skipped, again.calls) == (1, [])


def test_truncate_utf8_keeps_whole_characters() -> None:
    assert truncate_utf8("abc", 10) == "abc"
    assert truncate_utf8("aé", 2) == "a"
    assert truncate_utf8("日本語", 7) == "日本"


def test_sink_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one of path=, location=, url= or client=, got none"):
        QdrantSink("docs")
    with pytest.raises(ValueError, match="got path, location"):
        QdrantSink("docs", path=str(tmp_path), location=":memory:")
    with pytest.raises(ValueError, match="exactly one of uri="):
        MilvusSink("docs")
    with pytest.raises(ValueError, match="unknown layout 'haystack'; choose one of vllm-embed, langchain"):
        QdrantSink("docs", location=":memory:", layout="haystack")


def test_qdrant_in_memory_and_collections_from_elsewhere(tmp_path: Path) -> None:
    fake = FakeHashEmbedder()
    with QdrantSink("docs", location=":memory:") as sink:
        ingest(["in memory"], embedder=fake, sink=sink, progress=False)
        assert sink.count() == 1
        from qdrant_client.http import models

        sink.client.create_collection(
            "foreign", vectors_config=models.VectorParams(size=8, distance="Cosine")
        )
        with pytest.raises(ValueError, match="has no vllm-embed manifest"):
            QdrantSink("foreign", client=sink.client).read_manifest()


def test_qdrant_local_store_commits_through_a_write_ahead_log(tmp_path: Path) -> None:
    """Local mode commits each point alone; WAL mode makes that cheap (see `_tune_local_storage`)."""
    import sqlite3

    fake = FakeHashEmbedder()
    with QdrantSink("docs", path=str(tmp_path / "q")) as sink:
        ingest([f"text {i}" for i in range(5)], embedder=fake, sink=sink, progress=False)
        database = tmp_path / "q" / "collection" / "docs" / "storage.sqlite"
        with sqlite3.connect(database) as probe:
            assert probe.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with QdrantSink("docs", path=str(tmp_path / "q")) as sink:  # reopened: every point is still there
        assert sink.count() == 5
        ingest([f"text {i}" for i in range(7)], embedder=fake, sink=sink, progress=False)
        assert sink.count() == 7


def test_milvus_lite_connections_do_not_send_keepalive_pings(tmp_path: Path) -> None:
    """Milvus Lite's server answers pymilvus's idle pings with a GOAWAY logged on stderr (about 80 s of
    idling; too slow to wait for here), so the sink's channel must not send them; other options pass on."""
    with MilvusSink("docs", uri=str(tmp_path / "m.db"), grpc_options={"grpc.enable_retries": 0}) as sink:
        ingest(["a point"], embedder=FakeHashEmbedder(), sink=sink, progress=False)
        options = sink.client._get_connection()._grpc_options  # what pymilvus builds its channel with
        assert options["grpc.keepalive_permit_without_calls"] is False
        assert options["grpc.keepalive_time_ms"] == 2**31 - 1
        assert options["grpc.enable_retries"] == 0
        assert sink.count() == 1


def test_a_qdrant_local_store_open_twice_in_this_process_is_busy(tmp_path: Path) -> None:
    from vllm_embed.errors import StoreBusyError

    busy = r"open elsewhere \(PID \d+: this process\).*close the other"
    (tmp_path / "q").mkdir()  # an existing store is locked when opened (a missing one on its first write)
    with QdrantSink("docs", path=str(tmp_path / "q")), pytest.raises(StoreBusyError, match=busy):
        QdrantSink("docs", path=str(tmp_path / "q"))
    with QdrantSink("docs", path=str(tmp_path / "q")) as sink:  # closed: free again
        assert sink.read_manifest() is None
