"""API-key check: `Authorization: Bearer <key>` on every route but `/health` and `/metrics` (as vLLM)."""

from __future__ import annotations

import hmac
from typing import Any

from vllm_embed.serve.errors import error_bytes
from vllm_embed.serve.limits import Scope, send_json

OPEN_PATHS = frozenset({"/health", "/metrics"})
"""Routes a load balancer or Prometheus reads without the key."""

_MESSAGE = (
    "missing or wrong API key: send the server's key as the header 'Authorization: Bearer <key>' "
    "(the OpenAI SDK's api_key=, vllm-embed's VLLM_EMBED_API_KEY)"
)


class APIKeyCheck:
    """ASGI middleware: answers 401 unless the request carries the key; the key is never logged or echoed."""

    def __init__(self, app: Any, api_key: str) -> None:
        self.app = app
        self._expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:  # noqa: D102 - ASGI
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope.get("headers", ()) if name == b"authorization"), b"")
        if not hmac.compare_digest(given, self._expected):
            await send_json(send, 401, error_bytes(401, _MESSAGE), [(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)
