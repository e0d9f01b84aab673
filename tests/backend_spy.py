"""A spy around an Embedder's real backend: records what reaches the engine (or server), changes nothing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from vllm_embed import Embedder


class BackendSpy:
    """Wraps the real backend and records every input it is given."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.inputs: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def embed(self, inputs: Sequence[Any], dimensions: int | None) -> Any:
        self.inputs.extend(inputs)
        return self.inner.embed(inputs, dimensions)


@contextmanager
def spying(embedder: Embedder) -> Iterator[BackendSpy]:
    """Puts a `BackendSpy` in front of `embedder`'s backend for the duration of the block."""
    real = embedder._backend
    spy = BackendSpy(real)
    embedder._backend = spy  # type: ignore[assignment]
    try:
        yield spy
    finally:
        embedder._backend = real
