"""Search over a collection, with the model the collection's manifest names: dense, BM25 or both fused."""

from __future__ import annotations

from typing import Literal, get_args

from vllm_embed.ingest.embedder_api import SupportsEmbedding
from vllm_embed.sinks.base import CollectionNotFoundError, Hit, HybridSink, Manifest, MetadataFilter, Sink

SearchMode = Literal["dense", "sparse", "hybrid"]
"""How `search` retrieves: the dense vectors, the BM25 sparse vectors, or both fused by reciprocal rank."""

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


def search(
    query: str,
    *,
    embedder: SupportsEmbedding,
    sink: Sink,
    top_k: int = 5,
    filter: MetadataFilter | None = None,
    mode: SearchMode | None = None,
    candidates: int | None = None,
) -> list[Hit]:
    """Returns the chunks that best match `query`, best first.

    Args:
        query: The search text (embedded as a query, with the model's query prompt or instruction).
        embedder: An embedder for the model the collection was embedded with.
        sink: The collection to search.
        top_k: Number of hits.
        filter: Metadata fields the hits must equal, e.g. `{"lang": "en"}`.
        mode: `"dense"` (cosine similarity of the vectors), `"sparse"` (BM25 score) or `"hybrid"` (both,
            fused by reciprocal rank); `None` is `"hybrid"` for a collection ingested with `--hybrid`,
            else `"dense"`. Each hit's `found_by` names the searches that found it.
        candidates: In hybrid mode, the points each search passes to the fusion (4 × `top_k` when `None`).

    Raises:
        CollectionNotFoundError: If the collection does not exist.
        ManifestMismatchError: If `embedder` is not the model (or size) the collection was embedded with.
        ValueError: For `top_k < 1`, `candidates < top_k`, an invalid filter or mode, or a sparse/hybrid
            mode on a dense-only collection.
    """
    if top_k < 1:
        raise ValueError(f"top_k={top_k} must be at least 1")
    if candidates is not None and candidates < top_k:
        raise ValueError(f"candidates={candidates} must be at least top_k={top_k}")
    stored = require_manifest(sink)
    stored.require_compatible(
        Manifest.from_description(embedder.describe(), layout=sink.layout.name), sink.collection
    )
    mode = resolve_mode(stored, mode, sink.collection)
    if mode == "dense":
        return sink.search(embedder.embed_query(query), top_k, filter)
    if not isinstance(sink, HybridSink):
        raise ValueError(f"{sink!r} cannot search BM25 vectors (it has no sparse_search/hybrid_search)")
    if mode == "sparse":
        return sink.sparse_search(query, top_k, filter)
    return sink.hybrid_search(query, embedder.embed_query(query), top_k, filter, candidates)
