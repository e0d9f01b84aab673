"""`VLLMEmbeddings` behind LangChain's Qdrant and Milvus vector stores: embed, store, retrieve."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_vllm_embed import VLLMEmbeddings

from vllm_embed import Embedder

CORPUS = {
    "vllm": "vLLM is a high-throughput inference and serving engine for large language models.",
    "qdrant": "Qdrant is a vector database that stores embeddings and searches them by similarity.",
    "milvus": "Milvus Lite keeps a whole vector database in a single local file.",
    "bread": "A good sourdough needs flour, water, salt and a lively starter.",
    "bikes": "Check the tyre pressure and oil the chain before a long bicycle ride.",
}
QUESTIONS = {
    "How do I bake bread at home?": "bread",
    "Which engine serves language models quickly?": "vllm",
    "What should I do before cycling far?": "bikes",
}


@pytest.fixture
def embeddings(minilm_embedder: Embedder) -> VLLMEmbeddings:
    return VLLMEmbeddings(embedder=minilm_embedder)


def test_qdrant_vector_store(embeddings: VLLMEmbeddings) -> None:
    from langchain_qdrant import QdrantVectorStore

    store = QdrantVectorStore.from_texts(
        list(CORPUS.values()),
        embeddings,
        metadatas=[{"key": key} for key in CORPUS],
        location=":memory:",
        collection_name="lc-docs",
    )
    for question, key in QUESTIONS.items():
        [hit] = store.similarity_search(question, k=1)
        assert hit.metadata["key"] == key, question


def test_milvus_vector_store(embeddings: VLLMEmbeddings, tmp_path: Path) -> None:
    from langchain_milvus import Milvus

    store = Milvus.from_texts(
        list(CORPUS.values()),
        embeddings,
        metadatas=[{"key": key} for key in CORPUS],
        connection_args={"uri": str(tmp_path / "milvus.db")},
        collection_name="lc_docs",
    )
    try:
        for question, key in QUESTIONS.items():
            [hit] = store.similarity_search(question, k=1)
            assert hit.metadata["key"] == key, question
    finally:
        store.client.close()
