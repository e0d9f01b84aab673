"""`VLLMSparseFunctions` (a real SPLADE engine) as the sparse half of LlamaIndex's hybrid `QdrantVectorStore`.

The index is LlamaIndex's own, on Qdrant local mode, its dense half `VLLMEmbedding` over MiniLM; what the
store holds and what sparse retrieval finds are checked against `SparseEmbedder` and a brute-force dot
product.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.schema import TextNode
from llama_index.embeddings.vllm_embed import VLLMEmbedding, VLLMSparseFunctions
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import QdrantClient
from sparse_retrieval import CORPUS, QUERIES, brute_force_top, check_stored

from vllm_embed import Embedder, SparseEmbedder


@pytest.fixture(scope="module")
def splade(splade_path: Path) -> Iterator[SparseEmbedder]:
    """The module's SPLADE engine (the root's `splade_embedder` settings: a combined session shares it)."""
    with SparseEmbedder(str(splade_path), dtype="float32") as embedder:
        yield embedder


@pytest.fixture(scope="module")
def index(
    splade: SparseEmbedder,
    splade_path: Path,
    minilm_embedder: Embedder,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[VectorStoreIndex]:
    """A hybrid index LlamaIndex wrote; its sparse functions are built from the model (same engine)."""
    sparse = VLLMSparseFunctions(str(splade_path), dtype="float32")
    client = QdrantClient(path=str(tmp_path_factory.mktemp("qdrant")))
    store = QdrantVectorStore(
        "docs",
        client=client,
        enable_hybrid=True,
        sparse_doc_fn=sparse.doc_fn,
        sparse_query_fn=sparse.query_fn,
    )
    # The key is left out of what is embedded, so each node's embedded content is exactly its text.
    nodes = [
        TextNode(text=text, metadata={"key": key}, excluded_embed_metadata_keys=["key"])
        for key, text in CORPUS.items()
    ]
    yield VectorStoreIndex(
        nodes,
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=VLLMEmbedding(embedder=minilm_embedder),
    )
    client.close()
    sparse.close()


def _store(index: VectorStoreIndex) -> QdrantVectorStore:
    store = index.vector_store
    assert isinstance(store, QdrantVectorStore)
    return store


def test_the_store_holds_the_sparse_embedders_vectors(
    index: VectorStoreIndex, splade: SparseEmbedder
) -> None:
    store = _store(index)
    points, _ = store.client.scroll("docs", limit=100, with_vectors=True)
    name = store.sparse_vector_name
    stored = {point.payload["key"]: point.vector[name] for point in points}  # type: ignore[index]
    check_stored(stored, splade)


def test_sparse_retrieval_equals_a_brute_force_dot_product(
    index: VectorStoreIndex, splade: SparseEmbedder
) -> None:
    retriever = index.as_retriever(vector_store_query_mode="sparse", similarity_top_k=5, sparse_top_k=5)
    for query in QUERIES:
        expected, scores = brute_force_top(splade, query)
        hits = retriever.retrieve(query)
        assert [hit.node.metadata["key"] for hit in hits] == expected, query
        np.testing.assert_allclose([hit.score for hit in hits], scores, rtol=1e-5)


def test_hybrid_retrieval_finds_the_exact_text(index: VectorStoreIndex) -> None:
    retriever = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=1, sparse_top_k=3)
    for key in ("crc", "bread", "qdrant"):
        [hit] = retriever.retrieve(CORPUS[key])
        assert hit.node.metadata["key"] == key
