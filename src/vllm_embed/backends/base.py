"""The contract between the `Embedder` facade and an engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

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
