"""Request validation errors as one line that names each field at fault and what to send instead."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_SHOWN = 3


def validation_message(errors: Sequence[Mapping[str, Any]]) -> str:
    """One line for pydantic's (or FastAPI's) validation errors: the first few, each with its field."""
    parts = [_one(error) for error in errors[:_SHOWN]]
    more = len(errors) - _SHOWN
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts) or "the request body is not valid"


def field_name(error: Mapping[str, Any]) -> str:
    """The field of an error as `a.b[0]` (FastAPI's leading `body` dropped)."""
    name = ""
    for part in error.get("loc", ()):
        if part == "body" and not name:
            continue
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


def _one(error: Mapping[str, Any]) -> str:
    kind, field = error.get("type", ""), field_name(error)
    if kind == "json_invalid":
        detail = (error.get("ctx") or {}).get("error", "")
        return f"the body is not valid JSON ({detail}); send a JSON object"
    if not field:
        return "the body must be a JSON object with the endpoint's fields"
    if kind == "missing":
        return f"{field} is required"
    if kind == "extra_forbidden":
        return f"unknown field {field!r}: check its spelling (the endpoint's fields are listed at /docs)"
    return f"{field}: {error.get('msg', 'invalid value')}"
