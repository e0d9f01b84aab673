"""`RerankerAdapter`: the settings, validation and lazy `Reranker` that the framework rerankers share.

LangChain's `langchain_vllm_embed.VLLMRerank` (a `BaseDocumentCompressor`) and LlamaIndex's
`llama_index.postprocessor.vllm_embed_rerank.VLLMRerank` (a `BaseNodePostprocessor`) subclass
`RerankerAdapter` next to their framework's base class. Every `RerankerConfig` setting but the model reaches
them from its one declaration in `vllm_embed.config`, description included; each adapter adds its model
field and `top_n`. Nothing here imports a framework.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from vllm_embed.adapters.lazy import LazyHolder, LazyReranker
from vllm_embed.adapters.settings import (
    adopt_given,
    model_field,
    setting_description,
    settings_except_model,
    settings_to_build,
)
from vllm_embed.config import EngineSettings, RerankerConfig
from vllm_embed.reranker import Reranker

if TYPE_CHECKING:
    from vllm_embed.config import RerankLongInputPolicy

    class RerankerSettings(EngineSettings):
        """Type checkers' view of the class built below (the reranker-only fields of `RerankerConfig`)."""

        instruction: str | None = None
        profile: str | None = None
        long_input: RerankLongInputPolicy = "truncate"

else:
    RerankerSettings = settings_except_model(
        RerankerConfig,
        "RerankerSettings",
        "Every setting of a `Reranker` except the model: the adapters' settings.",
        __name__,
    )

RERANKER_SETTINGS = frozenset(RerankerSettings.model_fields)
"""Every setting of a `Reranker` but the model; all describe how to build one, so none combines with
`reranker=`."""

_EXAMPLE_MODEL = "Qwen/Qwen3-Reranker-0.6B"


def reranker_setting_description(name: str) -> str:
    """`setting_description(name, RerankerConfig)`: the description of a `RerankerConfig` setting."""
    return setting_description(name, RerankerConfig)


def reranker_model_field(default: str | None = None) -> Any:
    """`model_field(default, config=RerankerConfig, given="reranker")`: the rerankers' model field."""
    return model_field(default, config=RerankerConfig, given="reranker")


class RerankerAdapter(RerankerSettings, LazyHolder[RerankerConfig, Reranker]):
    """Base of the framework rerankers: every `RerankerSettings` field, `reranker=`, and a lazy `Reranker`.

    At construction the settings are validated (a `RerankerConfig` is built, which is cheap); the `Reranker`
    and its engine start on the first call that scores. Subclasses declare the model field and name it in
    `_model_field`; the model may be omitted when `reranker` is given.

    Raises:
        ValueError: At construction, for invalid settings, a missing model, or settings combined with
            `reranker=`.
    """

    model_config = ConfigDict(extra="forbid")

    _model_field: ClassVar[str] = "model"

    reranker: Reranker | None = Field(default=None, exclude=True)
    """An existing `Reranker` to use instead of building one from the settings (it is not closed here)."""

    _lazy: LazyReranker | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_reranker_settings(self) -> Self:
        if self.reranker is not None:
            adopt_given(self, self._model_field, "reranker", self.reranker.config.model, RERANKER_SETTINGS)
            self._lazy = LazyReranker(reranker=self.reranker)
            return self
        model, settings = settings_to_build(self, self._model_field, RERANKER_SETTINGS, _EXAMPLE_MODEL)
        config = RerankerConfig(model=model, **settings)
        # The config moves a key written into `base_url` to `api_key`; keep this object's fields as clean.
        if config.base_url != self.base_url:
            self.base_url, self.api_key = config.base_url, config.api_key
        self._lazy = LazyReranker(config)
        return self

    @property
    def reranker_config(self) -> RerankerConfig:
        """The settings of the `Reranker` in use or to be built (reading them starts nothing)."""
        return self._require_lazy().config

    def get_reranker(self) -> Reranker:
        """Returns the `Reranker` in use, building it (and starting its engine) on first call."""
        return self._require_lazy().get()

    def rerank_texts(self, query: str, texts: Sequence[str], top_n: int | None) -> list[tuple[int, float]]:
        """Scores each text's relevance to `query` and returns the best `top_n` (all if `None`), best first.

        Args:
            query: The search query.
            texts: The candidate texts.
            top_n: How many to keep.

        Returns:
            `(index into texts, score)` pairs, highest score first; scores are Python floats.
        """
        if not texts:
            return []
        ranked = self.get_reranker().rerank(query, list(texts), top_k=top_n)
        return [(int(index), float(score)) for index, score in ranked]

    async def arerank_texts(
        self, query: str, texts: Sequence[str], top_n: int | None
    ) -> list[tuple[int, float]]:
        """`rerank_texts` for async code: awaits the engine without blocking the event loop."""
        if not texts:
            return []
        reranker = await self._require_lazy().aget()
        ranked = await reranker.arerank(query, list(texts), top_k=top_n)
        return [(int(index), float(score)) for index, score in ranked]
