"""Hostile input files and documents: malformed CSV, bad encodings, giant records, NaN metadata, framework
documents (no engine, no store)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from vllm_embed.errors import InputFileError, VllmEmbedError
from vllm_embed.ingest import Chunker, Document, as_document, load_path, load_paths
from vllm_embed.ingest import chunking as chunking_module
from vllm_embed.ingest.loaders import DEFAULT_MAX_DOCUMENT_BYTES


@pytest.fixture(scope="module")
def tokenizer(minilm_path: str):
    return AutoTokenizer.from_pretrained(minilm_path)


# -- malformed CSV ---------------------------------------------------------------------------------------


def test_an_unterminated_quote_is_an_error_naming_its_line_not_swallowed_rows(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('id,text\na,first\nb,"unterminated\nc,third\nd,fourth\n')
    with pytest.raises(InputFileError, match=r"c\.csv:3: malformed CSV record"):
        list(load_path(path))
    with pytest.raises(InputFileError, match=r"c\.csv:3:"):
        len(load_path(path))


def test_a_stray_quote_inside_a_quoted_field_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('id,text\na,"one"\nb,"two" and more\nc,three\n')
    with pytest.raises(InputFileError, match=r"c\.csv:3: malformed CSV record"):
        list(load_path(path))


def test_more_cells_than_the_header_is_an_error_never_a_none_key(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('id,text,lang\na,"multi\nline",en\n\nb,two,fr,extra\n')
    with pytest.raises(InputFileError, match=r"c\.csv:5: 4 cells but the header has 3 columns"):
        list(load_path(path))


def test_well_formed_csv_still_reads_every_row(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('id,text,lang\na,"say ""hi""\nthere",en\n\nb,two,fr\nc,short\n')
    docs = list(load_path(path))
    assert docs == [
        Document('say "hi"\nthere', id="a", metadata={"lang": "en"}),
        Document("two", id="b", metadata={"lang": "fr"}),
        Document("short", id="c", metadata={"lang": None}),
    ]
    assert all(None not in d.metadata and "None" not in d.metadata for d in docs)


# -- encodings -------------------------------------------------------------------------------------------


def test_a_non_utf8_byte_names_the_file_and_line(tmp_path: Path) -> None:
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(InputFileError, match=r"c\.jsonl:2: not valid utf-8 \(byte 0xe9 at column 14\)"):
        list(load_path(jsonl))
    csv_file = tmp_path / "c.csv"
    csv_file.write_bytes(b"id,text\na,fine\nb,caf\xe9\n")
    with pytest.raises(InputFileError, match=r"c\.csv:3: not valid utf-8"):
        list(load_path(csv_file))


def test_encoding_and_errors_can_be_chosen(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"text": "caf\xe9"}\n')
    assert [d.text for d in load_path(path, encoding="latin-1")] == ["café"]
    assert [d.text for d in load_path(path, errors="replace")] == ["caf\ufffd"]
    bom = tmp_path / "bom.csv"
    bom.write_bytes("text\nx\n".encode("utf-8-sig"))
    assert [d.text for d in load_path(bom, encoding="utf-8-sig")] == ["x"]


# -- giant records ---------------------------------------------------------------------------------------


def test_a_line_above_max_document_bytes_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "small"}\n{"text": "' + "x" * 5000 + '"}\n')
    with pytest.raises(InputFileError, match=r"c\.jsonl:2: record larger than max_document_bytes=1000"):
        list(load_path(path, max_document_bytes=1000))
    assert len(list(load_path(path, max_document_bytes=6000))) == 2
    csv_file = tmp_path / "c.csv"
    csv_file.write_text('text\nsmall\n"' + "line\n" * 300 + '"\n')
    with pytest.raises(InputFileError, match=r"c\.csv:\d+: record larger than max_document_bytes=1000"):
        list(load_path(csv_file, max_document_bytes=1000))
    text_file = tmp_path / "t.txt"
    text_file.write_text("y" * 2000)
    with pytest.raises(InputFileError, match="record larger than max_document_bytes=1000"):
        list(load_paths([text_file], max_document_bytes=1000))


def test_the_default_limit_refuses_a_giant_line_without_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with path.open("w") as handle:
        handle.write('{"text": "')
        handle.write("z" * (DEFAULT_MAX_DOCUMENT_BYTES + 10))
        handle.write('"}\n')
    with pytest.raises(InputFileError, match=r"c\.jsonl:1: record larger than max_document_bytes"):
        load_path(path)


def test_a_long_text_is_tokenised_in_segments_with_the_same_chunks(tokenizer, monkeypatch) -> None:
    monkeypatch.setattr(chunking_module, "_SEGMENT_CHARS", 2000)
    longest_call: list[int] = []

    class SpyTokenizer:
        is_fast = True

        def __call__(self, texts, **kwargs):
            longest_call.append(max(len(t) for t in texts))
            return tokenizer(texts, **kwargs)

    text = "\n".join(" ".join(f"w{i}x{j}" for j in range(12)) for i in range(400))
    segmented = Chunker(SpyTokenizer(), chunk_tokens=64, chunk_overlap=8).split([text, "short"])
    assert max(longest_call) <= 2000
    monkeypatch.setattr(chunking_module, "_SEGMENT_CHARS", 10**9)
    whole = Chunker(tokenizer, chunk_tokens=64, chunk_overlap=8).split([text, "short"])
    assert segmented == whole


# -- documents -------------------------------------------------------------------------------------------


def test_nan_and_infinite_metadata_values_become_none() -> None:
    doc = Document("t", metadata={"a": math.nan, "b": {"c": -math.inf, "d": [1.5, math.inf]}, "e": 2.0})
    assert doc.metadata == {"a": None, "b": {"c": None, "d": [1.5, None]}, "e": 2.0}
    assert as_document({"text": "t", "score": float("nan")}).metadata == {"score": None}


def test_nan_in_a_jsonl_file_becomes_none(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "t", "score": NaN, "top": Infinity}\n')
    [doc] = load_path(path)
    assert doc.metadata == {"score": None, "top": None}


def test_langchain_documents_are_accepted_by_their_shape() -> None:
    from langchain_core.documents import Document as LangChainDocument

    with_id = LangChainDocument(page_content="hello", metadata={"source": "a.pdf"}, id="p1")
    assert as_document(with_id) == Document("hello", id="p1", metadata={"source": "a.pdf"})
    without_id = as_document(LangChainDocument(page_content="hi"))
    assert without_id.id is None and without_id.doc_id == Document("hi").doc_id


def test_llama_index_documents_and_nodes_are_accepted_by_their_shape() -> None:
    from llama_index.core import Document as LlamaDocument
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    document = LlamaDocument(text="body", metadata={"file_name": "a.txt"}, id_="doc-1")
    assert as_document(document) == Document("body", id="doc-1", metadata={"file_name": "a.txt"})
    assert as_document(document).id == document.doc_id
    node = TextNode(
        text="piece",
        id_="node-7",
        metadata={"page": 2},
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id="doc-1")},
    )
    assert node.ref_doc_id == "doc-1"
    # A node is its own document: nodes of one document must not share chunk ids.
    assert as_document(node) == Document("piece", id="node-7", metadata={"page": 2})


def test_other_objects_are_still_refused() -> None:
    with pytest.raises(TypeError, match="cannot ingest a int"):
        as_document(1)  # type: ignore[arg-type]


def test_loader_errors_are_vllm_embed_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("[1]\n")
    with pytest.raises(VllmEmbedError, match=r"c\.jsonl:1: expected a JSON object"):
        list(load_path(path))


def test_json_nested_thousands_deep_is_one_line_naming_the_line_not_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b", "m": ' + "[" * 50_000 + "]" * 50_000 + "}\n")
    with pytest.raises(InputFileError, match=r"deep\.jsonl:2: JSON nested too deeply to read; flatten"):
        list(load_path(path))
