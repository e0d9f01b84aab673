"""The Qdrant stores: one driver body (`common.py`) under qdrant-client (`client.py`) and qdrant-edge-py."""

from vllm_embed.sinks.qdrant.client import QdrantSink
from vllm_embed.sinks.qdrant.common import QdrantBaseSink
from vllm_embed.sinks.qdrant.edge import QdrantEdgeSink

__all__ = ["QdrantBaseSink", "QdrantEdgeSink", "QdrantSink"]
