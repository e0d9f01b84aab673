"""The Qdrant stores: one driver body (`common.QdrantBaseSink`) over two clients.

`QdrantSink` (`client.py`) talks to a Qdrant server or qdrant-client's local mode; `QdrantEdgeSink`
(`edge.py`) runs Qdrant's own engine in-process (qdrant-edge-py). Points, payloads, filters, the dense,
BM25 and fused queries, payload indexes, adoption and the storage settings are decided once in
`common.py`; each client module only says how its client is called.
"""

from vllm_embed.sinks.qdrant.client import QdrantSink
from vllm_embed.sinks.qdrant.common import QdrantBaseSink
from vllm_embed.sinks.qdrant.edge import QdrantEdgeSink

__all__ = ["QdrantBaseSink", "QdrantEdgeSink", "QdrantSink"]
