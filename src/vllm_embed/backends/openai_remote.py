"""OpenAI-compatible HTTP backend: the same `Embedder` against `vllm serve`, SGLang or TEI servers.

The `Embedder` applies prompts, deduplication, the long-input policy (when the model's tokenizer is available
locally) and normalisation exactly as in-process; this backend only posts texts to `/embeddings`.

A private event-loop thread owns one `httpx.AsyncClient`. Sync and async callers both hand it coroutines, so a
sync call also works while an event loop runs in the caller's thread, the requests of one call run
concurrently, and `max_concurrent_requests` bounds what this backend has in flight at once.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import logging
import os
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, Literal, TypeVar

import httpx
import numpy as np
import numpy.typing as npt
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_before_delay,
    wait_exponential_jitter,
)

from vllm_embed._version import __version__
from vllm_embed.backends.base import EngineInput
from vllm_embed.config import EmbedderConfig
from vllm_embed.profiles import ModelProfile

logger = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
_T = TypeVar("_T")

API_KEY_VARIABLES = ("VLLM_EMBED_API_KEY", "OPENAI_API_KEY")
"""Environment variables read, in this order, when no `api_key` is given."""

_PROBE_TEXT = "a"
_MAX_MESSAGE_CHARS = 500


class RemoteEmbeddingError(RuntimeError):
    """The server could not be reached, or kept failing, until the retry time budget ran out.

    Attributes:
        url: The endpoint that failed.
        status: The last HTTP status, or `None` when no response arrived (connection error, timeout).
        attempts: How many requests were made.
    """

    def __init__(self, message: str, *, url: str, status: int | None, attempts: int) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.attempts = attempts


class RemoteRequestError(ValueError):
    """The server rejected a request (a 4xx that retrying cannot fix, e.g. bad input or a wrong API key).

    Attributes:
        url: The endpoint that answered.
        status: The HTTP status.
        server_message: The server's own explanation.
    """

    def __init__(self, message: str, *, url: str, status: int, server_message: str) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.server_message = server_message


class _StatusError(Exception):
    """A non-2xx answer, before deciding whether to retry it."""

    def __init__(self, status: int, message: str, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.retry_after = retry_after


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, _StatusError):
        return exc.status in (408, 429) or exc.status >= 500
    return isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.UnsupportedProtocol)


def resolve_api_key(config: EmbedderConfig) -> str | None:
    """Returns the API key from the config, else from `VLLM_EMBED_API_KEY`, else `OPENAI_API_KEY`."""
    if config.api_key is not None and config.api_key.get_secret_value():
        return config.api_key.get_secret_value()
    for variable in API_KEY_VARIABLES:
        value = os.environ.get(variable)
        if value:
            return value
    return None


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:  # absent, or an HTTP date: fall back to exponential backoff
        return None


def _server_message(response: httpx.Response) -> str:
    """The error text of an OpenAI (`error.message`), TEI (`error`) or FastAPI (`detail`) error body."""
    message: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        message = message or body.get("message") or body.get("detail")
    text = " ".join(str(message if message else response.text).split())
    return text[:_MAX_MESSAGE_CHARS] or response.reason_phrase


def _decode(body: Any, expected: int) -> Vectors:
    """Reads the vectors of an embeddings response (base64 float32 or float lists), in input order."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or len(data) != expected:
        count = len(data) if isinstance(data, list) else "no"
        raise ValueError(f"the server returned {count} embeddings for {expected} inputs")
    items = sorted(data, key=lambda item: int(item.get("index", 0))) if expected > 1 else data
    rows: list[Vectors] = []
    for item in items:
        embedding = item.get("embedding") if isinstance(item, dict) else None
        if isinstance(embedding, str):
            rows.append(np.frombuffer(base64.b64decode(embedding), dtype="<f4").astype(np.float32))
        elif isinstance(embedding, list):
            rows.append(np.asarray(embedding, dtype=np.float32))
        else:
            raise ValueError(f"the server returned an embedding of type {type(embedding).__name__}")
    if len({row.shape for row in rows}) > 1:
        raise ValueError("the server returned embeddings of different sizes in one response")
    return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)


def _truncate(vectors: Vectors, dimensions: int) -> Vectors:
    """Keeps the leading Matryoshka dimensions and renormalises each row."""
    head = vectors[:, :dimensions]
    norms = np.linalg.norm(head, axis=1, keepdims=True)
    np.maximum(norms, np.finfo(np.float32).tiny, out=norms)
    result: Vectors = (head / norms).astype(np.float32, copy=False)
    return result


def _texts(inputs: Sequence[EngineInput]) -> list[str]:
    for index, item in enumerate(inputs):
        if not isinstance(item, str):
            raise TypeError(
                f"inputs[{index}] is {type(item).__name__}: the OpenAI-compatible backend only sends text"
            )
    return [item for item in inputs if isinstance(item, str)]


