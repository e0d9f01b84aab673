"""Property-based tests (Hypothesis): loaders round-trip arbitrary Unicode, the chunker stays within its
limit and covers the text in order (with the real MiniLM tokenizer), and point ids are stable and distinct."""

from __future__ import annotations

import csv
import functools
import json
import tempfile
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from vllm_embed.ingest import Chunker, Document, content_id, load_path, point_id

EXAMPLES = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

ids = st.text(min_size=1, max_size=20)
texts = st.text(max_size=200)
metadata_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.floats(allow_nan=False), st.text(max_size=20)
)


@pytest.fixture(scope="module")
def tokenizer(minilm_path: str):
    return AutoTokenizer.from_pretrained(minilm_path)


# -- loaders ---------------------------------------------------------------------------------------------


@EXAMPLES
@given(
    st.lists(
        st.tuples(ids, texts, st.dictionaries(st.text(max_size=10), metadata_values, max_size=3)), max_size=5
    ),
    st.booleans(),
)
def test_jsonl_round_trips_any_text_id_and_metadata(records, ascii_only: bool) -> None:
    docs = [
        Document(text, id=doc_id, metadata={k: v for k, v in meta.items() if k not in ("id", "text")})
        for doc_id, text, meta in records
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "docs.jsonl"
        path.write_text(
            "".join(
                json.dumps({"id": d.id, "text": d.text, **d.metadata}, ensure_ascii=ascii_only) + "\n"
                for d in docs
            ),
            encoding="utf-8",
        )
        source = load_path(path)
        assert list(source) == docs and len(source) == len(docs)


@EXAMPLES
@given(st.lists(st.tuples(ids, texts, st.text(max_size=20)), min_size=1, max_size=5))
def test_csv_round_trips_any_text_id_and_quoting(rows) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "docs.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "text", "note"])
            writer.writerows(rows)
        source = load_path(path)
        assert list(source) == [Document(t, id=i, metadata={"note": n}) for i, t, n in rows]
        assert len(source) == len(rows)


@EXAMPLES
@given(texts)
def test_text_files_round_trip_any_text_up_to_newlines(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "doc.txt"
        path.write_bytes(text.encode("utf-8"))
        [doc] = load_path(path)
        assert doc == Document(text.replace("\r\n", "\n").replace("\r", "\n"), id="doc.txt")


# -- the chunker -----------------------------------------------------------------------------------------


def _token_count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _assert_covers_in_order(text: str, chunks: list[str], leftover_size) -> None:
    """Chunks are spans of `text` in order, and what no chunk covers holds no token (no character without
    a tokenizer). A chunk text may occur several times: some placement of all of them must work."""

    @functools.cache
    def placeable(index: int, earliest: int, covered_to: int) -> bool:
        if index == len(chunks):
            return leftover_size(text[covered_to:]) == 0
        start = text.find(chunks[index], earliest)
        while start >= 0:
            if start > covered_to and leftover_size(text[covered_to:start]) != 0:
                return False  # later placements leave an even longer gap
            if placeable(index + 1, start + 1, max(covered_to, start + len(chunks[index]))):
                return True
            start = text.find(chunks[index], start + 1)
        return False

    assert placeable(0, 0, 0), "the chunks are not spans of the text in order, covering every token"


# Words whose later pieces take more tokens alone than inside the word ("##ization" alone: "iz", "##ation").
WORDS = [
    "the",
    "embedding",
    "naïve",
    "東京",
    "🙂",
    "tokenization",
    "Schwarzenegger",
    "antidisestablishmentarianism",
]
words = st.lists(
    st.one_of(st.text(min_size=1, max_size=12), st.sampled_from(WORDS)),
    max_size=120,
)


@EXAMPLES
@given(words, st.sampled_from([" ", "\n", "", "  "]), st.integers(1, 40), st.data())
def test_chunks_never_exceed_the_limit_and_cover_the_text_in_order(
    tokenizer, parts, separator: str, chunk_tokens: int, data
) -> None:
    overlap = data.draw(st.integers(0, chunk_tokens - 1))
    text = separator.join(parts)
    [chunks] = Chunker(tokenizer, chunk_tokens, overlap).split([text])

    if not text.strip() or _token_count(tokenizer, text) == 0:
        assert chunks == []
        return
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    single_tokens = {text[start:end] for start, end in offsets}
    for chunk in chunks:
        # Only a chunk that is one token of the text (which cannot be cut) may re-tokenise longer.
        assert _token_count(tokenizer, chunk) <= chunk_tokens or chunk in single_tokens
    _assert_covers_in_order(text, chunks, lambda rest: _token_count(tokenizer, rest))


def test_a_window_cut_inside_a_word_is_shortened_to_fit(tokenizer) -> None:
    text = " ".join(["tokenization"] * 20)
    chunks = Chunker(tokenizer, chunk_tokens=3, chunk_overlap=0).split([text])[0]
    assert max(_token_count(tokenizer, chunk) for chunk in chunks) <= 3
    _assert_covers_in_order(text, chunks, lambda rest: _token_count(tokenizer, rest))


def test_a_character_split_into_several_tokens_is_never_repeated(tokenizer) -> None:
    # WordPiece splits a Hangul syllable into jamo tokens that all span the one character.
    text = "즈 가나다"
    for chunk_tokens, overlap in ((1, 0), (2, 1), (3, 0)):
        chunks = Chunker(tokenizer, chunk_tokens, overlap).split([text])[0]
        _assert_covers_in_order(text, chunks, lambda rest: _token_count(tokenizer, rest))
    assert Chunker(tokenizer, 1, 0).split([text])[0] == ["즈", "가", "나", "다"]


@EXAMPLES
@given(st.text(max_size=300), st.integers(1, 20), st.data())
def test_character_chunks_never_exceed_the_limit_and_cover_the_text(
    text: str, chunk_tokens: int, data
) -> None:
    overlap = data.draw(st.integers(0, chunk_tokens - 1))
    [chunks] = Chunker(None, chunk_tokens, overlap).split([text])
    if not text.strip():
        assert chunks == []
        return
    assert all(len(chunk) <= chunk_tokens * 4 for chunk in chunks)
    _assert_covers_in_order(text, chunks, len)


# -- ids -------------------------------------------------------------------------------------------------


def test_point_ids_are_stable_across_versions() -> None:
    # Fixed values: a change here would give every stored chunk a new id and break resumption.
    assert point_id("doc", 0) == str(
        uuid.uuid5(uuid.UUID("6f1c8e4a-2b7d-5c3e-9a10-7d2f4b8c1e53"), '["doc", 0]')
    )
    assert content_id("hello") == "2cf24dba5fb0a30e26e83b2ac5b9e29e"


@EXAMPLES
@given(
    st.tuples(st.text(max_size=30), st.integers(0, 10**6)),
    st.tuples(st.text(max_size=30), st.integers(0, 10**6)),
)
def test_point_ids_are_uuids_stable_and_distinct_for_distinct_chunks(first, second) -> None:
    assert point_id(*first) == point_id(*first)
    assert uuid.UUID(point_id(*first)).version == 5  # a UUID string: a valid id in Qdrant and in Milvus
    assert (point_id(*first) == point_id(*second)) == (first == second)


@EXAMPLES
@given(st.lists(st.tuples(st.text(max_size=8), st.integers(0, 5)), unique=True, max_size=60))
def test_point_ids_of_many_chunks_never_collide(pairs) -> None:
    assert len({point_id(doc_id, index) for doc_id, index in pairs}) == len(pairs)
