"""Loaders, documents, deterministic ids and token-aware chunking (no engine, no store)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from transformers import AutoTokenizer

from vllm_embed.ingest import Chunker, Document, as_document, content_id, load_path, load_paths, point_id


@pytest.fixture(scope="module")
def tokenizer(minilm_path: str):
    return AutoTokenizer.from_pretrained(minilm_path)


def test_point_ids_are_deterministic_uuids_distinct_per_chunk() -> None:
    assert point_id("a", 0) == point_id("a", 0)
    uuid.UUID(point_id("a", 0))
    ids = {point_id(d, i) for d in ("a", "b", "a,0", 'a"', "") for i in range(3)}
    assert len(ids) == 15
    assert content_id("x") == content_id("x") != content_id("y")
    assert Document("x").doc_id == content_id("x") and Document("x", id=5).doc_id == "5"


def test_as_document_maps_dict_fields() -> None:
    assert as_document({"body": "t", "key": 1, "lang": "en"}, text_field="body", id_field="key") == Document(
        "t", id="1", metadata={"lang": "en"}
    )
    assert as_document({"text": "t", "id": "x", "metadata": {"a": 1}}) == Document(
        "t", id="x", metadata={"a": 1}
    )
    with pytest.raises(ValueError, match="no 'text' field"):
        as_document({"body": "t"})
    with pytest.raises(ValueError, match="no 'key' id field"):
        as_document({"text": "t"}, id_field="key")


def test_jsonl_loader(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": 1, "body": "one", "lang": "en"}\n\n{"body": "two"}\n')
    source = load_path(path, text_field="body")
    assert len(source) == 2
    assert list(source) == [Document("one", id="1", metadata={"lang": "en"}), Document("two")]

    path.write_text('{"body": "one"}\n{broken\n')
    with pytest.raises(ValueError, match=r"c.jsonl:2:2: not valid JSON \(Expecting property name"):
        list(load_path(path, text_field="body"))


def test_csv_loader(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text('doc,content,lang\nd1,"hello, ""world""",en\nd2,"multi\nline",fr\n')
    source = load_path(path, text_field="content", id_field="doc")
    assert len(source) == 2
    assert list(source) == [
        Document('hello, "world"', id="d1", metadata={"lang": "en"}),
        Document("multi\nline", id="d2", metadata={"lang": "fr"}),
    ]
    with pytest.raises(ValueError, match="no column 'text'"):
        load_path(path)


def test_parquet_loader(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    table = pa.table(
        {"text": [f"t{i}" for i in range(2500)], "n": list(range(2500)), "id": [f"x{i}" for i in range(2500)]}
    )
    pq.write_table(table, path, row_group_size=1000)
    source = load_path(path)
    docs = list(source)
    assert len(source) == 2500 and len(docs) == 2500
    assert docs[2499] == Document("t2499", id="x2499", metadata={"n": 2499})
    with pytest.raises(ValueError, match="no column 'body'"):
        load_path(path, text_field="body")


def test_text_files_loader_uses_relative_paths_as_ids(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.md").write_text("# B")
    (tmp_path / "sub" / "a.txt").write_text("A")
    (tmp_path / "ignored.bin").write_bytes(b"\0")
    docs = list(load_path(tmp_path))
    assert [(d.id, d.text) for d in docs] == [("b.md", "# B"), ("sub/a.txt", "A")]
    assert [d.id for d in load_path(tmp_path / "sub" / "a.txt")] == ["a.txt"]
    assert len(load_paths([tmp_path, tmp_path / "b.md"])) == 3


def test_loader_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        load_paths([tmp_path / "missing.jsonl"])
    (tmp_path / "x.xlsx").write_bytes(b"")
    with pytest.raises(ValueError, match="cannot read"):
        load_path(tmp_path / "x.xlsx")


def test_chunks_are_token_windows_of_the_original_text(tokenizer) -> None:
    text = " ".join(f"word{i}" for i in range(300))
    chunks = Chunker(tokenizer, chunk_tokens=50, chunk_overlap=10).split([text, "short text", "   "])
    long_chunks, short_chunks, blank_chunks = chunks
    assert short_chunks == ["short text"] and blank_chunks == []
    counts = [len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in long_chunks]
    total = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert max(counts) <= 50 and len(long_chunks) == 1 + -(-(total - 50) // 40)
    assert all(c in text for c in long_chunks)
    assert long_chunks[0].startswith("word0 ") and long_chunks[-1].endswith("word299")
    # Consecutive chunks share exactly the overlap.
    first = tokenizer(long_chunks[0], add_special_tokens=False)["input_ids"]
    second = tokenizer(long_chunks[1], add_special_tokens=False)["input_ids"]
    assert first[-10:] == second[:10]


def test_chunking_without_tokenizer_counts_characters() -> None:
    chunks = Chunker(None, chunk_tokens=2, chunk_overlap=1).split(["abcdefghijkl"])[0]
    assert chunks == ["abcdefgh", "efghijkl"]
    with pytest.raises(ValueError, match="chunk_overlap=3 must be"):
        Chunker(None, chunk_tokens=3, chunk_overlap=3)


def test_dataset_of_standard_library_docstrings() -> None:
    from vllm_embed.datasets import python_docstrings

    records = list(python_docstrings(limit=300))
    assert len(records) == 300
    assert records == list(python_docstrings(limit=300))
    assert len({r["id"] for r in records}) == 300
    assert all(len(r["text"]) >= 40 and r["id"].startswith(r["module"]) for r in records)
    assert not any(
        r["module"].split(".")[0] in {"antigravity", "this", "tkinter", "idlelib"} for r in records
    )
    json.dumps(records)


def test_ids_are_strings_or_integers_and_anything_else_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "ids.jsonl"
    good = ['"a"', "7", "7.0", "-3", "12345678901234567890"]
    path.write_text("".join(f'{{"id": {raw}, "text": "t{i}"}}\n' for i, raw in enumerate(good)))
    # 7.0 is the integer 7 (JSON does not tell them apart; pandas writes integer ids with nulls as floats)
    assert [d.id for d in load_path(path)] == ["a", "7", "7", "-3", "12345678901234567890"]
    for raw, kind in [
        ("[1, 2]", "a list"),
        ('{"a": 1}', "an object"),
        ("true", "a boolean"),
        ("NaN", "NaN"),
        ("Infinity", "infinity"),
        ("1.5", "the fraction 1.5"),
    ]:
        path.write_text(f'{{"id": "ok", "text": "x"}}\n{{"id": {raw}, "text": "y"}}\n')
        with pytest.raises(ValueError, match=rf"ids.jsonl:2: .*id .*{kind}.*strings or integers"):
            list(load_path(path))
    with pytest.raises(ValueError, match="a boolean"):
        Document("x", id=True)  # type: ignore[arg-type]
    assert Document("x", id=3).id == "3"  # type: ignore[arg-type]
