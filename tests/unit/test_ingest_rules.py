"""The pipeline's rules for repeated ids, documents the store refuses, huge documents and NaN metadata, on
real embedded stores (Qdrant local mode, Milvus Lite) with a Fake embedder."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from ingest_fixtures import STORES, FakeHashEmbedder, dump_store, open_sink
from transformers import AutoTokenizer

from vllm_embed.errors import DuplicateDocumentError
from vllm_embed.ingest import Document, IngestReport, ingest, load_path, load_paths, point_id


@pytest.fixture(scope="module")
def tokenizer(minilm_path: str):
    return AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(params=STORES)
def sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:
    with open_sink(request.param, tmp_path) as opened:
        yield opened


def texts_by_point(sink) -> dict[str, str]:
    return {pid: payload["text"] for pid, (payload, _) in dump_store(sink).items()}


LONG = "first version " * 48  # 96 tokens: three chunks of 32
SHORT = "second version"


def versions() -> list[Document]:
    return [Document("a", id="x"), Document(LONG, id="d"), Document("b", id="y"), Document(SHORT, id="d")]


def test_a_repeated_id_is_an_error_naming_both_positions_before_anything_is_written(sink, tokenizer) -> None:
    fake = FakeHashEmbedder(tokenizer)
    with pytest.raises(DuplicateDocumentError, match=r"document id 'd' occurs twice .* positions 1 and 3"):
        ingest(versions(), embedder=fake, sink=sink, batch_size=1, progress=False)
    assert fake.calls == [] and sink.read_manifest() is None  # not even the collection was created


def test_a_repeated_id_from_files_is_found_before_anything_is_written(sink, tokenizer, tmp_path) -> None:
    (tmp_path / "a.jsonl").write_text(
        "".join(json.dumps({"id": f"k{i}", "text": "t"}) + "\n" for i in range(9))
    )
    (tmp_path / "b.jsonl").write_text(json.dumps({"id": "k4", "text": "u"}) + "\n")
    with pytest.raises(DuplicateDocumentError, match=r"positions 4 \(.*a\.jsonl:5\) and 9 \(.*b\.jsonl:1\)"):
        ingest(
            load_paths([tmp_path / "a.jsonl", tmp_path / "b.jsonl"]),
            embedder=FakeHashEmbedder(tokenizer),
            sink=sink,
            batch_size=1,
            progress=False,
        )
    assert sink.read_manifest() is None


def test_an_iterator_with_a_repeated_id_stops_before_the_second_version_is_written(sink, tokenizer) -> None:
    with pytest.raises(DuplicateDocumentError, match="positions 1 and 3"):
        ingest(
            iter(versions()), embedder=FakeHashEmbedder(tokenizer), sink=sink, batch_size=1, progress=False
        )
    stored = texts_by_point(sink)
    # Whatever was written is whole documents of the first version: never the second, never a mix.
    assert SHORT not in stored.values()
    d_chunks = [stored.get(point_id("d", i)) for i in range(3)]
    assert d_chunks == [None] * 3 or all(c is not None and "first version" in c for c in d_chunks)


def test_last_keeps_only_the_last_version_with_an_exact_report(sink, tokenizer) -> None:
    fake = FakeHashEmbedder(tokenizer)
    report = ingest(versions(), embedder=fake, sink=sink, batch_size=1, progress=False, on_duplicate="last")

    assert (report.documents, report.superseded, report.chunks, report.embedded, report.written) == (
        3,
        1,
        3,
        3,
        3,
    )
    assert sorted(fake.embedded) == ["a", "b", SHORT]
    assert texts_by_point(sink) == {point_id("x", 0): "a", point_id("y", 0): "b", point_id("d", 0): SHORT}
    assert "1 earlier versions of repeated ids dropped" in str(report)


def test_last_over_a_stored_longer_version_removes_its_trailing_chunks(sink, tokenizer) -> None:
    ingest([Document(LONG, id="d")], embedder=FakeHashEmbedder(tokenizer), sink=sink, progress=False)
    assert sink.count() == 3
    report = ingest(
        versions(), embedder=FakeHashEmbedder(tokenizer), sink=sink, progress=False, on_duplicate="last"
    )
    assert report.deleted_from == 1
    assert texts_by_point(sink)[point_id("d", 0)] == SHORT and sink.count() == 3


def test_last_needs_input_that_can_be_read_twice(sink, tokenizer) -> None:
    with pytest.raises(ValueError, match="on_duplicate='last' reads the input twice"):
        ingest(iter(versions()), embedder=FakeHashEmbedder(tokenizer), sink=sink, on_duplicate="last")
    with pytest.raises(ValueError, match="on_duplicate='first' must be one of"):
        ingest(versions(), embedder=FakeHashEmbedder(tokenizer), sink=sink, on_duplicate="first")  # type: ignore[arg-type]


def test_a_document_the_store_refuses_is_rejected_and_the_others_are_written(sink, tokenizer) -> None:
    def refuse_long_ids(doc_id: str) -> None:
        if len(doc_id) > 10:
            raise ValueError(f"document id of {len(doc_id)} characters; this store keeps at most 10")

    sink.check_document_id = refuse_long_ids
    docs = [Document("one", id="short"), Document("two", id="x" * 100), Document("three", id="fine")]
    report = ingest(docs, embedder=FakeHashEmbedder(tokenizer), sink=sink, batch_size=2, progress=False)

    assert report.rejected == (("x" * 100, "document id of 100 characters; this store keeps at most 10"),)
    assert (report.documents, report.chunks, report.written) == (2, 2, 2)
    assert sorted(texts_by_point(sink).values()) == ["one", "three"]
    assert report.to_dict()["rejected"] == report.rejected
    assert "1 rejected" in str(report) and "(100 characters)" in str(report)


def test_an_in_memory_document_above_the_limit_is_rejected(sink, tokenizer) -> None:
    docs = [Document("é" * 600, id="big"), Document("small", id="s")]
    report = ingest(
        docs, embedder=FakeHashEmbedder(tokenizer), sink=sink, progress=False, max_document_bytes=1000
    )
    assert report.rejected == (("big", "text larger than max_document_bytes=1000"),)
    assert report.documents == 1 and sink.count() == 1


def test_nan_metadata_is_stored_as_null_in_every_store(sink, tokenizer) -> None:
    ingest(
        [Document("t", id="n", metadata={"score": math.nan, "nested": {"v": math.inf}})],
        embedder=FakeHashEmbedder(tokenizer),
        sink=sink,
        progress=False,
    )
    [(payload, _)] = dump_store(sink).values()
    assert payload["metadata"] == {"score": None, "nested": {"v": None}}


def test_framework_documents_are_ingested(sink, tokenizer, tmp_path: Path) -> None:
    from langchain_core.documents import Document as LangChainDocument
    from llama_index.core import Document as LlamaDocument

    items = [
        LangChainDocument(page_content="from langchain", metadata={"source": "a.pdf"}, id="lc"),
        LlamaDocument(text="from llama-index", metadata={"file_name": "b.txt"}, id_="li"),
    ]
    report = ingest(items, embedder=FakeHashEmbedder(tokenizer), sink=sink, progress=False)
    assert report.documents == 2
    stored = {p["doc_id"]: (p["text"], p["metadata"]) for p, _ in dump_store(sink).values()}
    assert stored == {
        "lc": ("from langchain", {"source": "a.pdf"}),
        "li": ("from llama-index", {"file_name": "b.txt"}),
    }


def test_the_report_counts_rejected_and_superseded_apart() -> None:
    report = IngestReport(1, 1, 1, 0, 1, 0.5, rejected=(("a", "why"),), superseded=2)
    assert report.to_dict()["superseded"] == 2
    assert json.loads(json.dumps(report.to_dict()))["rejected"] == [["a", "why"]]


def test_a_file_source_counts_every_document_read(sink, tokenizer, tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"id": f"k{i % 3}", "text": f"v{i}"}) + "\n" for i in range(5)))
    report = ingest(
        load_path(path), embedder=FakeHashEmbedder(tokenizer), sink=sink, progress=False, on_duplicate="last"
    )
    assert (report.documents, report.superseded) == (3, 2)
    assert sorted(texts_by_point(sink).values()) == ["v2", "v3", "v4"]


def test_repeated_ids_name_their_files_and_lines(tmp_path: Path) -> None:
    from vllm_embed.ingest.duplicates import superseded_positions

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("x")
    (tmp_path / "c.csv").write_text('id,text\nq,"two\nlines"\na.md,y\n')
    with pytest.raises(DuplicateDocumentError, match=r"positions 0 \(.*a\.md\) and 2 \(.*c\.csv:4\)"):
        superseded_positions(load_paths([tmp_path / "docs", tmp_path / "c.csv"]), "text", None, "error")
    assert superseded_positions(
        load_paths([tmp_path / "docs", tmp_path / "c.csv"]), "text", None, "last"
    ) == frozenset({0})
