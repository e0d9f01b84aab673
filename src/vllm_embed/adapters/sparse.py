"""`SparseEmbedderAdapter`: the settings, checks and lazy `SparseEmbedder` the sparse adapters share.

LangChain's `langchain_vllm_embed.VLLMSparseEmbeddings` (a langchain-qdrant `SparseEmbeddings`) and
LlamaIndex's `llama_index.embeddings.vllm_embed.VLLMSparseFunctions` (`sparse_doc_fn` / `sparse_query_fn` for
its `QdrantVectorStore`) subclass it. Every `SparseEmbedderConfig` setting but the model reaches them from
its one declaration in `vllm_embed.config`, description included. Nothing here imports a framework.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from vllm_embed.adapters.lazy import LazyHolder, LazySparseEmbedder
from vllm_embed.adapters.settings import (
    adopt_given,
    model_field,
    settings_except_model,
    settings_to_build,
)
from vllm_embed.config import EngineSettings, SparseEmbedderConfig
from vllm_embed.learned_sparse import SparseEmbedder, SparseVector
from vllm_embed.token_facade import Kind, check_in_process

if TYPE_CHECKING:
    from vllm_embed.config import LongInputPolicy

    class SparseEmbedderSettings(EngineSettings):
        """Type checkers' view of the class built below (the sparse-only fields of `SparseEmbedderConfig`)."""

        long_input: LongInputPolicy = "chunk"
        max_terms: int | None = None

else:
    SparseEmbedderSettings = settings_except_model(
        SparseEmbedderConfig,
        "SparseEmbedderSettings",
        "Every setting of a `SparseEmbedder` except the model: the sparse adapters' settings.",
        __name__,
    )

SPARSE_SETTINGS = frozenset(SparseEmbedderSettings.model_fields)
"""Every setting of a `SparseEmbedder` but the model; none combines with `sparse_embedder=`."""

_EXAMPLE_MODEL = "naver/splade-v3"


def sparse_model_field(default: str | None = None) -> Any:
    """`model_field(default, config=SparseEmbedderConfig, given="sparse_embedder")`: the model field."""
    return model_field(default, config=SparseEmbedderConfig, given="sparse_embedder")


class SparseEmbedderAdapter(SparseEmbedderSettings, LazyHolder[SparseEmbedderConfig, SparseEmbedder]):
    """Base of the framework sparse encoders: every `SparseEmbedderSettings` field, `sparse_embedder=`, lazy.

    At construction the settings are validated (a `SparseEmbedderConfig` is built, which is cheap, and a
    remote backend is refused); the `SparseEmbedder` and its engine start on the first call that embeds.
    Subclasses declare the model field and name it in `_model_field`; the model may be omitted when
    `sparse_embedder` is given.

    Raises:
        ValueError: At construction, for invalid settings, a missing model, `backend="openai"`, or settings
            combined with `sparse_embedder=`.
    """

    model_config = ConfigDict(extra="forbid")

    _model_field: ClassVar[str] = "model"

    sparse_embedder: SparseEmbedder | None = Field(default=None, exclude=True)
    """An existing `SparseEmbedder` to use instead of building one from the settings (not closed here)."""

    _lazy: LazySparseEmbedder | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_sparse_settings(self) -> Self:
        if self.sparse_embedder is not None:
            model = self.sparse_embedder.config.model
            adopt_given(self, self._model_field, "sparse_embedder", model, SPARSE_SETTINGS)
            self._lazy = LazySparseEmbedder(sparse_embedder=self.sparse_embedder)
            return self
        model, settings = settings_to_build(self, self._model_field, SPARSE_SETTINGS, _EXAMPLE_MODEL)
        config = SparseEmbedderConfig(model=model, **settings)
        check_in_process(config, type(self).__name__)
        self._lazy = LazySparseEmbedder(config)
        return self

    @property
    def sparse_embedder_config(self) -> SparseEmbedderConfig:
        """The settings of the `SparseEmbedder` in use or to be built (reading them starts nothing)."""
        return self._require_lazy().config

    def get_sparse_embedder(self) -> SparseEmbedder:
        """Returns the `SparseEmbedder` in use, building it (and starting its engine) on first call."""
        return self._require_lazy().get()

    def embed_sparse(self, texts: Sequence[str], kind: Kind) -> list[tuple[list[int], list[float]]]:
        """Embeds `texts` as documents or queries and returns each vector as `(indices, values)` lists.

        Args:
            texts: The texts; an empty sequence starts no engine.
            kind: `"document"` or `"query"`.

        Returns:
            One `(vocabulary ids ascending, weights > 0)` pair of Python lists per text.
        """
        if not texts:
            return []
        embedder = self.get_sparse_embedder()
        vectors = embedder.embed_queries(texts) if kind == "query" else embedder.embed_documents(texts)
        return [_lists(vector) for vector in vectors]

    async def aembed_sparse(self, texts: Sequence[str], kind: Kind) -> list[tuple[list[int], list[float]]]:
        """`embed_sparse` for async code: awaits the engine without blocking the event loop."""
        if not texts:
            return []
        embedder = await self._require_lazy().aget()
        if kind == "query":
            vectors = await embedder.aembed_queries(texts)
        else:
            vectors = await embedder.aembed_documents(texts)
        return [_lists(vector) for vector in vectors]


def _lists(vector: SparseVector) -> tuple[list[int], list[float]]:
    indices: list[int] = vector.indices.tolist()
    values: list[float] = vector.values.tolist()
    return indices, values
