"""The contracts between the facades (`Embedder`, `Reranker`, the token-level embedders) and their engines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

EngineInput = str | list[int]
"""One engine input: a fully prompted text, or its token ids (special tokens included)."""


@runtime_checkable
class Backend(Protocol):
    """An embedding engine.

    The `Embedder` does everything that must be identical across engines (prompts, instructions,
    deduplication, long-input policy, normalisation); a backend only turns inputs into vectors.
    """

    accepts_token_ids: bool
    """Whether `embed` takes token ids (the `Embedder` then tokenises once and applies the long-input
    policy itself); otherwise it is given texts."""

    native_dimension: int | None
    """The engine's output size when no reduction is asked for, when known."""

    max_model_len: int | None
    """Longest input in tokens (special tokens included) the engine accepts, when known."""

    def embed(self, inputs: Sequence[EngineInput], dimensions: int | None) -> npt.NDArray[np.float32]:
        """Embeds inputs; rows come back in input order, shape `(len(inputs), dimensions or native)`."""
        ...

    async def aembed(self, inputs: Sequence[EngineInput], dimensions: int | None) -> npt.NDArray[np.float32]:
        """Async `embed`: concurrent calls share the engine's batching."""
        ...

    def close(self) -> None:
        """Releases the engine (shared engines stop when their last user closes)."""
        ...


PoolingTaskName = Literal["embed", "token_embed", "token_classify"]
"""The vLLM pooling tasks the token-level embedders run (`SparseEmbedder`, `MultiVectorEmbedder`)."""


@runtime_checkable
class PoolingBackend(Protocol):
    """An engine that runs one of the model's own pooling tasks on token ids and returns its raw output.

    A vLLM engine serves one pooling task, chosen when it starts. Outputs come back per input in input
    order: a vector for `embed`, one row per kept token for the token tasks (`token_classify` rows are one
    value wide).
    """

    max_model_len: int | None

    def pool(self, inputs: Sequence[list[int]]) -> list[npt.NDArray[np.float32]]:
        """Runs the engine's task on token ids (special tokens included), blocking until done."""
        ...

    async def apool(self, inputs: Sequence[list[int]]) -> list[npt.NDArray[np.float32]]:
        """Async `pool`: concurrent calls share the engine's batching."""
        ...

    def close(self) -> None:
        """Releases the engine (shared engines stop when their last user closes)."""
        ...


@dataclass(frozen=True, slots=True)
class PairTokens:
    """One (query, document) pair as the token ids a scoring engine runs, special tokens included."""

    ids: list[int]
    second_start: int | None = None
    """Where the document's segment starts, for models with token type ids (BERT); `None` for others."""


@runtime_checkable
class TokenScorer(Protocol):
    """A scoring engine that takes pairs the `Reranker` has already tokenised (the in-process engine)."""

    max_model_len: int | None

    def score_tokens(self, pairs: Sequence[PairTokens]) -> npt.NDArray[np.float32]:
        """Scores pairs; returns shape `(len(pairs),)`, in input order."""
        ...

    async def ascore_tokens(self, pairs: Sequence[PairTokens]) -> npt.NDArray[np.float32]:
        """Async `score_tokens`."""
        ...

    def close(self) -> None:
        """Releases the engine."""
        ...


@runtime_checkable
class TextScorer(Protocol):
    """A scoring engine that takes one query and its documents as text (a `/rerank` server)."""

    max_model_len: int | None

    def score_texts(self, query: str, documents: Sequence[str]) -> npt.NDArray[np.float32]:
        """Scores each document against `query`; returns shape `(len(documents),)`, in input order."""
        ...

    async def ascore_texts(self, query: str, documents: Sequence[str]) -> npt.NDArray[np.float32]:
        """Async `score_texts`."""
        ...

    def close(self) -> None:
        """Releases the connections."""
        ...
