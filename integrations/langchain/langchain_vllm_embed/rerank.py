"""`VLLMRerank`: LangChain's `BaseDocumentCompressor` over a vllm-embed `Reranker`."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.utils import secret_from_env
from pydantic import Field, SecretStr

from vllm_embed.adapters import RerankerAdapter, reranker_model_field, reranker_setting_description
from vllm_embed.config import API_KEY_VARIABLES

DEFAULT_TOP_N = 3
"""Documents `VLLMRerank` keeps unless told otherwise (as LangChain's `CohereRerank`)."""


class VLLMRerank(RerankerAdapter, BaseDocumentCompressor):
    """LangChain document compressor that reorders retrieved documents by a reranker run on vLLM.

    Use it as the `base_compressor` of a `ContextualCompressionRetriever`: the retriever fetches candidates,
    `VLLMRerank` scores each against the query (Qwen3-Reranker or a cross-encoder, through vllm-embed's
    `Reranker`) and keeps the best `top_n`, each with its score in `metadata["relevance_score"]`.

    Every `RerankerConfig` setting is a field (`instruction`, `dtype`, `max_model_len`, `backend`,
    `base_url`, …). Construction is cheap: the engine starts on the first call. Pass `reranker=` to reuse a
    `Reranker` you already have (local or remote); it is not closed by this object.

    Example:
        >>> from langchain_classic.retrievers import ContextualCompressionRetriever
        >>> from langchain_vllm_embed import VLLMRerank
        >>> retriever = ContextualCompressionRetriever(
        ...     base_compressor=VLLMRerank(model="Qwen/Qwen3-Reranker-0.6B", top_n=3),
        ...     base_retriever=store.as_retriever(search_kwargs={"k": 20}),
        ... )
        >>> documents = retriever.invoke("How do I bake bread?")

    Raises:
        ValueError: At construction, for invalid settings, or for settings passed with `reranker=`.
    """

    model: str | None = reranker_model_field()

    top_n: int | None = Field(default=DEFAULT_TOP_N, ge=1)
    """How many documents to return, best first; `None` returns them all, reordered."""

    api_key: SecretStr | None = Field(
        default_factory=secret_from_env(list(API_KEY_VARIABLES), default=None),
        repr=False,
        description=reranker_setting_description("api_key"),
    )

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Returns the `top_n` documents most relevant to `query`, best first.

        Args:
            documents: The retrieved documents.
            query: The query they were retrieved for.
            callbacks: Unused: scoring runs no LangChain component.

        Returns:
            Copies of the kept documents with the score (higher is more relevant) in
            `metadata["relevance_score"]`; the input documents are not modified.
        """
        ranked = self.rerank_texts(query, [document.page_content for document in documents], self.top_n)
        return _scored(documents, ranked)

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async `compress_documents`: awaits the engine without blocking the event loop."""
        texts = [document.page_content for document in documents]
        return _scored(documents, await self.arerank_texts(query, texts, self.top_n))


def _scored(documents: Sequence[Document], ranked: list[tuple[int, float]]) -> list[Document]:
    return [
        documents[index].model_copy(
            update={"metadata": {**documents[index].metadata, "relevance_score": score}}
        )
        for index, score in ranked
    ]
