"""The errors of the OpenAI-compatible backend, and the internal ones that decide whether to retry."""

from __future__ import annotations

import httpx

from vllm_embed.errors import VllmEmbedError


class RemoteEmbeddingError(VllmEmbedError, RuntimeError):
    """The server could not be reached, kept failing within the retry time budget, or answered unusably.

    An unusable answer is malformed, larger than the request can need, or has `index` values that are not
    the request's positions (`status` 200).

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


class RemoteRequestError(VllmEmbedError, ValueError):
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


class StatusError(Exception):
    """A non-2xx answer, before deciding whether to retry it."""

    def __init__(self, status: int, message: str, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.retry_after = retry_after


class AttemptTimeoutError(Exception):
    """One attempt (request and the whole response body) did not finish within its time bound."""


class ResponseTooLargeError(Exception):
    """A response body grew past what the request can legitimately need; never retried."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the response is larger than {limit:,} bytes")
        self.limit = limit


def is_retryable(exc: BaseException) -> bool:
    """Connection errors, timeouts, 408, 429 and 5xx are retried; everything else fails at once."""
    if isinstance(exc, StatusError):
        return exc.status in (408, 429) or exc.status >= 500
    if isinstance(exc, AttemptTimeoutError):
        return True
    return isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.UnsupportedProtocol)
