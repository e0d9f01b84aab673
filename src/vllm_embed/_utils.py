"""Small helpers shared across the package: each written once here and imported where needed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

Vectors = npt.NDArray[np.float32]
"""A 2-D float32 array, one vector a row."""

_T = TypeVar("_T")


def unit_rows(matrix: Vectors) -> Vectors:
    """Returns `matrix` with every row scaled to unit L2 norm (all-zero rows stay zero), as float32.

    Norms are computed in float64, so rows of huge float32 values (1e38) keep their direction.
    """
    wide = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(wide, axis=1, keepdims=True)
    np.maximum(norms, np.finfo(np.float64).tiny, out=norms)
    unit: Vectors = (wide / norms).astype(np.float32)
    return unit


def vector_problem(vector: object, width: int) -> str | None:
    """Says what makes `vector` unusable, or returns `None` when it is fine.

    A usable vector has exactly `width` numbers, all finite, and a non-zero norm (computed in float64, so
    huge but finite float32 values pass). The text completes a sentence such as "the vector …".
    """
    if vector is None:
        return "is missing"
    try:
        values = np.asarray(vector, dtype=np.float64)
    except (TypeError, ValueError):
        return "holds values that are not numbers"
    if values.shape != (width,):
        return f"has shape {values.shape}, expected ({width},)"
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        return f"is not finite ({values[bad]} at position {bad})"
    if not np.linalg.norm(values) > 0:
        return "is all zeros"
    return None


def first_vector_problem(rows: Iterable[object], width: int) -> tuple[int, str] | None:
    """The position and `vector_problem` of the first row that is not a usable vector of `width` values."""
    for position, row in enumerate(rows):
        problem = vector_problem(row, width)
        if problem is not None:
            return position, problem
    return None


def batched(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    """Yields consecutive slices of `items` of at most `size` elements (`itertools.batched` is 3.12+).

    Raises:
        ValueError: If `size` is not positive.
    """
    if size < 1:
        raise ValueError(f"batch size must be positive, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def one_line(exc: BaseException) -> str:
    """An exception's message on one line, for CLI errors and wrapped error messages.

    A pydantic `ValidationError` becomes `field: message; field: message` without its URLs.
    """
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
    return " ".join(str(exc).split()) or type(exc).__name__
