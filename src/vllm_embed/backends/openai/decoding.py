"""Reading an embeddings response: how large it may be, rows in input order, and only usable vectors."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from vllm_embed._utils import Vectors, vector_problem
from vllm_embed.backends.openai.errors import RemoteEmbeddingError
from vllm_embed.errors import InvalidVectorError

BYTES_PER_VALUE = 48
"""Room for one vector value: a float written as JSON text, with separators and indentation."""
BYTES_PER_ITEM = 1024
"""Room for what wraps each vector (`{"object": "embedding", "index": …}`)."""
BYTES_PER_RESPONSE = 1 << 20
"""Room for the rest of a response (model name, usage, anything a server adds)."""
UNKNOWN_DIMENSION = 1 << 16
"""The vector size assumed for the size bound before the probe has learnt the real one."""


def response_limit(count: int, width: int | None) -> int:
    """The most bytes an answer for `count` vectors of `width` values can legitimately need."""
    return BYTES_PER_RESPONSE + count * (BYTES_PER_ITEM + (width or UNKNOWN_DIMENSION) * BYTES_PER_VALUE)


def malformed_answer(
    url: str, redact: Callable[[str], str], hint: str
) -> Callable[[str], RemoteEmbeddingError]:
    """Builds the errors for an answer from `url` that is not what the endpoint answers; `hint` ends them."""

    def malformed(problem: str) -> RemoteEmbeddingError:
        message = f"unexpected answer from {url}: {problem}; {hint}"
        return RemoteEmbeddingError(redact(message), url=url, status=200, attempts=1)

    return malformed


def answer_items(
    body: bytes, key: str, count: int, malformed: Callable[[str], RemoteEmbeddingError], *, noun: str, of: str
) -> list[Any]:
    """The list under `key` of a JSON answer, which must hold `count` items (`noun` for `count` `of`).

    Raises:
        RemoteEmbeddingError: If the body is not JSON (or nested too deeply to read) or the list is missing
            or of another length.
    """
    try:
        parsed: Any = json.loads(body)
    except ValueError as exc:
        raise malformed(f"the body is not JSON ({exc})") from None
    except RecursionError:
        raise malformed("the body is JSON nested too deeply to read") from None
    items = parsed.get(key) if isinstance(parsed, dict) else None
    if not isinstance(items, list) or len(items) != count:
        found = len(items) if isinstance(items, list) else "no"
        raise malformed(f"{found} {noun} for {count} {of}")
    return items


class _BadVector(Exception):
    """Why one embedding cannot be used."""


def decode_embeddings(
    body: bytes,
    *,
    count: int,
    width: int | None,
    offset: int,
    url: str,
    redact: Callable[[str], str],
) -> Vectors:
    """Reads the vectors of an embeddings response (base64 float32 or float lists), in input order.

    Args:
        body: The response body.
        count: How many inputs the request sent.
        width: The vector length the request must get back; `None` when not known yet (the probe).
        offset: Position of the request's first input among the inputs given to the backend.
        url: The endpoint, named in errors.
        redact: Removes the API key from messages built from the server's content.

    Raises:
        RemoteEmbeddingError: If the body is malformed, holds another number of embeddings, or its `index`
            values are not a permutation of the request's positions.
        InvalidVectorError: If a vector is empty, has the wrong length, holds a value that is not a finite
            float32 number, or is all zeros.
    """
    malformed = malformed_answer(url, redact, "the server is not OpenAI-compatible or misbehaves")

    def invalid(position: int, problem: str) -> InvalidVectorError:
        return InvalidVectorError(
            redact(
                f"{url} returned an unusable vector for inputs[{offset + position}] of the batch given to "
                f"the backend: {problem}; nothing of this batch was used (check the served model and the "
                "server's logs)"
            )
        )

    data = answer_items(body, "data", count, malformed, noun="embeddings", of="inputs")
    if not all(isinstance(item, dict) for item in data):
        raise malformed("an entry of `data` is not an object")
    indexes = [item.get("index") for item in data]
    if count == 1 and indexes == [None]:
        indexes = [0]
    if sorted(index if type(index) is int else -1 for index in indexes) != list(range(count)):
        shown = ", ".join(repr(index) for index in indexes[:20]) + (", …" if count > 20 else "")
        raise malformed(f"the `index` values [{shown}] are not the positions 0..{count - 1}, each once")
    by_index = {index: item.get("embedding") for index, item in zip(indexes, data, strict=True)}
    ordered = [by_index[position] for position in range(count)]

    rows: list[Vectors] = []
    for position, embedding in enumerate(ordered):
        try:
            row = _vector(embedding)
        except _BadVector as exc:
            raise invalid(position, str(exc)) from None
        expected = width if width is not None else len(rows[0]) if rows else None
        if len(row) == 0:
            raise invalid(position, "it is empty")
        if expected is not None and len(row) != expected:
            raise invalid(position, f"it has {len(row)} values, expected {expected}")
        rows.append(row)
    for position, row in enumerate(rows):
        problem = vector_problem(row, len(row))
        if problem is not None:
            raise invalid(position, f"it {problem}")
    result: Vectors = np.stack(rows).astype(np.float32, copy=False)
    return result


def _vector(embedding: Any) -> Vectors:
    """One embedding as float32: values beyond float32's range become infinite, to be refused later."""
    if isinstance(embedding, str):
        try:
            raw = base64.b64decode(embedding, validate=True)
        except (binascii.Error, ValueError):
            raise _BadVector("it is a string but not base64") from None
        if len(raw) % 4:
            raise _BadVector(f"its base64 decodes to {len(raw)} bytes, not whole float32 values")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not isinstance(embedding, list):
        raise _BadVector(f"it is {type(embedding).__name__}, not a list of numbers or base64")
    try:
        values = np.asarray(embedding)
    except ValueError:
        raise _BadVector("it is not a flat list of numbers") from None
    if len(embedding) and (values.ndim != 1 or values.dtype.kind not in "iuf"):
        kinds = sorted(
            {
                "null" if value is None else type(value).__name__
                for value in embedding
                if type(value) not in (float, int)
            }
        )
        # Only numbers, yet no numeric array: integers too large for any float (`10**400`).
        shown = ", ".join(kinds) or "integers too large for a float"
        raise _BadVector(f"it holds values that are not numbers ({shown})")
    with np.errstate(over="ignore"):
        row: Vectors = values.astype(np.float32)
    return row
