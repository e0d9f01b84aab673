"""Errors the server answers with, all in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

Every 4xx message says what to fix; the OpenAI SDK, vLLM's clients and our own remote backend read this shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vllm_embed.serve.encoding import dumps, json_response

_TYPES: Mapping[int, str] = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    413: "RequestTooLargeError",
    424: "FailedDependencyError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


class APIError(Exception):
    """A request the server refuses, with the HTTP status and a message that names the fix.

    Args:
        status: The HTTP status.
        message: What is wrong and what to do about it.
        param: The request field at fault, when there is one.
        headers: Extra response headers (`Retry-After`).
    """

    def __init__(
        self, status: int, message: str, *, param: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.headers = dict(headers or {})


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """The OpenAI error object for `status`."""
    kind = _TYPES.get(status, "BadRequestError" if status < 500 else "InternalServerError")
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


def error_response(error: APIError) -> Any:
    """The JSON response of an `APIError`."""
    return json_response(error_body(error.status, error.message, error.param), error.status, error.headers)


def error_bytes(status: int, message: str) -> bytes:
    """An error body as bytes, for the ASGI middlewares that answer before the application runs."""
    return dumps(error_body(status, message))
