"""`VLLMEmbeddings`: LangChain's `Embeddings` interface over a vllm-embed `Embedder`."""

from __future__ import annotations

from langchain_core.embeddings import Embeddings
from langchain_core.utils import secret_from_env
from pydantic import Field, SecretStr

from vllm_embed.adapters import EmbedderAdapter, model_field, setting_description
from vllm_embed.config import API_KEY_VARIABLES


class VLLMEmbeddings(EmbedderAdapter, Embeddings):
    """LangChain embeddings computed by vLLM through vllm-embed, with the model's own prompts.

    Every `EmbedderConfig` setting is a field (`dimensions`, `dtype`, `backend`, `base_url`, `cache`,
    `revision`, …). Construction is cheap: the engine starts on the first embedding call, and instances with
    identical engine settings in one process share one engine. Pass `embedder=` to reuse an `Embedder` you
    already have (local or remote); it is not closed by this object.

    Example:
        >>> from langchain_vllm_embed import VLLMEmbeddings
        >>> embeddings = VLLMEmbeddings(model="Qwen/Qwen3-Embedding-0.6B", dimensions=256)
        >>> vectors = embeddings.embed_documents(["vLLM is fast.", "Qdrant stores vectors."])
        >>> query = embeddings.embed_query("Which engine is fast?")

    Raises:
        ValueError: At construction, for invalid settings, or for engine settings passed with `embedder=`.
    """

    model: str | None = model_field()

    api_key: SecretStr | None = Field(
        default_factory=secret_from_env(list(API_KEY_VARIABLES), default=None),
        repr=False,
        description=setting_description("api_key"),
    )

    # -- Embeddings ---------------------------------------------------------------------------------

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embeds documents with the model's document prompt.

        Args:
            texts: The documents.

        Returns:
            One unit-length vector per document.
        """
        if not texts:
            return []
        vectors: list[list[float]] = self.get_embedder().embed_documents(texts).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embeds a search query with the query instruction or the model's query prompt.

        Args:
            text: The query.

        Returns:
            A unit-length vector.
        """
        vector: list[float] = self.get_embedder().embed_query(text, self.query_instruction).tolist()
        return vector

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async `embed_documents`: awaits the engine without blocking the event loop."""
        if not texts:
            return []
        embedder = await self._aget_embedder()
        vectors: list[list[float]] = (await embedder.aembed_documents(texts)).tolist()
        return vectors

    async def aembed_query(self, text: str) -> list[float]:
        """Async `embed_query`: awaits the engine without blocking the event loop."""
        embedder = await self._aget_embedder()
        vector: list[float] = (await embedder.aembed_query(text, self.query_instruction)).tolist()
        return vector
