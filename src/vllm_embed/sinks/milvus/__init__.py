"""The Milvus store (Milvus Lite or a server): `sink.py` over `collection.py`'s hooks and `values.py`."""

from vllm_embed.sinks.milvus.collection import BM25_ANALYZER, MilvusCollection
from vllm_embed.sinks.milvus.sink import _LITE_GRPC_OPTIONS, MilvusSink, terms_text, truncate_utf8
from vllm_embed.sinks.milvus.values import VARCHAR_MAX_BYTES, milvus_literal

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
