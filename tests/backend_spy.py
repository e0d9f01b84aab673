"""Test doubles around an Embedder's backend.

`BackendSpy` wraps the real backend and records what reaches the engine (or server), changing nothing.
`FakeBackend` stands in for the engine in the unit tier: no vLLM, a fixed random vector per text, and chosen
bad rows for chosen texts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from unittest import mock

import numpy as np

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


class FakeBackend:
    """A backend without an engine: takes texts, returns a fixed random vector per text.

    Args:
        dimension: Length of the vectors (also reported as the native dimension).
        bad: Rows to return instead for some texts (exactly as the Embedder sends them), e.g. a NaN row.
    """

    accepts_token_ids = False
    max_model_len: int | None = None

    def __init__(self, dimension: int = 384, bad: Mapping[str, Any] | None = None) -> None:
        self.native_dimension: int | None = dimension
        self.bad = dict(bad or {})
        self.inputs: list[Any] = []

    def row(self, text: str) -> Any:
        if text in self.bad:
            return self.bad[text]
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self.native_dimension or 0).astype(np.float32)

    def embed(self, inputs: Sequence[Any], dimensions: int | None) -> Any:
        self.inputs.extend(inputs)
        rows = [self.row(text) for text in inputs]
        try:
            return np.asarray(rows, dtype=np.float32)
        except ValueError:  # ragged: a wrong-length row among them
            return rows

    async def aembed(self, inputs: Sequence[Any], dimensions: int | None) -> Any:
        return self.embed(inputs, dimensions)

    def close(self) -> None:
        pass


@contextmanager
def fake_embedder(model: str, fake: Any, **settings: Any) -> Iterator[Embedder]:
    """An `Embedder` of `model` (its profile and tokenizer read from its files) whose backend is `fake`."""
    with mock.patch("vllm_embed.embedder._create_backend", return_value=fake):
        embedder = Embedder(model, **settings)
    with embedder:
        yield embedder
