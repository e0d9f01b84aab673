"""`LazyEmbedder`: an `Embedder` built on first use, for adapters whose construction must be cheap."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

from vllm_embed.config import EmbedderConfig
from vllm_embed.embedder import Embedder

ADAPTER_SETTINGS = (
    "dimensions",
    "dtype",
    "max_model_len",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "gpu_memory_utilization",
    "trust_remote_code",
    "long_input",
    "backend",
    "base_url",
    "cache",
    "engine_kwargs",
)
"""`EmbedderConfig` fields the framework adapters expose under the same names (besides the model, the API
key and `embedder_kwargs`, which each adapter maps itself)."""


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

    @classmethod
    def from_settings(
        cls,
        owner: object,
        *,
        model: str | None,
        api_key: Any = None,
        extra: Mapping[str, Any] | None = None,
    ) -> LazyEmbedder:
        """Validates an adapter's settings now (cheap) and returns a `LazyEmbedder` that builds from them.

        Args:
            owner: The adapter; its `ADAPTER_SETTINGS` attributes are read.
            model: The model id or path.
            api_key: API key for `backend="openai"` (ignored for the in-process engine).
            extra: Other `EmbedderConfig` fields (the adapter's `embedder_kwargs`).

        Raises:
            pydantic.ValidationError: For invalid settings, at adapter construction rather than first use.
        """
        settings: dict[str, Any] = {name: getattr(owner, name) for name in ADAPTER_SETTINGS}
        settings.update(model=model, **(extra or {}))
        if settings.get("backend") == "openai" and api_key is not None:
            settings["api_key"] = api_key
        return cls(EmbedderConfig(**settings))

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


class LazyEmbedderMixin:
    """`get_embedder()` and `close()` for a framework adapter that keeps a `LazyEmbedder` in `_lazy`."""

    _lazy: LazyEmbedder | None

    def get_embedder(self) -> Embedder:
        """Returns the `Embedder` in use, building it (and starting its engine) on first call."""
        if self._lazy is None:
            raise RuntimeError(f"{type(self).__name__} was not validated: build it with its constructor")
        return self._lazy.get()

    async def _aget_embedder(self) -> Embedder:
        if self._lazy is None:
            raise RuntimeError(f"{type(self).__name__} was not validated: build it with its constructor")
        return await self._lazy.aget()

    def close(self) -> None:
        """Releases the Embedder this object built (an `embedder=` passed in is left open)."""
        if self._lazy is not None:
            self._lazy.close()
