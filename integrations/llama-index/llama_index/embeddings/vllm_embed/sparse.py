"""`VLLMSparseFunctions`: a `SparseEmbedder` as `QdrantVectorStore`'s `sparse_doc_fn` / `sparse_query_fn`."""

from __future__ import annotations

from typing import Any

from vllm_embed.adapters import SparseEmbedderAdapter, sparse_model_field

BatchSparseEncoding = tuple[list[list[int]], list[list[float]]]
"""What llama-index-vector-stores-qdrant's sparse functions return: each text's indices, then values."""


class VLLMSparseFunctions(SparseEmbedderAdapter):
    """Learned sparse vectors (SPLADE, BGE-M3 lexical weights) from vLLM, for LlamaIndex's Qdrant store.

    `doc_fn` and `query_fn` are the `sparse_doc_fn` and `sparse_query_fn` of
    `llama_index.vector_stores.qdrant.QdrantVectorStore(enable_hybrid=True, ...)`, which then stores and
    searches these vectors instead of its default fastembed SPLADE. Every `SparseEmbedderConfig` setting is a
    field (`max_terms`, `dtype`, `long_input`, …). Construction is cheap: the engine starts on the first
    call, and `close()` releases it. Pass `sparse_embedder=` to reuse a `SparseEmbedder` you already have;
    it is not closed by this object. The store calls these functions synchronously, also from its async
    methods (its interface has no async variant).

    Example:
        >>> from llama_index.core import StorageContext, VectorStoreIndex
        >>> from llama_index.embeddings.vllm_embed import VLLMEmbedding, VLLMSparseFunctions
        >>> from llama_index.vector_stores.qdrant import QdrantVectorStore
        >>> from qdrant_client import QdrantClient
        >>> sparse = VLLMSparseFunctions("BAAI/bge-m3")
        >>> store = QdrantVectorStore(
        ...     "docs",
        ...     client=QdrantClient(path="./qdrant_data"),
        ...     enable_hybrid=True,
        ...     sparse_doc_fn=sparse.doc_fn,
        ...     sparse_query_fn=sparse.query_fn,
        ... )
        >>> index = VectorStoreIndex.from_documents(
        ...     documents,
        ...     storage_context=StorageContext.from_defaults(vector_store=store),
        ...     embed_model=VLLMEmbedding("BAAI/bge-m3"),
        ... )
        >>> hits = index.as_retriever(vector_store_query_mode="hybrid").retrieve("Which engine is fast?")

    Raises:
        ValueError: At construction, for invalid settings, `backend="openai"` (the sparse poolers run
            in-process only), or settings passed with `sparse_embedder=`.
    """

    model: str | None = sparse_model_field()

    def __init__(self, model: str | None = None, **kwargs: Any) -> None:
        """Builds the functions without starting an engine.

        Args:
            model: Hugging Face model id or local directory of a SPLADE or BGE-M3 model; required unless
                `sparse_embedder` is given.
            **kwargs: The other fields of this class (every `SparseEmbedderConfig` setting, or
                `sparse_embedder`).
        """
        if model is not None:
            kwargs["model"] = model
        super().__init__(**kwargs)

    def doc_fn(self, texts: list[str]) -> BatchSparseEncoding:
        """Embeds documents: `sparse_doc_fn`. Returns each text's vocabulary ids (ascending) and weights."""
        return _columns(self.embed_sparse(texts, "document"))

    def query_fn(self, texts: list[str]) -> BatchSparseEncoding:
        """Embeds queries: `sparse_query_fn`. Returns each text's vocabulary ids (ascending) and weights."""
        return _columns(self.embed_sparse(texts, "query"))


def _columns(vectors: list[tuple[list[int], list[float]]]) -> BatchSparseEncoding:
    return [indices for indices, _ in vectors], [values for _, values in vectors]
