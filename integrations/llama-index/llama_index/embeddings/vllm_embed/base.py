"""`VLLMEmbedding`: LlamaIndex's `BaseEmbedding` over a vllm-embed `Embedder`."""

from __future__ import annotations

from typing import Any, ClassVar

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from pydantic import Field, SecretStr

from vllm_embed.adapters import EmbedderAdapter, model_field, setting_description

DEFAULT_EMBED_BATCH_SIZE = 2048
"""Texts per `_get_text_embeddings` call: vLLM schedules a large batch better than many small ones
(LlamaIndex's default of 10 leaves it mostly idle); this is the most `BaseEmbedding` allows."""


class VLLMEmbedding(EmbedderAdapter, BaseEmbedding):
    """LlamaIndex embeddings computed by vLLM through vllm-embed, with the model's own prompts.

    `model_name` is the model; every other `EmbedderConfig` setting is a field under its own name
    (`dimensions`, `dtype`, `backend`, `base_url`, `cache`, `revision`, …). Construction is cheap: the engine
    starts on the first embedding call, and instances with identical engine settings in one process share one
    engine. Pass `embedder=` to reuse an `Embedder` you already have (local or remote); it is not closed by
    this object.

    Example:
        >>> from llama_index.embeddings.vllm_embed import VLLMEmbedding
        >>> embed_model = VLLMEmbedding(model_name="Qwen/Qwen3-Embedding-0.6B", dimensions=256)
        >>> vectors = embed_model.get_text_embedding_batch(["vLLM is fast.", "Qdrant stores vectors."])
        >>> query = embed_model.get_query_embedding("Which engine is fast?")

    Raises:
        ValueError: At construction, for invalid settings, or for engine settings passed with `embedder=`.
    """

    _model_field: ClassVar[str] = "model_name"

    model_name: str = model_field(default="unknown")
    embed_batch_size: int = Field(
        default=DEFAULT_EMBED_BATCH_SIZE,
        description="Texts per call to the engine (the engine batches them together).",
        gt=0,
        le=2048,
    )
    # Left out of LlamaIndex's serialised form (`to_dict`, `to_json`), as before.
    api_key: SecretStr | None = Field(
        default=None, repr=False, exclude=True, description=setting_description("api_key")
    )

    def __init__(self, model_name: str | None = None, **kwargs: Any) -> None:
        """Builds the adapter without starting an engine.

        Args:
            model_name: Hugging Face model id or local directory (the served model name for
                `backend="openai"`); required unless `embedder` is given.
            **kwargs: The other fields of this class (every `EmbedderConfig` setting, `embedder`,
                `embed_batch_size`, …) or those of `BaseEmbedding` (`callback_manager`, …).
        """
        if model_name is not None:
            kwargs["model_name"] = model_name
        super().__init__(**kwargs)

    @classmethod
    def class_name(cls) -> str:
        """Returns the name LlamaIndex serialises this class under."""
        return "VLLMEmbedding"

    # -- BaseEmbedding ------------------------------------------------------------------------------

    def _get_query_embedding(self, query: str) -> Embedding:
        vector: Embedding = self.get_embedder().embed_query(query, self.query_instruction).tolist()
        return vector

    async def _aget_query_embedding(self, query: str) -> Embedding:
        embedder = await self._aget_embedder()
        vector: Embedding = (await embedder.aembed_query(query, self.query_instruction)).tolist()
        return vector

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aget_text_embeddings([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        # The whole batch goes to the engine at once (the base class would embed one text at a time).
        if not texts:
            return []
        vectors: list[Embedding] = self.get_embedder().embed_documents(texts).tolist()
        return vectors

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        if not texts:
            return []
        embedder = await self._aget_embedder()
        vectors: list[Embedding] = (await embedder.aembed_documents(texts)).tolist()
        return vectors
