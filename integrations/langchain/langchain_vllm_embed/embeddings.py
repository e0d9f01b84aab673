"""`VLLMEmbeddings`: LangChain's `Embeddings` interface over a vllm-embed `Embedder`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from langchain_core.embeddings import Embeddings
from langchain_core.utils import secret_from_env
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from vllm_embed import Embedder
from vllm_embed.lazy import ADAPTER_SETTINGS, LazyEmbedder, LazyEmbedderMixin

_API_KEY_VARIABLES = ["VLLM_EMBED_API_KEY", "OPENAI_API_KEY"]

# Fields that only describe how to build an Embedder: they conflict with `embedder=`.
_SETTING_FIELDS = ("model", *ADAPTER_SETTINGS, "api_key", "embedder_kwargs")


class VLLMEmbeddings(LazyEmbedderMixin, BaseModel, Embeddings):
    """LangChain embeddings computed by vLLM through vllm-embed, with the model's own prompts.

    Construction is cheap: the engine starts on the first embedding call, and instances with identical engine
    settings in one process share one engine. Pass `embedder=` to reuse an `Embedder` you already have (local
    or remote); it is not closed by this object.

    Example:
        >>> from langchain_vllm_embed import VLLMEmbeddings
        >>> embeddings = VLLMEmbeddings(model="Qwen/Qwen3-Embedding-0.6B", dimensions=256)
        >>> vectors = embeddings.embed_documents(["vLLM is fast.", "Qdrant stores vectors."])
        >>> query = embeddings.embed_query("Which engine is fast?")

    Raises:
        ValueError: At construction, for invalid settings, or for engine settings passed with `embedder=`.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    model: str | None = None
    """Hugging Face model id or local directory (the served model name for `backend="openai"`); required
    unless `embedder` is given."""

    dimensions: int | None = None
    """Output size; `None` keeps the model's native size, smaller values need a Matryoshka-trained model."""

    query_instruction: str | None = None
    """Task instruction for queries (instruction-tuned models such as Qwen3-Embedding); `None` uses the
    Embedder's default, then the model's own query prompt. Also applies with `embedder=`."""

    dtype: str = "auto"
    """Weights/activations dtype for vLLM: `"auto"`, `"float32"`, `"bfloat16"` or `"float16"`."""

    max_model_len: int | None = None
    """Longest input in tokens the engine accepts; `None` uses the model's own limit."""

    tensor_parallel_size: int = 1
    """Number of devices each layer is split over (vLLM tensor parallelism)."""

    pipeline_parallel_size: int = 1
    """Number of pipeline stages the layers are split over (vLLM pipeline parallelism)."""

    gpu_memory_utilization: float | None = None
    """Fraction of device memory vLLM may reserve; `None` leaves room for several engines."""

    trust_remote_code: bool = False
    """Allow the model repository to run its own Python code."""

    long_input: Literal["chunk", "truncate", "error"] = "chunk"
    """Inputs longer than the model accepts: `"chunk"` (token-weighted mean of windows), `"truncate"` or
    `"error"`."""

    backend: Literal["vllm", "openai"] = "vllm"
    """`"vllm"` runs the model in this process; `"openai"` calls an OpenAI-compatible embedding server."""

    base_url: str | None = None
    """Server URL for `backend="openai"`, e.g. `http://127.0.0.1:8000/v1`."""

    api_key: SecretStr | None = Field(default_factory=secret_from_env(_API_KEY_VARIABLES, default=None))
    """API key for `backend="openai"`; read from `VLLM_EMBED_API_KEY` or `OPENAI_API_KEY` when not given."""

    cache: bool | str | Path | None = None
    """Persistent embedding cache: `None`/`False` off, `True` per-user cache file, or a SQLite file path."""

    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments passed unchanged to the engine (`vllm.LLM`)."""

    embedder_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Any other `EmbedderConfig` setting (e.g. `revision`, `batch_size`, `profile`, `timeout`)."""

    embedder: Embedder | None = Field(default=None, exclude=True)
    """An existing `Embedder` to use instead of building one from the settings above."""

    _lazy: LazyEmbedder | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_settings(self) -> Self:
        if self.embedder is not None:
            conflicting = sorted(set(_SETTING_FIELDS) & self.model_fields_set)
            if conflicting:
                raise ValueError(
                    f"pass either embedder= or engine settings, not both (got {', '.join(conflicting)}); "
                    "the Embedder's own settings apply"
                )
            self.model = self.embedder.config.model
            self._lazy = LazyEmbedder(embedder=self.embedder)
            return self
        if self.model is None:
            raise ValueError(
                "VLLMEmbeddings needs a model: VLLMEmbeddings(model='Qwen/Qwen3-Embedding-0.6B')"
            )
        self._lazy = LazyEmbedder.from_settings(
            self, model=self.model, api_key=self.api_key, extra=self.embedder_kwargs
        )
        return self

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
