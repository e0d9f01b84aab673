"""LangChain embeddings (`VLLMEmbeddings`) and reranking (`VLLMRerank`) backed by vllm-embed.

`BM25SparseEmbeddings`, for langchain-qdrant's hybrid retrieval, needs
`pip install "langchain-vllm-embed[qdrant]"`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_vllm_embed.embeddings import VLLMEmbeddings
from langchain_vllm_embed.rerank import VLLMRerank

if TYPE_CHECKING:
    from langchain_vllm_embed.sparse import BM25SparseEmbeddings

__all__ = ["BM25SparseEmbeddings", "VLLMEmbeddings", "VLLMRerank"]


def __getattr__(name: str) -> Any:
    if name == "BM25SparseEmbeddings":  # imported on first use: it needs langchain-qdrant
        try:
            from langchain_vllm_embed.sparse import BM25SparseEmbeddings
        except ImportError as exc:
            raise ImportError(
                f"BM25SparseEmbeddings needs langchain-qdrant and qdrant-edge-py ({exc}): "
                'pip install "langchain-vllm-embed[qdrant]"'
            ) from exc
        return BM25SparseEmbeddings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
