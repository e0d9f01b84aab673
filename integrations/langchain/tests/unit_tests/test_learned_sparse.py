"""`VLLMSparseEmbeddings` without an engine: a langchain-qdrant `SparseEmbeddings`, lazy, its errors."""

from __future__ import annotations

from unittest.mock import create_autospec

import langchain_vllm_embed
import numpy as np
import pytest
from langchain_qdrant import SparseEmbeddings, SparseVector
from langchain_vllm_embed import VLLMSparseEmbeddings

from vllm_embed import SparseEmbedder, SparseEmbedderConfig
from vllm_embed import SparseVector as OurSparseVector


def _fake_sparse_embedder() -> SparseEmbedder:
    fake = create_autospec(SparseEmbedder, instance=True)
    fake.config = SparseEmbedderConfig(model="fake-splade")
    vector = OurSparseVector(np.array([2, 9], dtype=np.int64), np.array([0.25, 2.0], dtype=np.float32))
    fake.embed_documents.return_value = fake.embed_queries.return_value = [vector]
    fake.aembed_documents.return_value = fake.aembed_queries.return_value = [vector]
    return fake  # type: ignore[no-any-return]


def test_is_exported_lazily_and_builds_no_engine() -> None:
    assert "VLLMSparseEmbeddings" in langchain_vllm_embed.__all__
    sparse = VLLMSparseEmbeddings(model="/no/such/model/on/this/machine", max_terms=32)
    assert isinstance(sparse, SparseEmbeddings) and sparse.sparse_embedder_config.max_terms == 32
    assert sparse.embed_documents([]) == []
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        langchain_vllm_embed.Nope  # noqa: B018


def test_argument_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match=r"needs a model: VLLMSparseEmbeddings\(model="):
        VLLMSparseEmbeddings()
    with pytest.raises(ValueError, match="runs in-process only"):
        VLLMSparseEmbeddings(model="m", backend="openai")
    with pytest.raises(
        ValueError, match=r"pass either sparse_embedder= or engine settings, not both \(got dtype\)"
    ):
        VLLMSparseEmbeddings(sparse_embedder=_fake_sparse_embedder(), dtype="float32")


async def test_returns_langchain_qdrant_sparse_vectors_sync_and_async() -> None:
    sparse = VLLMSparseEmbeddings(sparse_embedder=_fake_sparse_embedder())
    expected = SparseVector(indices=[2, 9], values=[0.25, 2.0])
    assert sparse.embed_documents(["doc"]) == [expected] == await sparse.aembed_documents(["doc"])
    assert sparse.embed_query("query") == expected == await sparse.aembed_query("query")
