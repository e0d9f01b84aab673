"""vllm-embed: vLLM as the embedding engine behind vector databases."""

from vllm_embed._optional import MissingDependencyError
from vllm_embed._version import __version__
from vllm_embed.advise import Advice, AdviceRow, advise
from vllm_embed.backends.openai import RemoteEmbeddingError, RemoteRequestError
from vllm_embed.cache import CacheStats, EmbeddingCache
from vllm_embed.config import EmbedderConfig, MultiVectorEmbedderConfig, RerankerConfig, SparseEmbedderConfig
from vllm_embed.embedder import Embedder
from vllm_embed.ingest import Document, Hit, IngestReport, ingest, load_path, load_paths, search
from vllm_embed.learned_sparse import SparseEmbedder, SparseVector
from vllm_embed.multivector import MultiVectorEmbedder
from vllm_embed.profiles import ModelProfile
from vllm_embed.reranker import Reranker

__all__ = [
    "Advice",
    "AdviceRow",
    "CacheStats",
    "Document",
    "Embedder",
    "EmbedderConfig",
    "EmbeddingCache",
    "Hit",
    "IngestReport",
    "MissingDependencyError",
    "ModelProfile",
    "MultiVectorEmbedder",
    "MultiVectorEmbedderConfig",
    "RemoteEmbeddingError",
    "RemoteRequestError",
    "Reranker",
    "RerankerConfig",
    "SparseEmbedder",
    "SparseEmbedderConfig",
    "SparseVector",
    "__version__",
    "advise",
    "ingest",
    "load_path",
    "load_paths",
    "search",
]
