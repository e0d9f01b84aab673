"""Semantic search over a collection, with the model the collection's manifest names."""

from __future__ import annotations

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


def search(
    query: str,
    *,
    embedder: SupportsEmbedding,
    sink: Sink,
    top_k: int = 5,
    filter: MetadataFilter | None = None,
) -> list[Hit]:
    """Returns the chunks closest to `query`, best first.

    Args:
        query: The search text (embedded as a query, with the model's query prompt or instruction).
        embedder: An embedder for the model the collection was embedded with.
        sink: The collection to search.
        top_k: Number of hits.
        filter: Metadata fields the hits must equal, e.g. `{"lang": "en"}`.

    Raises:
        CollectionNotFoundError: If the collection does not exist.
        ManifestMismatchError: If `embedder` is not the model (or size) the collection was embedded with.
        ValueError: For `top_k < 1` or an invalid filter.
    """
    if top_k < 1:
        raise ValueError(f"top_k={top_k} must be at least 1")
    stored = require_manifest(sink)
    stored.require_compatible(
        Manifest.from_description(embedder.describe(), layout=sink.layout.name), sink.collection
    )
    return sink.search(embedder.embed_query(query), top_k, filter)
