"""`LazyEmbedder`, `LazyReranker`, `LazySparseEmbedder`: engine users built on first use."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from vllm_embed.config import EmbedderConfig, RerankerConfig, SparseEmbedderConfig
from vllm_embed.embedder import Embedder
from vllm_embed.learned_sparse import SparseEmbedder
from vllm_embed.reranker import Reranker


class _EngineUser(Protocol):
    @property
    def config(self) -> Any: ...

    def close(self) -> None: ...


_Config = TypeVar("_Config")
_Built = TypeVar("_Built", bound=_EngineUser)


class LazyEngineUser(Generic[_Config, _Built]):
    """Holds an object (an `Embedder`, a `Reranker`) that is built, and its engine started, only when needed.

    Give either `config` (the object is built from it on first use, owned, and closed by `close()`) or
    `given` (used as is and never closed here). Safe to call from several threads; `aget()` builds the
    engine off the event loop.

    Args:
        build: Builds the object from `config`.
        config: Settings of the object to build.
        given: An existing object to use instead.
        name: What `given` is called by the caller, for the error message.

    Raises:
        ValueError: If not exactly one of `config` and `given` is given.
    """

    def __init__(
        self, build: Callable[[_Config], _Built], config: _Config | None, given: _Built | None, name: str
    ) -> None:
        if (config is None) == (given is None):
            raise ValueError(f"{type(self).__name__} needs exactly one of config= or {name}=")
        self._build = build
        self._config = config
        self._given = given
        self._owned: _Built | None = None
        self._lock = threading.Lock()

    @property
    def config(self) -> _Config:
        """The settings of the object in use or to be built (reading them starts nothing)."""
        if self._given is not None:
            given_config: _Config = self._given.config
            return given_config
        assert self._config is not None  # one of the two is set, checked in __init__
        return self._config

    def get(self) -> _Built:
        """Returns the object, building it (and starting its engine) on first call."""
        if self._given is not None:
            return self._given
        with self._lock:
            if self._owned is None:
                assert self._config is not None  # one of the two is set, checked in __init__
                self._owned = self._build(self._config)
            return self._owned

    async def aget(self) -> _Built:
        """`get()` for async code: the engine start (seconds to minutes) runs off the event loop."""
        if self._given is not None:
            return self._given
        if self._owned is not None:
            return self._owned
        return await asyncio.to_thread(self.get)

    def close(self) -> None:
        """Closes the object this holder built (one passed in is left open)."""
        with self._lock:
            owned, self._owned = self._owned, None
        if owned is not None:
            owned.close()


class LazyHolder(Generic[_Config, _Built]):
    """What every adapter does with its `LazyEngineUser` (each declares it as the `PrivateAttr` `_lazy`)."""

    _lazy: LazyEngineUser[_Config, _Built] | None

    def close(self) -> None:
        """Releases the object this adapter built and its engine (an object passed in is left open)."""
        if self._lazy is not None:
            self._lazy.close()

    def _require_lazy(self) -> LazyEngineUser[_Config, _Built]:
        if self._lazy is None:
            raise RuntimeError(f"{type(self).__name__} was not validated: build it with its constructor")
        return self._lazy


class LazyEmbedder(LazyEngineUser[EmbedderConfig, Embedder]):
    """An `Embedder` built on first use from `config`, or the `embedder` given (never closed here)."""

    def __init__(self, config: EmbedderConfig | None = None, *, embedder: Embedder | None = None) -> None:
        super().__init__(lambda settings: Embedder(config=settings), config, embedder, "embedder")


class LazyReranker(LazyEngineUser[RerankerConfig, Reranker]):
    """A `Reranker` built on first use from `config`, or the `reranker` given (never closed here)."""

    def __init__(self, config: RerankerConfig | None = None, *, reranker: Reranker | None = None) -> None:
        super().__init__(lambda settings: Reranker(config=settings), config, reranker, "reranker")


class LazySparseEmbedder(LazyEngineUser[SparseEmbedderConfig, SparseEmbedder]):
    """A `SparseEmbedder` built on first use from `config`, or the one given (never closed here)."""

    def __init__(
        self, config: SparseEmbedderConfig | None = None, *, sparse_embedder: SparseEmbedder | None = None
    ) -> None:
        super().__init__(
            lambda settings: SparseEmbedder(config=settings), config, sparse_embedder, "sparse_embedder"
        )
