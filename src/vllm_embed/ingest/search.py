"""Search over a collection, with the model its manifest names: dense, BM25 or both fused, then rerank."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal, Protocol, get_args

import numpy as np
import numpy.typing as npt

from vllm_embed.ingest.embedder_api import SupportsEmbedding
from vllm_embed.sinks.base import CollectionNotFoundError, Hit, Manifest, MetadataFilter, Sink
from vllm_embed.sinks.fusion import FusionMethod, FusionSettings, fusion_settings

SearchMode = Literal["dense", "sparse", "hybrid"]
"""How `search` retrieves: the dense vectors, the BM25 sparse vectors, or both fused (`FusionSettings`)."""

SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)


def require_manifest(sink: Sink) -> Manifest:
    """Returns the collection's manifest.

    Raises:
        CollectionNotFoundError: If the collection does not exist.
    """
    manifest = sink.read_manifest()
    if manifest is None:
        raise CollectionNotFoundError(
            f"collection {sink.collection!r} does not exist in {sink!r}; ingest into it first"
        )
    return manifest


def resolve_mode(manifest: Manifest, mode: str | None, collection: str) -> SearchMode:
    """Returns the search mode to use: `mode`, or `"hybrid"` for a hybrid collection and `"dense"` otherwise.

    Raises:
        ValueError: If `mode` is unknown, or sparse/hybrid on a dense-only collection.
    """
    if mode is None:
        return "hybrid" if manifest.sparse else "dense"
    if mode not in SEARCH_MODES:
        raise ValueError(f"mode={mode!r} is not a search mode; choose one of {', '.join(SEARCH_MODES)}")
    if mode != "dense" and not manifest.sparse:
        raise ValueError(
            f"mode={mode!r} needs BM25 vectors, and collection {collection!r} is dense-only: search with "
            "mode='dense', or ingest with --hybrid (hybrid=True on the sink) into a new collection"
        )
    return mode  # type: ignore[return-value]  # checked against SEARCH_MODES above


DEFAULT_CANDIDATES = 50
"""First-stage hits fetched for a reranker to reorder, when `candidates` is not given."""


class SupportsRerank(Protocol):
    """What `search` needs of a reranker (`vllm_embed.Reranker`)."""

    def score(self, query: str, documents: Sequence[str]) -> npt.NDArray[np.float32]:
        """Scores each document's relevance to `query`."""
        ...


def search(
    query: str,
    *,
    embedder: SupportsEmbedding,
    sink: Sink,
    top_k: int = 5,
    filter: MetadataFilter | None = None,
    mode: SearchMode | None = None,
    candidates: int | None = None,
    rerank: SupportsRerank | None = None,
    fusion: FusionMethod | FusionSettings | None = None,
    **fusion_options: Any,
) -> list[Hit]:
    """Returns the chunks that best match `query`, best first; with `rerank`, the first stage reordered.

    Args:
        query: The search text (embedded as a query, with the model's query prompt or instruction).
        embedder: An embedder for the model the collection was embedded with.
        sink: The collection to search.
        top_k: Number of hits.
        filter: Metadata fields the hits must equal, e.g. `{"lang": "en"}`.
        mode: `"dense"` (cosine similarity of the vectors), `"sparse"` (BM25 score) or `"hybrid"` (both,
            fused as `fusion` says); `None` is `"hybrid"` for a collection ingested with `--hybrid`,
            else `"dense"`. Each hit's `found_by` names the searches that found it.
        candidates: The first stage's size: with `rerank`, the hits handed to the reranker (50 when `None`);
            in hybrid mode, also the points each search passes to the fusion (4 × the hits fetched when
            `None`). At least `top_k`.
        rerank: A `Reranker` that reorders the first stage's hits; each hit keeps its first-stage `score`
            and gets its `rerank_score`.
        fusion: How hybrid mode fuses the two searches: `"rrf"` or `"weighted"`, or whole
            `FusionSettings` (`vllm_embed.sinks.fusion`; its defaults when `None`). Search-time only.
        **fusion_options: The other `FusionSettings` fields: `rrf_k`, `dense_weight`, `sparse_weight`.

    Raises:
        CollectionNotFoundError: If the collection does not exist.
        ManifestMismatchError: If `embedder` is not the model (or size) the collection was embedded with.
        ValueError: For `top_k < 1`, `candidates < top_k`, an invalid filter or mode, or a sparse/hybrid
            mode on a dense-only collection.
        FusionSettingsError: For an unknown or out-of-range fusion setting.
    """
    fused = fusion_of(fusion, fusion_options)
    if top_k < 1:
        raise ValueError(f"top_k={top_k} must be at least 1")
    if candidates is not None and candidates < top_k:
        raise ValueError(f"candidates={candidates} must be at least top_k={top_k}")
    stored = require_manifest(sink)
    stored.require_compatible(
        Manifest.from_description(embedder.describe(), layout=sink.layout.name), sink.collection
    )
    mode = resolve_mode(stored, mode, sink.collection)
    fetch = top_k if rerank is None else max(top_k, candidates or DEFAULT_CANDIDATES)
    if mode == "dense":
        hits = sink.search(embedder.embed_query(query), fetch, filter)
    elif mode == "sparse":
        hits = sink.sparse_search(query, fetch, filter)
    else:
        per_search = None if candidates is None else max(candidates, fetch)
        hits = sink.hybrid_search(query, embedder.embed_query(query), fetch, filter, per_search, fused)
    if rerank is None:
        return hits
    return rerank_hits(query, hits, rerank, top_k)


def fusion_of(fusion: FusionMethod | FusionSettings | None, options: dict[str, Any]) -> FusionSettings:
    """The `FusionSettings` of `search`'s `fusion` and `**fusion_options`.

    Raises:
        FusionSettingsError: For an unknown or out-of-range setting.
    """
    if isinstance(fusion, FusionSettings):
        return fusion_settings(**{**fusion.model_dump(), **options})
    return fusion_settings(**options) if fusion is None else fusion_settings(fusion=fusion, **options)


def rerank_hits(query: str, hits: list[Hit], rerank: SupportsRerank, top_k: int) -> list[Hit]:
    """Reorders first-stage hits by a reranker's scores (ties keep the first-stage order); keeps `top_k`.

    Raises:
        ValueError: If a score is not a finite number (a NaN or infinite score cannot order the hits, and
            JSON has no value for it).
    """
    if not hits:
        return []
    scores = np.asarray(rerank.score(query, [hit.text for hit in hits]), dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        raise ValueError(
            f"the reranker's score of documents[{bad[0]}] is {scores[bad[0]]}, not a finite number; the hits "
            "were not reranked"
        )
    order = np.argsort(-scores, kind="stable")[:top_k]
    return [dataclasses.replace(hits[i], rerank_score=float(scores[i])) for i in order]
