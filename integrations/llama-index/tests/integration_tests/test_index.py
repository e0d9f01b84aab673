"""A `VectorStoreIndex` over LlamaIndex's Qdrant and Milvus vector stores: embed, store, retrieve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.schema import TextNode
from llama_index.embeddings.vllm_embed import VLLMEmbedding

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


def _nodes() -> list[TextNode]:
    # Nodes rather than Documents: the default sentence splitter would fetch a tokenizer from the internet.
    return [TextNode(text=text, metadata={"key": key}) for key, text in CORPUS.items()]


def _check_retrieval(vector_store: Any, embed_model: VLLMEmbedding) -> None:
    storage = StorageContext.from_defaults(vector_store=vector_store)
    index = VectorStoreIndex(_nodes(), storage_context=storage, embed_model=embed_model)
    retriever = index.as_retriever(similarity_top_k=1)
    for question, key in QUESTIONS.items():
        [hit] = retriever.retrieve(question)
        assert hit.node.metadata["key"] == key, question


def test_qdrant_vector_store(minilm_embedder: Embedder) -> None:
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    client = QdrantClient(location=":memory:")
    _check_retrieval(
        QdrantVectorStore(client=client, collection_name="li_docs"), VLLMEmbedding(embedder=minilm_embedder)
    )
    assert client.count("li_docs").count == len(CORPUS)


def test_milvus_vector_store(minilm_embedder: Embedder, tmp_path: Path) -> None:
    from llama_index.vector_stores.milvus import MilvusVectorStore

    store = MilvusVectorStore(
        uri=str(tmp_path / "milvus.db"),
        collection_name="li_docs",
        dim=minilm_embedder.dimension,
        overwrite=True,
    )
    _check_retrieval(store, VLLMEmbedding(embedder=minilm_embedder))
