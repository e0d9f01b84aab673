"""Semantic search over a collection, with the model the collection's manifest names: first stage → rerank."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from vllm_embed.ingest.embedder_api import SupportsEmbedding
from vllm_embed.sinks.base import CollectionNotFoundError, Hit, Manifest, MetadataFilter, Sink


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
    rerank: SupportsRerank | None = None,
    candidates: int | None = None,
) -> list[Hit]:
    """Returns the chunks closest to `query`, best first; with `rerank`, the first stage's best reordered.

    Args:
        query: The search text (embedded as a query, with the model's query prompt or instruction).
        embedder: An embedder for the model the collection was embedded with.
        sink: The collection to search.
        top_k: Number of hits.
        filter: Metadata fields the hits must equal, e.g. `{"lang": "en"}`.
        rerank: A `Reranker` that reorders the first stage's hits; each hit keeps its first-stage `score`
            and gets its `rerank_score`.
        candidates: First-stage hits to fetch (default: 50 with `rerank`, else `top_k`); never fewer than
            `top_k`.

    Raises:
        CollectionNotFoundError: If the collection does not exist.
        ManifestMismatchError: If `embedder` is not the model (or size) the collection was embedded with.
        ValueError: For `top_k < 1`, `candidates < 1` or an invalid filter.
    """
    if top_k < 1:
        raise ValueError(f"top_k={top_k} must be at least 1")
    if candidates is not None and candidates < 1:
        raise ValueError(f"candidates={candidates} must be at least 1")
    stored = require_manifest(sink)
    stored.require_compatible(
        Manifest.from_description(embedder.describe(), layout=sink.layout.name), sink.collection
    )
    fetch = max(top_k, candidates or (DEFAULT_CANDIDATES if rerank is not None else top_k))
    hits = sink.search(embedder.embed_query(query), fetch, filter)
    if rerank is None:
        return hits[:top_k]
    return rerank_hits(query, hits, rerank, top_k)


def rerank_hits(query: str, hits: list[Hit], rerank: SupportsRerank, top_k: int) -> list[Hit]:
    """Reorders first-stage hits by a reranker's scores (ties keep the first-stage order); keeps `top_k`."""
    if not hits:
        return []
    scores = rerank.score(query, [hit.text for hit in hits])
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:top_k]
    return [dataclasses.replace(hits[i], rerank_score=float(scores[i])) for i in order]
