"""Vector store sinks: where the ingest pipeline lands vectors and where `search` reads them."""

from vllm_embed.sinks.base import (
    BaseSink,
    Chunk,
    CollectionNotFoundError,
    Hit,
    HybridSink,
    Layout,
    Manifest,
    ManifestMismatchError,
    MetadataFilter,
    Sink,
    SinkError,
    VerifiableSink,
)
from vllm_embed.sinks.milvus import MilvusSink
from vllm_embed.sinks.qdrant import QdrantEdgeSink, QdrantSink

__all__ = [
    "BaseSink",
    "Chunk",
    "CollectionNotFoundError",
    "Hit",
    "HybridSink",
    "Layout",
    "Manifest",
    "ManifestMismatchError",
    "MetadataFilter",
    "MilvusSink",
    "QdrantEdgeSink",
    "QdrantSink",
    "Sink",
    "SinkError",
    "VerifiableSink",
]
