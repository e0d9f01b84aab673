"""The server's own settings (limits), each declared once: the `serve` command's flags derive from them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_PORT = 8000


class ServeLimits(BaseModel):
    """What one request may hold and how much work may wait; past them the server answers 413 or 429."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    max_request_bytes: int = Field(default=16 << 20, ge=1)
    """Largest request body in bytes; a larger one is answered 413."""

    max_request_inputs: int = Field(default=2048, ge=1)
    """Most texts (or documents) in one request; more are answered 413."""

    max_queued_tokens: int = Field(default=1 << 18, ge=1)
    """Most input tokens admitted and not yet answered, over all requests. A request that would go past it
    waits for nothing: it is answered 429 with Retry-After (413 if it alone is larger)."""
