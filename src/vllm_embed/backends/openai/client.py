"""The HTTP set-up every OpenAI-compatible backend shares: URL, key, retries, event loop, limits, probe.

`OpenAIRemoteBackend` (`/embeddings`) and `OpenAIRemoteScorer` (`/rerank`) are both a `RemoteClient`, so a
reranking server fails, retries and hides its key exactly as an embedding server does.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Coroutine, Iterable
from typing import Any, TypeVar

import httpx

from vllm_embed._secrets import Redactor, split_user_info
from vllm_embed.backends.openai.loop import LoopThread
from vllm_embed.backends.openai.retries import RetryingClient
from vllm_embed.config import API_KEY_VARIABLES, EngineSettings

_T = TypeVar("_T")


def resolve_api_key(config: EngineSettings) -> str | None:
    """Returns the API key from the config, else from `VLLM_EMBED_API_KEY`, else `OPENAI_API_KEY`."""
    if config.api_key is not None and config.api_key.get_secret_value():
        return config.api_key.get_secret_value()
    for variable in API_KEY_VARIABLES:
        value = os.environ.get(variable)
        if value:
            return value
    return None


class RemoteClient:
    """One server connection: the checked API root, the key, a `RetryingClient` on a private `LoopThread`.

    Subclasses call `_connect(probe)` at the end of their constructor, so a wrong URL, model name or API key
    fails at construction, and run their requests with `_call` / `_acall` (sync callers, also inside a
    running event loop; async callers) and `_post` (bounded by `max_concurrent_requests`).

    Args:
        config: The settings (`model` is the served model name, `base_url` the API root).
        thread: Name of the event-loop thread.

    Raises:
        ValueError: If `base_url` is missing or not http(s).
    """

    def __init__(self, config: EngineSettings, model: str, *, thread: str) -> None:
        if not config.base_url:
            raise ValueError(
                "backend='openai' needs base_url=, the server's OpenAI API root, e.g. 'http://127.0.0.1:8000/v1'"
            )
        # The configs already move user-info into api_key; this also covers a config built unvalidated.
        bare_url, url_secret = split_user_info(config.base_url.rstrip("/"))
        url = httpx.URL(bare_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http(s) URL such as 'http://127.0.0.1:8000/v1', got {url}")
        self.base_url = str(url)
        self.model = model
        api_key = resolve_api_key(config) or url_secret
        self._redact = Redactor([api_key, url_secret])
        self._request_batch_size = config.request_batch_size
        self._client = RetryingClient(
            self.base_url,
            api_key=api_key,
            timeout=config.timeout,
            retry_seconds=config.retry_seconds,
            max_connections=config.max_concurrent_requests,
            redact=self._redact,
        )
        self._semaphore = asyncio.Semaphore(config.max_concurrent_requests)
        self._loop = LoopThread(thread)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r})"

    def close(self) -> None:
        """Cancels requests in flight, closes the connections and stops the private event-loop thread."""
        self._loop.stop(self._client.aclose)

    def _connect(self, probe: Coroutine[Any, Any, None]) -> None:
        """Runs the construction probe; on any failure the connection is closed before re-raising."""
        try:
            self._loop.call(probe)
        except BaseException:
            self.close()
            raise

    def _call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Runs `coroutine` on the private loop, blocking until done (also inside a running event loop)."""
        return self._loop.call(coroutine)

    async def _acall(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Runs `coroutine` on the private loop without blocking the caller's event loop."""
        return await asyncio.wrap_future(self._loop.submit(coroutine))

    async def _post(self, path: str, payload: dict[str, Any], limit: int) -> bytes:
        """One POST to `path` under the API root, at most `max_concurrent_requests` at once."""
        async with self._semaphore:
            return await self._client.post(path, payload, limit=limit)


async def gather_all(requests: Iterable[Awaitable[_T]]) -> list[_T]:
    """Runs the requests of one call concurrently; if one fails, the others are cancelled."""
    tasks = [asyncio.ensure_future(request) for request in requests]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
