"""Qwen3-Embedding behaviour on a tiny random Qwen3 model, checked against a plain-transformers reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_qwen3 import HIDDEN_SIZE, reference_embeddings

from vllm_embed import Embedder
from vllm_embed.backends import vllm_local
from vllm_embed.profiles import QWEN3_DEFAULT_INSTRUCTION

DOCS = [
    "hello world",
    "",
    "the model pools the last token of every input",
    "a\x00b with: punctuation\nand lines",
]
QUERIES = ["what does the model pool", "hello"]


def _assert_close(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.shape == reference.shape
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= 0.999, cosines


def test_profile_is_read_from_the_model_files(tiny_qwen3_path: Path, qwen3_embedder: Embedder) -> None:
    profile = qwen3_embedder.profile
    assert profile.family == "qwen3-embedding"
    assert profile.pooling == "last"
    assert profile.matryoshka
    assert profile.native_dimension == HIDDEN_SIZE
    assert profile.max_length == 512
    assert qwen3_embedder.dimension == HIDDEN_SIZE


def test_documents_get_no_prompt(tiny_qwen3_path: Path, qwen3_embedder: Embedder) -> None:
    _assert_close(qwen3_embedder.embed_documents(DOCS), reference_embeddings(tiny_qwen3_path, DOCS))


def test_queries_use_the_default_instruction(tiny_qwen3_path: Path, qwen3_embedder: Embedder) -> None:
    formatted = [f"Instruct: {QWEN3_DEFAULT_INSTRUCTION}\nQuery:{q}" for q in QUERIES]
    assert qwen3_embedder.format_query(QUERIES[0]) == formatted[0]
    _assert_close(qwen3_embedder.embed_queries(QUERIES), reference_embeddings(tiny_qwen3_path, formatted))
    single = qwen3_embedder.embed_query(QUERIES[0])
    _assert_close(single[None, :], reference_embeddings(tiny_qwen3_path, formatted[:1]))


def test_custom_instruction_per_call_and_per_embedder(
    tiny_qwen3_path: Path, qwen3_embedder: Embedder
) -> None:
    instruction = "Given a question, retrieve code that answers it"
    formatted = [f"Instruct: {instruction}\nQuery:{q}" for q in QUERIES]
    expected = reference_embeddings(tiny_qwen3_path, formatted)
    _assert_close(qwen3_embedder.embed_queries(QUERIES, instruction=instruction), expected)
    with Embedder(str(tiny_qwen3_path), dtype="float32", query_instruction=instruction) as instructed:
        _assert_close(instructed.embed_queries(QUERIES), expected)
        # The query instruction never leaks into documents.
        _assert_close(instructed.embed_documents(DOCS), reference_embeddings(tiny_qwen3_path, DOCS))


@pytest.mark.parametrize("dimensions", [32, 48])
def test_matryoshka_dimensions(tiny_qwen3_path: Path, qwen3_embedder: Embedder, dimensions: int) -> None:
    with Embedder(str(tiny_qwen3_path), dtype="float32", dimensions=dimensions) as reduced:
        vectors = reduced.embed_documents(DOCS)
        assert vectors.shape == (len(DOCS), dimensions)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        _assert_close(vectors, reference_embeddings(tiny_qwen3_path, DOCS, dimensions=dimensions))
        formatted = [f"Instruct: {QWEN3_DEFAULT_INSTRUCTION}\nQuery:{q}" for q in QUERIES]
        _assert_close(
            reduced.embed_queries(QUERIES), reference_embeddings(tiny_qwen3_path, formatted, dimensions)
        )


@pytest.mark.parametrize("dimensions", [16, 65, 5000])
def test_dimensions_outside_the_range_fail_before_the_engine(tiny_qwen3_path: Path, dimensions: int) -> None:
    before = vllm_local.running_engines()
    with pytest.raises(ValueError, match=rf"^dimensions={dimensions} is outside 32\.\.64 for "):
        Embedder(str(tiny_qwen3_path), dimensions=dimensions)
    assert vllm_local.running_engines() == before