class OpenAIRemoteBackend:
    """Embeds through an OpenAI-compatible `/embeddings` endpoint (vLLM, SGLang, TEI).

    Construction probes the server once (one short text, and `/models` for `max_model_len`), so a wrong URL,
    model name or API key fails here rather than on first use.

    Args:
        config: The embedder configuration (`model` is the served model name, `base_url` the API root).
        profile: The model profile (decides whether `dimensions` may be applied client-side).

    Raises:
        ValueError: If `base_url` is missing or not http(s), or the server rejects the probe
            (`RemoteRequestError`).
        RemoteEmbeddingError: If the server cannot be reached within `retry_seconds`.
    """

    accepts_token_ids = False

    def __init__(self, config: EmbedderConfig, profile: ModelProfile) -> None:
        if not config.base_url:
            raise ValueError(
                "backend='openai' needs base_url=, the server's OpenAI API root, e.g. 'http://127.0.0.1:8000/v1'"
            )
        url = httpx.URL(config.base_url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http(s) URL such as 'http://127.0.0.1:8000/v1', got {url}")
        self.base_url = str(url.copy_with(username=None, password=None))
        self.model = config.model
        self._profile = profile
        self._api_key = resolve_api_key(config)
        self._request_batch_size = config.request_batch_size
        self._retry_seconds = config.retry_seconds
        self._encoding: Literal["base64", "float"] = "base64"
        self._server_dimensions: bool | None = None  # whether the server honours `dimensions`
        self._closed = False
        self._close_lock = threading.Lock()

        headers = {"User-Agent": f"vllm-embed/{__version__}"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        limit = config.max_concurrent_requests
        self._client = httpx.AsyncClient(
            base_url=str(url) + "/",
            headers=headers,
            timeout=httpx.Timeout(config.timeout),
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
        )
        self._semaphore = asyncio.Semaphore(limit)
        self._detect_lock = asyncio.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-embed-http", daemon=True)
        self._thread.start()

        self.native_dimension: int | None = None
        self.max_model_len: int | None = None
        try:
            self._call(self._probe(config.dimensions))
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"OpenAIRemoteBackend(base_url={self.base_url!r}, model={self.model!r})"

    # -- Backend protocol ---------------------------------------------------------------------------

    def embed(self, inputs: Sequence[EngineInput], dimensions: int | None) -> Vectors:
        """Embeds texts on the server, blocking until done (also inside a running event loop)."""
        return self._call(self._embed(_texts(inputs), dimensions))

    async def aembed(self, inputs: Sequence[EngineInput], dimensions: int | None) -> Vectors:
        """Embeds texts on the server without blocking the caller's event loop."""
        return await asyncio.wrap_future(self._submit(self._embed(_texts(inputs), dimensions)))

    def close(self) -> None:
        """Cancels requests in flight, closes the connections and stops the private event-loop thread."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if threading.current_thread() is self._thread:
            self._loop.create_task(self._shutdown()).add_done_callback(lambda _: self._loop.stop())
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        except Exception:  # closing must not fail; the connections die with the thread
            logger.debug("closing the HTTP client raised", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    # -- event-loop plumbing ------------------------------------------------------------------------

    def _submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        if self._closed:
            coro.close()
            raise RuntimeError("this Embedder is closed; create a new one")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a sync embed call cannot run on the backend's own event-loop thread")
        future = self._submit(coro)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt: stop the requests instead of leaving them running
            raise

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._client.aclose()

    # -- requests -----------------------------------------------------------------------------------

    async def _probe(self, dimensions: int | None) -> None:
        """Learns the native size, whether base64 works, `max_model_len`, and how to apply `dimensions`."""
        try:
            vectors = await self._embed_batch([_PROBE_TEXT], None)
        except RemoteRequestError as exc:
            if exc.status == 404:
                raise await self._explain_not_found(exc) from None
            if exc.status in (401, 403):
                raise
            self._encoding = "float"  # TEI's and SGLang's OpenAI routes may not accept base64
            vectors = await self._embed_batch([_PROBE_TEXT], None)
            logger.info("%s does not accept base64 embeddings; using float lists", self.base_url)
        self.native_dimension = int(vectors.shape[1])
        self.max_model_len = await self._served_max_model_len()
        if dimensions is not None and dimensions < self.native_dimension:
            await self._detect_dimensions(dimensions)

    async def _served_max_model_len(self) -> int | None:
        for entry in await self._served_models():
            if entry.get("id") == self.model and isinstance(entry.get("max_model_len"), int):
                return int(entry["max_model_len"])
        return None

    async def _served_models(self) -> list[dict[str, Any]]:
        """The `/models` listing, or nothing when the server has none (TEI) or it fails: it is only a hint."""
        try:
            response = await self._client.get("models")
            body = response.json() if response.is_success else None
        except (httpx.HTTPError, ValueError):
            return []
        data = body.get("data") if isinstance(body, dict) else None
        return [entry for entry in data if isinstance(entry, dict)] if isinstance(data, list) else []

    async def _explain_not_found(self, exc: RemoteRequestError) -> RemoteRequestError:
        served = [str(entry.get("id")) for entry in await self._served_models()]
        if served:
            hint = f"it serves {served}; pass one of them as model="
        else:
            hint = f"check that {self.base_url} is the OpenAI API root (usually ending in /v1)"
        return RemoteRequestError(
            f"{exc} ({self.model!r} not found: {hint})",
            url=exc.url,
            status=exc.status,
            server_message=exc.server_message,
        )

    async def _detect_dimensions(self, dimensions: int) -> None:
        """Asks the server for `dimensions` once; without support, Matryoshka models truncate client-side."""
        async with self._detect_lock:
            if self._server_dimensions is not None:
                return
            reason = "it returned a different size"
            try:
                vectors = await self._embed_batch([_PROBE_TEXT], dimensions)
                supported = vectors.shape[1] == dimensions
            except RemoteRequestError as exc:
                supported, reason = False, exc.server_message
            if not supported:
                if not self._profile.matryoshka:
                    raise ValueError(
                        f"the server at {self.base_url} does not honour dimensions={dimensions} for "
                        f"{self.model} ({reason}), and the {self._profile.family!r} profile is not "
                        "Matryoshka, so it cannot be reduced client-side; pass dimensions=None, or "
                        "profile=... with matryoshka=True if the model is"
                    )
                logger.info(
                    "%s does not honour dimensions (%s); truncating client-side", self.base_url, reason
                )
            self._server_dimensions = supported

    async def _embed(self, texts: list[str], dimensions: int | None) -> Vectors:
        if dimensions is not None and self._server_dimensions is None:
            await self._detect_dimensions(dimensions)
        sent = dimensions if self._server_dimensions else None
        size = self._request_batch_size
        tasks = [
            asyncio.ensure_future(self._embed_batch(texts[start : start + size], sent))
            for start in range(0, len(texts), size)
        ]
        try:
            parts = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        width = dimensions or self.native_dimension or 0
        vectors = np.concatenate(parts) if parts else np.zeros((0, width), dtype=np.float32)
        if dimensions is not None and vectors.shape[1] > dimensions:
            vectors = _truncate(vectors, dimensions)
        return vectors

    async def _embed_batch(self, texts: list[str], dimensions: int | None) -> Vectors:
        payload: dict[str, Any] = {"model": self.model, "input": texts, "encoding_format": self._encoding}
        if dimensions is not None:
            payload["dimensions"] = dimensions
        async with self._semaphore:
            response = await self._post("embeddings", payload)
        try:
            return _decode(response.json(), len(texts))
        except (ValueError, TypeError, AttributeError) as exc:
            raise RemoteEmbeddingError(
                f"unexpected answer from {self.base_url}/embeddings: {exc}",
                url=f"{self.base_url}/embeddings",
                status=200,
                attempts=1,
            ) from None

    async def _post(self, path: str, payload: dict[str, Any]) -> httpx.Response:
        """POSTs JSON, retrying connection errors, 408, 429 and 5xx with exponential backoff."""
        url = f"{self.base_url}/{path}"
        attempts = 0
        retrying = AsyncRetrying(
            retry=retry_if_exception(_retryable),
            stop=stop_before_delay(self._retry_seconds),
            wait=self._wait,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    response = await self._client.post(path, json=payload)
                    if not response.is_success:
                        raise _StatusError(
                            response.status_code,
                            self._redact(_server_message(response)),
                            _retry_after(response),
                        )
                    return response
        except _StatusError as exc:
            if not _retryable(exc):
                raise RemoteRequestError(
                    f"{url} rejected the request with HTTP {exc.status}: {exc.message}"
                    + self._hint(exc.status),
                    url=url,
                    status=exc.status,
                    server_message=exc.message,
                ) from None
            raise self._gave_up(url, attempts, exc.status, str(exc)) from None
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.UnsupportedProtocol):
                raise ValueError(f"cannot call {url}: {exc}") from None
            detail = self._redact(str(exc)) or "no details"
            raise self._gave_up(url, attempts, None, f"{type(exc).__name__}: {detail}") from None
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    def _gave_up(self, url: str, attempts: int, status: int | None, last: str) -> RemoteEmbeddingError:
        return RemoteEmbeddingError(
            f"{url} did not answer successfully: {attempts} attempt(s) within the retry budget of "
            f"{self._retry_seconds:g}s (retry_seconds); last error: {last}",
            url=url,
            status=status,
            attempts=attempts,
        )

    def _hint(self, status: int) -> str:
        if status in (401, 403):
            return f"; check api_key= or the {' / '.join(API_KEY_VARIABLES)} environment variables"
        return ""

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    @staticmethod
    def _wait(retry_state: RetryCallState) -> float:
        delay = wait_exponential_jitter(initial=0.25, max=4.0, jitter=0.25)(retry_state)
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, _StatusError) and exc.retry_after is not None:
            return max(delay, exc.retry_after)
        return delay

    def _log_retry(self, retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        reason = str(exc) if isinstance(exc, _StatusError) else type(exc).__name__
        logger.warning(
            "%s: %s; retrying in %.1fs (attempt %d)",
            self.base_url,
            self._redact(reason),
            retry_state.upcoming_sleep,
            retry_state.attempt_number + 1,
        )
