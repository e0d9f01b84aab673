"""SparseEmbedder and MultiVectorEmbedder on a real vLLM engine, against plain-transformers references.

One engine per fixture model and task for the module (a vLLM engine runs one pooling task, so BGE-M3's
sparse and multi-vector embedders have one each). References come from `sparse_models` (formulas of
vLLM's SPLADE pooler, ColBERT's projection and FlagEmbedding's BGE-M3), computed in float32.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sparse_models import COLBERT_DIM, reference_bge_m3, reference_colbert, reference_splade

from vllm_embed import MultiVectorEmbedder, SparseEmbedder, SparseVector
from vllm_embed.backends import vllm_local
from vllm_embed.errors import SettingsError

TEXTS = [
    "Paris is the capital of France. Paris!",
    "The quick brown fox jumps over the lazy dog.",
    "Vector databases store dense, sparse and multi-vector embeddings.",
    "",
    "The quick brown fox jumps over the lazy dog.",  # a duplicate: run once, returned twice
]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def colbert(colbert_path: Path) -> Iterator[MultiVectorEmbedder]:
    with MultiVectorEmbedder(str(colbert_path), dtype="float32") as embedder:
        yield embedder


@pytest.fixture(scope="module")
def m3_sparse(bge_m3_path: Path) -> Iterator[SparseEmbedder]:
    with SparseEmbedder(str(bge_m3_path), dtype="float32") as embedder:
        yield embedder


def _dense(vector: SparseVector, size: int) -> np.ndarray:
    row = np.zeros(size, dtype=np.float32)
    row[vector.indices] = vector.values
    return row


def _check_shape(vector: SparseVector) -> None:
    assert vector.indices.dtype == np.int64
    assert vector.values.dtype == np.float32
    assert (np.diff(vector.indices) > 0).all()
    assert (vector.values > 0).all()


def test_splade_equals_the_formula_and_raw_vllm(splade_embedder: SparseEmbedder, splade_path: Path) -> None:
    vectors = splade_embedder.embed_documents(TEXTS)
    reference = reference_splade(splade_path, TEXTS)
    raw = splade_embedder._backend.pool([splade_embedder.tokenizer(text)["input_ids"] for text in TEXTS])
    for vector, expected, engine in zip(vectors, reference, raw, strict=True):
        _check_shape(vector)
        np.testing.assert_allclose(_dense(vector, expected.shape[0]), expected, atol=TOLERANCE)
        np.testing.assert_array_equal(vector.indices, np.flatnonzero(engine))
        np.testing.assert_array_equal(vector.values, engine[vector.indices])
    assert 20 < len(vectors[0]) < 5000  # the fixture's biased head keeps it sparse
    assert vectors[1].to_dict() == vectors[4].to_dict()
    query = splade_embedder.embed_query(TEXTS[0])
    assert query.dot(vectors[0]) == pytest.approx(float(reference[0] @ reference[0]), rel=1e-4)


def test_max_terms_keeps_the_heaviest_terms(splade_embedder: SparseEmbedder, splade_path: Path) -> None:
    full = splade_embedder.embed_documents(TEXTS[:2])
    before = vllm_local.running_engines()
    with SparseEmbedder(str(splade_path), dtype="float32", max_terms=7) as pruned:
        assert vllm_local.running_engines() == before  # the same engine
        for whole, kept in zip(full, pruned.embed_documents(TEXTS[:2]), strict=True):
            _check_shape(kept)
            assert len(kept) == 7
            heaviest = np.sort(whole.values)[-7:]
            np.testing.assert_array_equal(np.sort(kept.values), heaviest)
            assert set(kept.indices.tolist()) <= set(whole.indices.tolist())


def test_long_input_policies(splade_embedder: SparseEmbedder, splade_path: Path) -> None:
    long_text = "alpha beta gamma delta " * 200  # 800 words, over BERT's 512 tokens
    strict = SparseEmbedder(str(splade_path), dtype="float32", long_input="error")
    with strict, pytest.raises(ValueError, match=r"texts\[1\] is \d+ tokens long .* long_input='chunk'"):
        strict.embed_documents(["short", long_text])
    chunked = splade_embedder.embed_documents([long_text])[0]
    with SparseEmbedder(str(splade_path), dtype="float32", long_input="truncate") as cut:
        truncated = cut.embed_documents([long_text])[0]
    # Each term's max over the windows is at least its weight in the first (truncated) window.
    first = dict(zip(truncated.indices.tolist(), truncated.values.tolist(), strict=True))
    chunk = chunked.to_dict()
    assert all(chunk[token] >= weight for token, weight in first.items())


def test_bge_m3_lexical_weights_equal_flagembedding(m3_sparse: SparseEmbedder, bge_m3_path: Path) -> None:
    vectors = m3_sparse.embed_documents(TEXTS)
    for vector, expected in zip(vectors, reference_bge_m3(bge_m3_path, TEXTS), strict=True):
        _check_shape(vector)
        assert vector.indices.tolist() == sorted(expected["lexical"])
        np.testing.assert_allclose(
            vector.values, [expected["lexical"][token] for token in vector.indices.tolist()], atol=TOLERANCE
        )
    assert len(vectors[0]) > 3
    assert len(vectors[3]) == 0  # an empty text has no term


def test_colbert_equals_the_projection_and_raw_vllm(colbert: MultiVectorEmbedder, colbert_path: Path) -> None:
    matrices = colbert.embed_documents(TEXTS)
    raw = colbert._backend.pool([colbert.tokenizer(text)["input_ids"] for text in TEXTS])
    for matrix, expected, engine in zip(matrices, reference_colbert(colbert_path, TEXTS), raw, strict=True):
        assert matrix.dtype == np.float32
        assert matrix.shape == expected.shape == engine.shape
        assert matrix.shape[1] == COLBERT_DIM
        np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(matrix, expected, atol=TOLERANCE)
        np.testing.assert_allclose(matrix, engine, atol=1e-6)
    assert colbert.describe()["query_prefix"] == ""  # the fixture ships no markers: vLLM's rows as they are


@pytest.mark.slow  # a second BGE-M3 engine: a vLLM engine runs one pooling task
def test_bge_m3_colbert_vectors_equal_flagembedding(m3_sparse: SparseEmbedder, bge_m3_path: Path) -> None:
    with MultiVectorEmbedder(str(bge_m3_path), dtype="float32") as m3_multi:
        matrices = m3_multi.embed_documents(TEXTS)
        async_matrices = asyncio.run(m3_multi.aembed_documents(TEXTS))
    expected = reference_bge_m3(bge_m3_path, TEXTS)
    for matrix, again, reference in zip(matrices, async_matrices, expected, strict=True):
        np.testing.assert_allclose(matrix, reference["colbert"], atol=TOLERANCE)
        np.testing.assert_array_equal(matrix, again)
    async_sparse = asyncio.run(m3_sparse.aembed_queries(TEXTS[:2]))
    assert [v.to_dict() for v in async_sparse] == [v.to_dict() for v in m3_sparse.embed_queries(TEXTS[:2])]


def test_bad_input_fails_before_any_engine_starts(minilm_path: str, splade_path: Path) -> None:
    before = vllm_local.running_engines()
    with pytest.raises(
        SettingsError, match=r"serves the architectures .* is BertModel \(for a dense model use"
    ):
        SparseEmbedder(minilm_path)
    with pytest.raises(SettingsError, match=r"in-process only .*backend='vllm'"):
        MultiVectorEmbedder("colbert", backend="openai", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(SettingsError, match=r"no setting cache="):
        SparseEmbedder(str(splade_path), cache=True)
    with pytest.raises(ValueError, match="max_terms"):
        SparseEmbedder(str(splade_path), max_terms=0)
    assert vllm_local.running_engines() == before


def test_bad_texts_get_one_line_errors(splade_embedder: SparseEmbedder) -> None:
    with pytest.raises(
        TypeError, match=r"embed_documents\(\) expects a list of strings .* wrap it in a list"
    ):
        splade_embedder.embed_documents("one text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        splade_embedder.embed_queries(["fine", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="lone surrogate"):
        splade_embedder.embed_query("bad \ud800")
