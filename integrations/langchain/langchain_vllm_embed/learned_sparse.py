"""`VLLMSparseEmbeddings`: a `SparseEmbedder` (SPLADE, BGE-M3) as a langchain-qdrant `SparseEmbeddings`."""

from __future__ import annotations

from langchain_qdrant import SparseEmbeddings, SparseVector

from vllm_embed.adapters import SparseEmbedderAdapter, sparse_model_field


class VLLMSparseEmbeddings(SparseEmbedderAdapter, SparseEmbeddings):
    """Learned sparse vectors (SPLADE, BGE-M3 lexical weights) computed by vLLM, for langchain-qdrant.

    Give it to `QdrantVectorStore` as `sparse_embedding=` with `RetrievalMode.SPARSE` or `HYBRID`. Every
    `SparseEmbedderConfig` setting is a field (`max_terms`, `dtype`, `long_input`, `revision`, …).
    Construction is cheap: the engine starts on the first embedding call. Pass `sparse_embedder=` to reuse a
    `SparseEmbedder` you already have; it is not closed by this object. The weights are the model's own, so
    the store's sparse vector needs no IDF modifier (langchain-qdrant creates it without one).

    Example:
        >>> from langchain_qdrant import QdrantVectorStore, RetrievalMode
        >>> from langchain_vllm_embed import VLLMEmbeddings, VLLMSparseEmbeddings
        >>> store = QdrantVectorStore.from_texts(
        ...     ["vLLM is fast.", "Qdrant stores vectors."],
        ...     embedding=VLLMEmbeddings(model="BAAI/bge-m3"),
        ...     sparse_embedding=VLLMSparseEmbeddings(model="BAAI/bge-m3"),
        ...     retrieval_mode=RetrievalMode.HYBRID,
        ...     location=":memory:",
        ...     collection_name="docs",
        ... )
        >>> hits = store.similarity_search("Which engine is fast?", k=1)

    Raises:
        ValueError: At construction, for invalid settings, `backend="openai"` (the sparse poolers run
            in-process only), or settings passed with `sparse_embedder=`.
    """

    model: str | None = sparse_model_field()

    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        """Embeds documents as sparse vectors (vocabulary ids ascending, weights > 0)."""
        return [SparseVector(indices=i, values=v) for i, v in self.embed_sparse(texts, "document")]

    def embed_query(self, text: str) -> SparseVector:
        """Embeds a search query as a sparse vector."""
        [(indices, values)] = self.embed_sparse([text], "query")
        return SparseVector(indices=indices, values=values)

    async def aembed_documents(self, texts: list[str]) -> list[SparseVector]:
        """Async `embed_documents`: awaits the engine without blocking the event loop."""
        return [SparseVector(indices=i, values=v) for i, v in await self.aembed_sparse(texts, "document")]

    async def aembed_query(self, text: str) -> SparseVector:
        """Async `embed_query`: awaits the engine without blocking the event loop."""
        [(indices, values)] = await self.aembed_sparse([text], "query")
        return SparseVector(indices=indices, values=values)
