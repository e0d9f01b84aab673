"""`EmbedderAdapter`: the settings, validation and lazy `Embedder` that the framework adapters share.

The LangChain (`langchain-vllm-embed`) and LlamaIndex (`llama-index-embeddings-vllm-embed`) adapters subclass
`EmbedderAdapter` next to their framework's base class. Every `EmbedderSettings` field reaches them from its
one declaration in `vllm_embed.config`, description included; each adapter adds only its model field, under
its framework's name.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from vllm_embed.adapters.lazy import LazyEmbedder
from vllm_embed.config import EmbedderConfig, EmbedderSettings
from vllm_embed.embedder import Embedder

PER_CALL_SETTINGS = frozenset({"query_instruction"})
"""Settings an adapter applies on each call rather than to the engine, so they also work with `embedder=`."""

ENGINE_SETTINGS = frozenset(EmbedderSettings.model_fields) - PER_CALL_SETTINGS
"""Settings that only describe how to build an `Embedder`: they cannot be combined with `embedder=`."""

_EXAMPLE_MODEL = "Qwen/Qwen3-Embedding-0.6B"


def setting_description(name: str) -> str:
    """Returns the description of `EmbedderConfig` setting `name`, for an adapter field declared differently.

    Raises:
        KeyError: If `EmbedderConfig` has no such setting.
    """
    return EmbedderConfig.model_fields[name].description or ""


def model_field(default: str | None = None) -> Any:
    """An adapter's model field: described as `EmbedderConfig.model`; optional, as `embedder=` may replace it.

    Args:
        default: The value when it is not given (the framework's own default, if it has one).
    """
    return Field(
        default=default, description=f"{setting_description('model')} Required unless `embedder` is given."
    )


class EmbedderAdapter(EmbedderSettings):
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
        name, field = type(self).__name__, self._model_field
        given = self.model_fields_set
        model: str | None = getattr(self, field) if field in given else None
        if self.embedder is not None:
            conflicting = sorted(given & ENGINE_SETTINGS)
            if model is not None and model != self.embedder.config.model:
                conflicting.append(field)
            if conflicting:
                raise ValueError(
                    f"pass either embedder= or engine settings, not both (got {', '.join(conflicting)}); "
                    "the Embedder's own settings apply"
                )
            setattr(self, field, self.embedder.config.model)
            self._lazy = LazyEmbedder(embedder=self.embedder)
            return self
        if model is None:
            raise ValueError(f"{name} needs a model: {name}({field}={_EXAMPLE_MODEL!r})")
        settings = {setting: getattr(self, setting) for setting in given & ENGINE_SETTINGS}
        # An API key (possibly read from the environment by the adapter) matters to the remote backend only.
        settings.pop("api_key", None)
        if self.backend == "openai" and self.api_key is not None:
            settings["api_key"] = self.api_key
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

    def close(self) -> None:
        """Releases the `Embedder` this object built (an `embedder=` passed in is left open)."""
        if self._lazy is not None:
            self._lazy.close()

    def _require_lazy(self) -> LazyEmbedder:
        if self._lazy is None:
            raise RuntimeError(f"{type(self).__name__} was not validated: build it with its constructor")
        return self._lazy
