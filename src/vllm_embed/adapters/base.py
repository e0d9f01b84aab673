"""`EmbedderAdapter`: the settings, validation and lazy `Embedder` that the framework adapters share.

The LangChain (`langchain-vllm-embed`) and LlamaIndex (`llama-index-embeddings-vllm-embed`) adapters subclass
`EmbedderAdapter` next to their framework's base class. Every `EmbedderSettings` field reaches them from its
one declaration in `vllm_embed.config`, description included; each adapter adds only its model field, under
its framework's name.
"""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from vllm_embed.adapters.lazy import LazyEmbedder, LazyHolder
from vllm_embed.adapters.settings import adopt_given, model_field, setting_description, settings_to_build
from vllm_embed.config import EmbedderConfig, EmbedderSettings
from vllm_embed.embedder import Embedder

PER_CALL_SETTINGS = frozenset({"query_instruction"})
"""Settings an adapter applies on each call rather than to the engine, so they also work with `embedder=`."""

ENGINE_SETTINGS = frozenset(EmbedderSettings.model_fields) - PER_CALL_SETTINGS
"""Settings that only describe how to build an `Embedder`: they cannot be combined with `embedder=`."""

_EXAMPLE_MODEL = "Qwen/Qwen3-Embedding-0.6B"


__all__ = ["ENGINE_SETTINGS", "PER_CALL_SETTINGS", "EmbedderAdapter", "model_field", "setting_description"]


class EmbedderAdapter(EmbedderSettings, LazyHolder[EmbedderConfig, Embedder]):
    """Base of the framework adapters: every `EmbedderSettings` field, `embedder=`, and a lazy `Embedder`.

    At construction the settings are validated (an `EmbedderConfig` is built, which is cheap); the `Embedder`
    and its engine start on the first embedding call. Subclasses declare the model field and name it in
    `_model_field`; the model may be omitted when `embedder` is given.

    Raises:
        ValueError: At construction, for invalid settings, a missing model, or engine settings combined with
            `embedder=`.
    """

    model_config = ConfigDict(extra="forbid")

    _model_field: ClassVar[str] = "model"

    embedder: Embedder | None = Field(default=None, exclude=True)
    """An existing `Embedder` to use instead of building one from the settings (it is not closed here); only
    per-call settings such as `query_instruction` may be combined with it."""

    _lazy: LazyEmbedder | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_settings(self) -> Self:
        if self.embedder is not None:
            adopt_given(self, self._model_field, "embedder", self.embedder.config.model, ENGINE_SETTINGS)
            self._lazy = LazyEmbedder(embedder=self.embedder)
            return self
        model, settings = settings_to_build(self, self._model_field, ENGINE_SETTINGS, _EXAMPLE_MODEL)
        self._lazy = LazyEmbedder(EmbedderConfig(model=model, **settings))
        return self

    @property
    def embedder_config(self) -> EmbedderConfig:
        """The settings of the `Embedder` in use or to be built (reading them starts nothing)."""
        return self._require_lazy().config

    def get_embedder(self) -> Embedder:
        """Returns the `Embedder` in use, building it (and starting its engine) on first call."""
        return self._require_lazy().get()

    async def _aget_embedder(self) -> Embedder:
        return await self._require_lazy().aget()
