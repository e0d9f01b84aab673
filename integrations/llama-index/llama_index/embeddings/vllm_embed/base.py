"""`VLLMEmbedding`: LlamaIndex's `BaseEmbedding` over a vllm-embed `Embedder`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from vllm_embed import Embedder
from vllm_embed.lazy import ADAPTER_SETTINGS, LazyEmbedder, LazyEmbedderMixin

DEFAULT_EMBED_BATCH_SIZE = 2048
"""Texts per `_get_text_embeddings` call: vLLM schedules a large batch better than many small ones
(LlamaIndex's default of 10 leaves it mostly idle); 2048 is the most `BaseEmbedding` allows."""

# Fields that only describe how to build an Embedder: they conflict with `embedder=`.
_SETTING_FIELDS = (*ADAPTER_SETTINGS, "api_key", "embedder_kwargs")


class VLLMEmbedding(LazyEmbedderMixin, BaseEmbedding):
    """LlamaIndex embeddings computed by vLLM through vllm-embed, with the model's own prompts.

    Construction is cheap: the engine starts on the first embedding call, and instances with identical engine
    settings in one process share one engine. Pass `embedder=` to reuse an `Embedder` you already have (local
    or remote); it is not closed by this object.

    Example:
        >>> from llama_index.embeddings.vllm_embed import VLLMEmbedding
        >>> embed_model = VLLMEmbedding(model_name="Qwen/Qwen3-Embedding-0.6B", dimensions=256)
        >>> vectors = embed_model.get_text_embedding_batch(["vLLM is fast.", "Qdrant stores vectors."])
        >>> query = embed_model.get_query_embedding("Which engine is fast?")

    Raises:
        ValueError: At construction, for invalid settings, or for engine settings passed with `embedder=`.
    """

    model_config = ConfigDict(
        extra="forbid", protected_namespaces=("pydantic_model_",), arbitrary_types_allowed=True
    )

    embed_batch_size: int = Field(
        default=DEFAULT_EMBED_BATCH_SIZE,
        description="Texts per call to the engine (the engine batches them together).",
        gt=0,
        le=2048,
    )
    dimensions: int | None = Field(
        default=None,
        description="Output size; None keeps the model's native size (smaller needs a Matryoshka model).",
    )
    query_instruction: str | None = Field(
        default=None,
        description=(
            "Task instruction for queries (instruction-tuned models such as Qwen3-Embedding); None uses the "
            "Embedder's default, then the model's own query prompt. Also applies with embedder=."
        ),
    )
    dtype: str = Field(
        default="auto", description="Weights/activations dtype for vLLM: auto, float32, bfloat16 or float16."
    )
    max_model_len: int | None = Field(
        default=None, description="Longest input in tokens the engine accepts; None uses the model's limit."
    )
    tensor_parallel_size: int = Field(
        default=1, description="Number of devices each layer is split over (vLLM tensor parallelism)."
    )
    pipeline_parallel_size: int = Field(
        default=1,
        description="Number of pipeline stages the layers are split over (vLLM pipeline parallelism).",
    )
    gpu_memory_utilization: float | None = Field(
        default=None, description="Fraction of device memory vLLM may reserve; None leaves room for several."
    )
    trust_remote_code: bool = Field(
        default=False, description="Allow the model repository to run its own Python code."
    )
    long_input: Literal["chunk", "truncate", "error"] = Field(
        default="chunk",
        description=(
            "Inputs longer than the model accepts: chunk (token-weighted mean of windows), truncate or error."
        ),
    )
    backend: Literal["vllm", "openai"] = Field(
        default="vllm",
        description="vllm runs the model in this process; openai calls an OpenAI-compatible server.",
    )
    base_url: str | None = Field(
        default=None, description="Server URL for backend='openai', e.g. http://127.0.0.1:8000/v1."
    )
    api_key: SecretStr | None = Field(
        default=None,
        exclude=True,
        description="API key for backend='openai'; VLLM_EMBED_API_KEY or OPENAI_API_KEY when not given.",
    )
    cache: bool | str | Path | None = Field(
        default=None,
        description="Persistent embedding cache: None/False off, True per-user cache file, or a SQLite path.",
    )
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra keyword arguments passed unchanged to the engine (vllm.LLM)."
    )
    embedder_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Any other EmbedderConfig setting (e.g. revision, batch_size, profile, timeout).",
    )
    embedder: Embedder | None = Field(
        default=None,
        exclude=True,
        description="An existing Embedder to use instead of building one from the settings above.",
    )

    _lazy: LazyEmbedder | None = PrivateAttr(default=None)

    def __init__(self, model_name: str | None = None, **kwargs: Any) -> None:
        """Builds the adapter without starting an engine.

        Args:
            model_name: Hugging Face model id or local directory (the served model name for
                `backend="openai"`); required unless `embedder` is given.
            **kwargs: The fields of this class, or those of `BaseEmbedding` (`callback_manager`, …).
        """
        if model_name is not None:
            kwargs["model_name"] = model_name
        super().__init__(**kwargs)

    @model_validator(mode="after")
    def _check_settings(self) -> Self:
        if self.embedder is not None:
            conflicting = sorted(set(_SETTING_FIELDS) & self.model_fields_set)
            if "model_name" in self.model_fields_set and self.model_name != self.embedder.config.model:
                conflicting.append("model_name")
            if conflicting:
                raise ValueError(
                    f"pass either embedder= or engine settings, not both (got {', '.join(conflicting)}); "
                    "the Embedder's own settings apply"
                )
            self.model_name = self.embedder.config.model
            self._lazy = LazyEmbedder(embedder=self.embedder)
            return self
        if "model_name" not in self.model_fields_set:
            raise ValueError(
                "VLLMEmbedding needs a model: VLLMEmbedding(model_name='Qwen/Qwen3-Embedding-0.6B')"
            )
        self._lazy = LazyEmbedder.from_settings(
            self, model=self.model_name, api_key=self.api_key, extra=self.embedder_kwargs
        )
        return self

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
