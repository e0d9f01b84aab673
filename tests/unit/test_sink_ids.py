"""Document ids round-trip through every sink operation in every store and layout; ids a store cannot keep
are refused by `check_document_id`, naming the limit; metadata values may be null."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest_fixtures import STORE_LAYOUTS, FakeHashEmbedder, dump_store, open_sink

from vllm_embed.ingest import Document, ingest, search
from vllm_embed.sinks import Manifest, MilvusSink, QdrantSink
from vllm_embed.sinks.chunks import Chunk

NASTY_IDS = [
    "bell\x07",
    "nul\x00byte",
    "tab\tline\nbreak\rreturn",
    'double"quote',
    "single'quote",
    "back\\slash\\",
    '" or 1 == 1 or "',
    "ünïcödé 日本語 😀",
    "line\u2028separator",
    "del\x7f",
    " padded ",
]


@pytest.mark.parametrize("store", STORE_LAYOUTS)
def test_nasty_document_ids_round_trip_through_upsert_fetch_update_and_filters(
    store: tuple[str, str], tmp_path: Path
) -> None:
    kind, layout = store
    long_docs = [Document("word " * 30, id=i, metadata={"source": i}) for i in NASTY_IDS]
    fake = FakeHashEmbedder(max_input_tokens=32)  # no tokenizer: 32 characters a chunk
    with open_sink(kind, tmp_path, layout=layout) as sink:
        first = ingest(long_docs, embedder=fake, sink=sink, progress=False)
        assert first.written == first.chunks > len(NASTY_IDS)
        stored = dump_store(sink)
        assert {fields["doc_id"] for fields, _ in stored.values()} == set(NASTY_IDS)
        assert sink.fetch_texts(list(stored)) == {pid: fields["text"] for pid, (fields, _) in stored.items()}
        for doc_id in NASTY_IDS:
            hits = search("q", embedder=fake, sink=sink, top_k=100, filter={"source": doc_id})
            assert len(hits) == first.chunks // len(NASTY_IDS)
            assert {(h.doc_id, h.metadata["source"]) for h in hits} == {(doc_id, doc_id)}

        # An update to a shorter text deletes the document's extra chunks (a filter on the id).
        short_docs = [Document("short", id=i, metadata={"source": i}) for i in NASTY_IDS]
        ingest(short_docs, embedder=fake, sink=sink, progress=False)
        after = dump_store(sink)
        assert sorted(fields["doc_id"] for fields, _ in after.values()) == sorted(NASTY_IDS)
        assert all(fields["text"] == "short" and fields["chunk_index"] == 0 for fields, _ in after.values())


@pytest.mark.parametrize("store", STORE_LAYOUTS)
def test_null_metadata_values_are_stored_and_read_back(store: tuple[str, str], tmp_path: Path) -> None:
    kind, layout = store
    fake = FakeHashEmbedder()
    with open_sink(kind, tmp_path, layout=layout) as sink:
        sink.prepare(Manifest.from_description(fake.describe(), layout=layout))
        chunk = Chunk(id="00000000-0000-0000-0000-000000000001", doc_id="d", chunk_index=0, text="t",
                      metadata={"score": None, "tag": "x"})  # fmt: skip
        sink.upsert([chunk], fake.embed_documents(["t"]))
        [hit] = search("q", embedder=fake, sink=sink, filter={"tag": "x"})
        assert hit.metadata == {"score": None, "tag": "x"}


@pytest.mark.parametrize("layout", ["vllm-embed", "langchain", "llama-index"])
def test_milvus_refuses_ids_longer_than_its_fields_in_bytes(layout: str, tmp_path: Path) -> None:
    with MilvusSink("docs", uri=str(tmp_path / "m.db"), layout=layout) as sink:
        sink.check_document_id("a" * 1000)
        with pytest.raises(ValueError, match=r"document id of 100000 bytes .*65535 bytes"):
            sink.check_document_id("a" * 100_000)
        # Bytes, not characters: 40,000 two-byte characters are 80,000 bytes.
        with pytest.raises(ValueError, match="document id of 80000 bytes"):
            sink.check_document_id("é" * 40_000)


def test_milvus_ids_up_to_the_limit_are_written_and_the_llamaindex_layout_counts_its_copies(
    tmp_path: Path,
) -> None:
    fake = FakeHashEmbedder()
    longest = "x" * 65_535
    with MilvusSink("docs", uri=str(tmp_path / "m.db")) as sink:
        sink.check_document_id(longest)
        ingest([Document("fits", id=longest)], embedder=fake, sink=sink, progress=False)
        [(fields, _)] = dump_store(sink).values()
        assert fields["doc_id"] == longest
    with MilvusSink("nodes", uri=str(tmp_path / "m.db"), layout="llama-index") as sink:
        sink.check_document_id("x" * 15_000)
        # The LlamaIndex layout keeps the id four times in the row's dynamic fields (one JSON value).
        with pytest.raises(ValueError, match="JSON limit of 65536 bytes"):
            sink.check_document_id("x" * 20_000)


def test_qdrant_keeps_long_ids_whole(tmp_path: Path) -> None:
    fake = FakeHashEmbedder()
    long_id = "é" * 60_000
    with QdrantSink("docs", path=str(tmp_path / "q")) as sink:
        sink.check_document_id(long_id)
        ingest([Document("fits", id=long_id)], embedder=fake, sink=sink, progress=False)
        [(fields, _)] = dump_store(sink).values()
        assert fields["doc_id"] == long_id
