"""HTTP with a bounded wait: retries within `retry_seconds`, each attempt cut at `timeout`, bodies capped."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_before_delay,
    wait_exponential_jitter,
)

from vllm_embed._secrets import Redactor
from vllm_embed._version import __version__
from vllm_embed.backends.openai.errors import (
    AttemptTimeoutError,
    RemoteEmbeddingError,
    RemoteRequestError,
    ResponseTooLargeError,
    StatusError,
    is_retryable,
)
from vllm_embed.config import API_KEY_VARIABLES

logger = logging.getLogger(__name__)

ERROR_BODY_BYTES = 64 << 10
"""How much of an error response is read for its message."""
_MAX_MESSAGE_CHARS = 500


class RetryingClient:
    """POSTs JSON to one server, retrying connection errors, timeouts, 408, 429 and 5xx with backoff.

    The whole call ends within `max(timeout, retry_seconds)`: each attempt (request and the whole body) is
    cut at `timeout`, and no retry starts, or runs, past `retry_seconds` from the first attempt. A server
    that trickles its body therefore cannot hold a caller. A body larger than the caller's limit is refused.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        timeout: float,
        retry_seconds: float,
        max_connections: int,
        redact: Redactor,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self.redact = redact
        headers = {"User-Agent": f"vllm-embed/{__version__}"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.AsyncClient(
            base_url=base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )
        httpx_logger = logging.getLogger("httpx")  # logs every request at INFO; keep it quiet unless asked
        if httpx_logger.level == logging.NOTSET:
            httpx_logger.setLevel(logging.WARNING)

    async def aclose(self) -> None:
        """Closes the connections."""
        await self._client.aclose()

    async def post(self, path: str, payload: dict[str, Any], *, limit: int) -> bytes:
        """POSTs `payload` as JSON and returns the body of the first successful answer.

        Raises:
            RemoteRequestError: On a 4xx that retrying cannot fix.
            RemoteEmbeddingError: When the time budget runs out, or the body exceeds `limit` bytes.
            ValueError: If the URL's scheme is not supported.
        """
        url = f"{self.base_url}/{path}"
        attempts = 0
        deadline = time.monotonic() + max(self.timeout, self.retry_seconds)
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_before_delay(self.retry_seconds),
            wait=_wait,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    left = deadline - time.monotonic()
                    bound = self.timeout if attempts == 1 else min(self.timeout, left)
                    return await self._attempt(path, payload, limit, bound)
        except StatusError as exc:
            if not is_retryable(exc):
                raise RemoteRequestError(
                    f"{url} rejected the request with HTTP {exc.status}: {exc.message}" + _hint(exc.status),
                    url=url,
                    status=exc.status,
                    server_message=exc.message,
                ) from None
            raise self._gave_up(url, attempts, exc.status, str(exc)) from None
        except AttemptTimeoutError as exc:
            raise self._gave_up(url, attempts, None, str(exc)) from None
        except ResponseTooLargeError as exc:
            raise RemoteEmbeddingError(
                f"{url} sent a response larger than {exc.limit:,} bytes, more than this request can need; "
                "refusing to read it (is base_url an embeddings server?)",
                url=url,
                status=200,
                attempts=attempts,
            ) from None
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.UnsupportedProtocol):
                raise ValueError(f"cannot call {url}: {self.redact(str(exc))}") from None
            detail = self.redact(str(exc)) or "no details"
            raise self._gave_up(url, attempts, None, f"{type(exc).__name__}: {detail}") from None
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    async def get_json(self, path: str, *, limit: int) -> Any:
        """GETs JSON once, bounded by `timeout` and `limit`; `None` when anything fails (hints only)."""
        try:
            async with asyncio.timeout(self.timeout), self._client.stream("GET", path) as response:
                return json.loads(await _read(response, limit)) if response.is_success else None
        except (httpx.HTTPError, ValueError, TimeoutError, ResponseTooLargeError):
            return None

    async def _attempt(self, path: str, payload: dict[str, Any], limit: int, bound: float) -> bytes:
        try:
            async with asyncio.timeout(bound), self._client.stream("POST", path, json=payload) as response:
                if response.is_success:
                    return await _read(response, limit)
                body = await _read(response, ERROR_BODY_BYTES, truncate=True)
                message = _server_message(body, response.reason_phrase, self.redact)
                raise StatusError(response.status_code, message, _retry_after(response))
        except TimeoutError:
            if bound < self.timeout:
                raise AttemptTimeoutError("no complete response before the retry budget ran out") from None
            raise AttemptTimeoutError(f"no complete response within {self.timeout:g}s (timeout)") from None

    def _gave_up(self, url: str, attempts: int, status: int | None, last: str) -> RemoteEmbeddingError:
        return RemoteEmbeddingError(
            f"{url} did not answer successfully: {attempts} attempt(s) within the retry budget of "
            f"{self.retry_seconds:g}s (retry_seconds); last error: {last}",
            url=url,
            status=status,
            attempts=attempts,
        )

    def _log_retry(self, retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        reason = str(exc) if isinstance(exc, StatusError | AttemptTimeoutError) else type(exc).__name__
        logger.warning(
            "%s: %s; retrying in %.1fs (attempt %d)",
            self.base_url,
            self.redact(reason),
            retry_state.upcoming_sleep,
            retry_state.attempt_number + 1,
        )


async def _read(response: httpx.Response, limit: int, *, truncate: bool = False) -> bytes:
    """Reads a body while counting: past `limit` bytes it is cut (`truncate`) or refused."""
    declared = response.headers.get("content-length", "")
    if not truncate and declared.isdigit() and int(declared) > limit:
        raise ResponseTooLargeError(limit)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            if truncate:
                return bytes(body[:limit])
            raise ResponseTooLargeError(limit)
    return bytes(body)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:  # absent, or an HTTP date: fall back to exponential backoff
        return None


def _server_message(body: bytes, reason: str, redact: Redactor) -> str:
    """The error text of an OpenAI (`error.message`), TEI (`error`) or FastAPI (`detail`) error body.

    Redacted before it is shortened, so that a cut cannot leave part of a key behind.
    """
    message: Any = None
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        message = message or parsed.get("message") or parsed.get("detail")
    text = " ".join(redact(str(message if message else body.decode("utf-8", "replace"))).split())
    return text[:_MAX_MESSAGE_CHARS] or reason


def _hint(status: int) -> str:
    if status in (401, 403):
        return f"; check api_key= or the {' / '.join(API_KEY_VARIABLES)} environment variables"
    return ""


def _wait(retry_state: RetryCallState) -> float:
    delay = wait_exponential_jitter(initial=0.25, max=4.0, jitter=0.25)(retry_state)
    outcome = retry_state.outcome
    exc = outcome.exception() if outcome is not None else None
    if isinstance(exc, StatusError) and exc.retry_after is not None:
        return max(delay, exc.retry_after)
    return delay
