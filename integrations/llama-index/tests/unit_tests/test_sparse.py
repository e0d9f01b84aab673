"""`VLLMSparseFunctions` without an engine: the shape `QdrantVectorStore` expects, its errors."""

from __future__ import annotations

from unittest.mock import create_autospec

import numpy as np
import pytest
from llama_index.embeddings.vllm_embed import VLLMSparseFunctions
from llama_index.vector_stores.qdrant.utils import SparseEncoderCallable

from vllm_embed import SparseEmbedder, SparseEmbedderConfig, SparseVector


def test_builds_no_engine_and_returns_qdrant_stores_batch_shape() -> None:
    functions = VLLMSparseFunctions("/no/such/model/on/this/machine", max_terms=16)
    assert functions.sparse_embedder_config.max_terms == 16
    doc_fn: SparseEncoderCallable = functions.doc_fn
    assert doc_fn([]) == ([], [])

    fake = create_autospec(SparseEmbedder, instance=True)
    fake.config = SparseEmbedderConfig(model="fake-splade")
    one = SparseVector(np.array([1, 4], dtype=np.int64), np.array([0.5, 0.75], dtype=np.float32))
    two = SparseVector(np.array([4], dtype=np.int64), np.array([2.0], dtype=np.float32))
    fake.embed_documents.return_value = fake.embed_queries.return_value = [one, two]
    functions = VLLMSparseFunctions(sparse_embedder=fake)
    expected = ([[1, 4], [4]], [[0.5, 0.75], [2.0]])
    assert functions.doc_fn(["a", "b"]) == expected == functions.query_fn(["a", "b"])
    fake.embed_queries.assert_called_once_with(["a", "b"])


def test_argument_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match=r"needs a model: VLLMSparseFunctions\(model="):
        VLLMSparseFunctions()
    with pytest.raises(ValueError, match="runs in-process only"):
        VLLMSparseFunctions("m", backend="openai")
    with pytest.raises(ValueError, match="long_input"):
        VLLMSparseFunctions("m", long_input="wrap")
