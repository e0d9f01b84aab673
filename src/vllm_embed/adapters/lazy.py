"""`LazyEmbedder`: an `Embedder` built on first use, for adapters whose construction must be cheap."""

from __future__ import annotations

import asyncio
import threading

from vllm_embed.config import EmbedderConfig
from vllm_embed.embedder import Embedder


class LazyEmbedder:
    """Holds an `Embedder` that is built, and its engine started, only when first needed.

    Give either `config` (the `Embedder` is built from it on first use, owned, and closed by `close()`) or
    `embedder` (used as is and never closed here). Safe to call from several threads; `aget()` builds the
    engine off the event loop.

    Args:
        config: Settings of the `Embedder` to build.
        embedder: An existing `Embedder` to use instead.

    Raises:
        ValueError: If not exactly one of `config` and `embedder` is given.
    """

    def __init__(self, config: EmbedderConfig | None = None, *, embedder: Embedder | None = None) -> None:
        if (config is None) == (embedder is None):
            raise ValueError("LazyEmbedder needs exactly one of config= or embedder=")
        self._config = config
        self._given = embedder
        self._owned: Embedder | None = None
        self._lock = threading.Lock()

    @property
    def config(self) -> EmbedderConfig:
        """The settings of the `Embedder` in use or to be built (reading them starts nothing)."""
        if self._given is not None:
            return self._given.config
        assert self._config is not None  # one of the two is set, checked in __init__
        return self._config

    def get(self) -> Embedder:
        """Returns the `Embedder`, building it (and starting its engine) on first call."""
        if self._given is not None:
            return self._given
        with self._lock:
            if self._owned is None:
                self._owned = Embedder(config=self._config)
            return self._owned

    async def aget(self) -> Embedder:
        """`get()` for async code: the engine start (seconds to minutes) runs off the event loop."""
        if self._given is not None:
            return self._given
        if self._owned is not None:
            return self._owned
        return await asyncio.to_thread(self.get)

    def close(self) -> None:
        """Closes the `Embedder` this object built (an `embedder=` passed in is left open)."""
        with self._lock:
            owned, self._owned = self._owned, None
        if owned is not None:
            owned.close()
