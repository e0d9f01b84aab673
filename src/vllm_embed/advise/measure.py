"""The measurement: every candidate configuration searched exactly with numpy, against native float32.

See the package documentation for how each encoding is simulated (Qdrant's own).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from vllm_embed.advise.result import AdviceError, AdviceRow, _row
from vllm_embed.sinks.storage import BINARY_OVERSAMPLING

if TYPE_CHECKING:
    from vllm_embed.profiles import ModelProfile

DIMENSION_LADDER: tuple[int, ...] = (32, 64, 128, 256, 512, 768, 1024, 1536, 2048, 3072, 4096)
"""Matryoshka sizes tried: those the model's profile allows below its native size (which is always tried)."""

INT8_LEVELS = 127
"""Levels of Qdrant's int8 scalar quantization (codes 0..127)."""


def dimension_ladder(profile: ModelProfile | None, native: int) -> list[int]:
    """The sizes to try for a model: its allowed `DIMENSION_LADDER` sizes below `native`, then `native`.

    A model that is not Matryoshka-trained (or has no profile) gets its native size only.
    """
    if profile is None or not profile.matryoshka:
        return [native]
    low = min(profile.min_dimension, native)
    return [size for size in DIMENSION_LADDER if low <= size < native] + [native]


def _unit(vectors: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: NDArray[np.float32] = (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)
    return unit


def _truncated(vectors: NDArray[np.float32], dimensions: int) -> NDArray[np.float32]:
    """The vectors at a Matryoshka size, as vLLM makes them: truncated, then L2-normalised."""
    return vectors if dimensions == vectors.shape[1] else _unit(vectors[:, :dimensions])


def _top(scores: NDArray[Any], k: int) -> NDArray[np.intp]:
    """Indices of the `k` highest scores of each row, highest first (deterministic for equal scores)."""
    if k >= scores.shape[1]:
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    top: NDArray[np.intp] = np.take_along_axis(part, order, axis=1)
    return top


def _by_position(scores: NDArray[np.float32]) -> NDArray[np.int64]:
    """Integer scores made unique: equal scores rank in sample order (the first point first)."""
    positions = np.arange(scores.shape[1], dtype=np.int64)
    unique: NDArray[np.int64] = np.rint(scores).astype(np.int64) * scores.shape[1] - positions
    return unique


def _int8_decoded(docs: NDArray[np.float32], queries: NDArray[np.float32]) -> tuple[NDArray[Any], ...]:
    low, high = float(docs.min()), float(docs.max())
    step = (high - low) / INT8_LEVELS or 1.0

    def decode(values: NDArray[np.float32]) -> NDArray[np.float32]:
        codes = np.clip(np.round((values - low) / step), 0, INT8_LEVELS)
        return (codes * step + low).astype(np.float32)

    return decode(docs), decode(queries)


def _signs(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """Qdrant's binary quantization as ±1: a dimension's bit is set when its value is above 0."""
    return np.where(vectors > 0, 1.0, -1.0).astype(np.float32)


def _recall(found: NDArray[np.intp], reference: NDArray[np.intp]) -> float:
    k = reference.shape[1]
    hits = sum(
        len(np.intersect1d(row, ref, assume_unique=True)) for row, ref in zip(found, reference, strict=True)
    )
    return float(hits / (k * len(reference)))


def evaluate(
    documents: NDArray[np.float32],
    queries: NDArray[np.float32],
    *,
    dimensions: Sequence[int],
    top_k: int = 10,
    oversampling: float = BINARY_OVERSAMPLING,
) -> list[AdviceRow]:
    """Measures every configuration on embedded vectors, against the native float32 exact top-k.

    Args:
        documents: The sample's vectors at the native size, one row per chunk (L2-normalised here).
        queries: The queries' vectors at the native size.
        dimensions: The sizes to measure (each at most the native size).
        top_k: The k of recall@k (at most the number of documents).
        oversampling: Candidates per hit fetched by Hamming distance before a binary rescore.

    Returns:
        One row per size and encoding: float32, int8, binary, binary with rescoring; largest size first.

    Raises:
        AdviceError: For a size outside 1..native, or `top_k` not below the number of documents.
    """
    docs, qs = _unit(np.asarray(documents)), _unit(np.asarray(queries))
    native = docs.shape[1]
    if not 0 < top_k < len(docs):
        raise AdviceError(
            f"top_k={top_k} must be at least 1 and below the {len(docs)} sampled chunks: pass a smaller "
            "top_k, or a larger corpus or sample"
        )
    if not len(qs):
        raise AdviceError("no queries to measure with: pass queries, or a corpus with more chunks")
    sizes = sorted({int(size) for size in dimensions}, reverse=True)
    if not sizes or sizes[-1] < 1 or sizes[0] > native:
        raise AdviceError(f"dimensions {list(dimensions)} must lie within 1..{native} (the native size)")
    reference = _top(qs @ docs.T, top_k)
    fetched = min(len(docs), math.ceil(oversampling * top_k))
    rows: list[AdviceRow] = []
    for size in sizes:
        d, q = _truncated(docs, size), _truncated(qs, size)
        exact = q @ d.T
        found = reference if size == native else _top(exact, top_k)
        rows.append(_row(size, "float32", False, None, _recall(found, reference)))
        d8, q8 = _int8_decoded(d, q)
        rows.append(_row(size, "int8", False, None, _recall(_top(q8 @ d8.T, top_k), reference)))
        # Sign agreement is the size minus twice the Hamming distance (exact in float32 at these sizes).
        agreement = _by_position(_signs(q) @ _signs(d).T)
        rows.append(_row(size, "binary", False, None, _recall(_top(agreement, top_k), reference)))
        candidates = _top(agreement, fetched)
        rescored = np.take_along_axis(exact, candidates, axis=1)
        order = np.argsort(-rescored, axis=1, kind="stable")[:, :top_k]
        found = np.take_along_axis(candidates, order, axis=1)
        rows.append(_row(size, "binary", True, oversampling, _recall(found, reference)))
    return rows
