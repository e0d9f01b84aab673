"""The Milvus store: a Milvus Lite file or a Milvus server, through the same pymilvus client calls.

`sink.py` is `MilvusSink` (client, points, expressions, searches), `collection.py` its lifecycle hooks
(schema, indexes, adoption, what the store reports), `values.py` the limits, literals and BM25 terms text.
Index types and parameters per server kind are `sinks/milvus_index.py`.
"""

from vllm_embed.sinks.milvus.collection import MilvusCollection
from vllm_embed.sinks.milvus.sink import MilvusSink
from vllm_embed.sinks.milvus.values import (
    _LITE_GRPC_OPTIONS,
    BM25_ANALYZER,
    VARCHAR_MAX_BYTES,
    milvus_literal,
    terms_text,
    truncate_utf8,
)

__all__ = [
    "BM25_ANALYZER",
    "VARCHAR_MAX_BYTES",
    "_LITE_GRPC_OPTIONS",
    "MilvusCollection",
    "MilvusSink",
    "milvus_literal",
    "terms_text",
    "truncate_utf8",
]
