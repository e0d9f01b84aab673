"""Vector store sinks: where the ingest pipeline lands vectors and where `search` reads them."""

from vllm_embed.sinks.base import (
    Chunk,
    CollectionNotFoundError,
    Hit,
    Layout,
    Manifest,
    ManifestMismatchError,
    MetadataFilter,
    Sink,
    SinkError,
)
from vllm_embed.sinks.milvus import MilvusSink
from vllm_embed.sinks.qdrant import QdrantSink

__all__ = [
    "Chunk",
    "CollectionNotFoundError",
    "Hit",
    "Layout",
    "Manifest",
    "ManifestMismatchError",
    "MetadataFilter",
    "MilvusSink",
    "QdrantSink",
    "Sink",
    "SinkError",
]
