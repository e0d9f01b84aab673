"""Back-pressure and size limits: a bound on queued tokens (429) and on request bodies (413)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from vllm_embed.serve.errors import APIError, error_bytes
from vllm_embed.serve.settings import ServeLimits

Scope = dict[str, Any]
Message = dict[str, Any]

_MAX_RETRY_AFTER_SECONDS = 60


class TokenBudget:
    """Admits requests while the input tokens admitted and not yet answered stay within a bound.

    It lives on the event loop (no lock): admission and release never await. A refused request is told when
    to retry, from the rate at which recent tokens were answered.

    Args:
        limit: The most tokens in flight at once (`ServeLimits.max_queued_tokens`).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.queued = 0
        self._rate = 0.0  # tokens answered per second, smoothed
        self._last = time.monotonic()

    def check(self, tokens: int) -> None:
        """Refuses a request that could never be admitted.

        Raises:
            APIError: 413 when `tokens` alone is over the bound.
        """
        if tokens > self.limit:
            raise APIError(
                413,
                f"this request holds {tokens} input tokens, more than the server queues at once "
                f"(--max-queued-tokens {self.limit}); split it into smaller requests",
            )

    @contextmanager
    def admit(self, tokens: int) -> Iterator[None]:
        """Holds `tokens` of the budget for the duration of the block.

        Raises:
            APIError: 413 if the request alone is over the bound; 429 with `Retry-After` while others hold
                too much of it.
        """
        self.check(tokens)
        if self.queued and self.queued + tokens > self.limit:
            wait = self.retry_after(self.queued + tokens - self.limit)
            raise APIError(
                429,
                f"the server is busy: {self.queued} input tokens are queued and this request adds {tokens} "
                f"(--max-queued-tokens {self.limit}); retry after {wait} s, or send fewer requests at once",
                headers={"Retry-After": str(wait)},
            )
        self.queued += tokens
        try:
            yield
        finally:
            self.queued -= tokens
            self._answered(tokens)

    def retry_after(self, excess: int) -> int:
        """Seconds until `excess` tokens are likely answered, at the recent rate (1 to 60)."""
        if self._rate <= 0:
            return 1
        return max(1, min(_MAX_RETRY_AFTER_SECONDS, math.ceil(excess / self._rate)))

    def _answered(self, tokens: int) -> None:
        now = time.monotonic()
        elapsed, self._last = max(now - self._last, 1e-3), now
        weight = min(elapsed, 1.0)  # about a one-second memory
        self._rate = (1 - weight) * self._rate + weight * (tokens / elapsed)


class BodyLimit:
    """ASGI middleware: answers 413 for a body over `max_request_bytes`, declared or streamed.

    A declared `Content-Length` over the limit is refused before anything is read; a chunked body is counted
    as it arrives, and the application's read fails with the same 413.
    """

    def __init__(self, app: Any, limits: ServeLimits) -> None:
        self.app = app
        self.limit = limits.max_request_bytes

    def _message(self) -> str:
        return (
            f"the request body is larger than the server accepts (--max-request-bytes {self.limit}); "
            "send fewer or shorter texts per request"
        )

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:  # noqa: D102 - ASGI
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await send_json(send, 413, error_bytes(413, self._message()))
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message: Message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise APIError(413, self._message())
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def send_json(
    send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Sends a whole JSON response from an ASGI middleware."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
