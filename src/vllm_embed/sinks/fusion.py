"""How a hybrid search fuses its dense and BM25 candidates: once, client-side, for every store."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from vllm_embed.errors import FusionSettingsError as FusionSettingsError
from vllm_embed.sinks.chunks import Hit
from vllm_embed.sinks.storage import validated

FusionMethod = Literal["rrf", "weighted"]
"""`rrf`: weighted reciprocal-rank fusion; `weighted`: weighted sum of min-max normalised scores."""

FUSION_METHODS: tuple[str, ...] = get_args(FusionMethod)


class FusionSettings(BaseModel):
    """How `hybrid_search` fuses the dense and BM25 candidates (search-time only, recorded nowhere).

    The defaults (RRF, k=10, dense:sparse 3:1) were chosen by `benchmarks/bench_fusion.py` (the table is
    in docs/guides/hybrid.md): of the settings that keep hybrid at least as good as dense on hand-written
    questions on every store, they lift identifier and natural queries most. Equal weights (or k=60)
    let BM25's noise on paraphrasing questions pull hybrid below dense.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    fusion: FusionMethod = "rrf"
    """`rrf` (reciprocal rank: each list adds weight / (k + rank)) or `weighted` (each list's scores
    min-max normalised to [0, 1], then added with the weights)."""
    rrf_k: int = Field(default=10, ge=1)
    """RRF's rank constant: smaller lets the first ranks of each list count more."""
    dense_weight: float = Field(default=3.0, ge=0)
    """Weight of the dense (embedding) candidates."""
    sparse_weight: float = Field(default=1.0, ge=0)
    """Weight of the BM25 candidates."""


def fusion_settings(**values: Any) -> FusionSettings:
    """`FusionSettings(**values)`, with a one-line `FusionSettingsError` naming each invalid setting."""
    return validated(FusionSettings, "search", error=FusionSettingsError, what="fusion settings", **values)


def fuse(
    candidates: Mapping[str, Sequence[Hit]], top_k: int, settings: FusionSettings | None = None
) -> list[Hit]:
    """Fuses ranked candidate lists (`{"dense": [...], "sparse": [...]}`, best first) into the `top_k` best.

    Hits are ordered by fused score (`score`; ties in the order first met), `found_by` naming their lists.
    """
    settings = settings or FusionSettings()
    weights = {"dense": settings.dense_weight, "sparse": settings.sparse_weight}
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    found: dict[str, list[str]] = {}
    for branch, hits in candidates.items():
        weight = weights.get(branch, 1.0)
        contributions = _contributions(hits, settings)
        for hit, contribution in zip(hits, contributions, strict=True):
            if hit.id in found and branch in found[hit.id]:
                continue  # a list naming a point twice counts it once, at its best rank
            first.setdefault(hit.id, hit)
            found.setdefault(hit.id, []).append(branch)
            scores[hit.id] = scores.get(hit.id, 0.0) + weight * contribution
    order = sorted(scores, key=lambda point: -scores[point])  # stable: ties keep first-met order
    return [
        dataclasses.replace(first[point], score=scores[point], found_by=tuple(found[point]))
        for point in order[:top_k]
    ]


def _contributions(hits: Sequence[Hit], settings: FusionSettings) -> list[float]:
    """Each hit's unweighted share of the fused score in its list."""
    if settings.fusion == "rrf":
        return [1.0 / (settings.rrf_k + rank) for rank in range(1, len(hits) + 1)]
    if not hits:
        return []
    values = [hit.score for hit in hits]
    low, high = min(values), max(values)
    if high == low:
        return [1.0] * len(hits)
    return [(value - low) / (high - low) for value in values]
