"""Glue for the framework adapter packages (`langchain-vllm-embed`, `llama-index-embeddings-vllm-embed`).

Nothing here imports a framework: `EmbedderAdapter`, `RerankerAdapter` and `SparseEmbedderAdapter` are the
pydantic bases the adapters extend next to their framework's own base class, and `LazyEmbedder` (and its
siblings) start the engine on first use.
"""

from vllm_embed.adapters.base import (
    ENGINE_SETTINGS,
    PER_CALL_SETTINGS,
    EmbedderAdapter,
    model_field,
    setting_description,
)
from vllm_embed.adapters.lazy import LazyEmbedder, LazyReranker, LazySparseEmbedder
from vllm_embed.adapters.rerank import (
    RERANKER_SETTINGS,
    RerankerAdapter,
    RerankerSettings,
    reranker_model_field,
    reranker_setting_description,
)
from vllm_embed.adapters.sparse import (
    SPARSE_SETTINGS,
    SparseEmbedderAdapter,
    SparseEmbedderSettings,
    sparse_model_field,
)

__all__ = [
    "ENGINE_SETTINGS",
    "PER_CALL_SETTINGS",
    "RERANKER_SETTINGS",
    "SPARSE_SETTINGS",
    "EmbedderAdapter",
    "LazyEmbedder",
    "LazyReranker",
    "LazySparseEmbedder",
    "RerankerAdapter",
    "RerankerSettings",
    "SparseEmbedderAdapter",
    "SparseEmbedderSettings",
    "model_field",
    "reranker_model_field",
    "reranker_setting_description",
    "setting_description",
    "sparse_model_field",
]
