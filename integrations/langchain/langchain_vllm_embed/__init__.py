"""LangChain embeddings (`VLLMEmbeddings`) and reranking (`VLLMRerank`) backed by vllm-embed.

`BM25SparseEmbeddings` and `VLLMSparseEmbeddings` (learned sparse: SPLADE, BGE-M3), for langchain-qdrant's
sparse and hybrid retrieval, need `pip install "langchain-vllm-embed[qdrant]"`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from langchain_vllm_embed.embeddings import VLLMEmbeddings
from langchain_vllm_embed.rerank import VLLMRerank

if TYPE_CHECKING:
    from langchain_vllm_embed.learned_sparse import VLLMSparseEmbeddings
    from langchain_vllm_embed.sparse import BM25SparseEmbeddings

__all__ = ["BM25SparseEmbeddings", "VLLMEmbeddings", "VLLMRerank", "VLLMSparseEmbeddings"]

# Imported on first use: they need langchain-qdrant (and BM25 needs qdrant-edge-py).
_QDRANT_CLASSES = {
    "BM25SparseEmbeddings": "langchain_vllm_embed.sparse",
    "VLLMSparseEmbeddings": "langchain_vllm_embed.learned_sparse",
}


def __getattr__(name: str) -> Any:
    module = _QDRANT_CLASSES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ImportError(
            f"{name} needs langchain-vllm-embed's qdrant extra ({exc}): "
            'pip install "langchain-vllm-embed[qdrant]"'
        ) from exc
