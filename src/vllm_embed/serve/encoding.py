"""Response bodies: JSON (with orjson when installed: it writes numpy rows directly) and base64 vectors."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
from starlette.responses import Response

from vllm_embed._utils import Vectors

try:  # optional speed-up: float vectors are most of a response, and orjson writes them ~20x faster
    import orjson

    def dumps(content: Any) -> bytes:
        """Serialises `content` (numpy arrays included) as compact JSON."""
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)

except ImportError:  # pragma: no cover - orjson comes with vLLM

    def _plain(value: Any) -> Any:
        if isinstance(value, np.ndarray | np.generic):
            return value.tolist()
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    def dumps(content: Any) -> bytes:
        """Serialises `content` (numpy arrays included) as compact JSON."""
        return json.dumps(content, separators=(",", ":"), default=_plain).encode()


def json_response(content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response whose body is already serialised (no second pass through pydantic)."""
    return Response(dumps(content), status_code=status, headers=headers, media_type="application/json")


def base64_rows(vectors: Vectors) -> list[str]:
    """Each row as base64 of its little-endian float32 bytes, as OpenAI's `encoding_format="base64"`."""
    little = np.ascontiguousarray(vectors, dtype="<f4")
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in little]
