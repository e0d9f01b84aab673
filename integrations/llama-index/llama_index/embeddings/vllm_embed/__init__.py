"""LlamaIndex embeddings by vllm-embed: `from llama_index.embeddings.vllm_embed import VLLMEmbedding`."""

from llama_index.embeddings.vllm_embed.base import DEFAULT_EMBED_BATCH_SIZE, VLLMEmbedding
from llama_index.embeddings.vllm_embed.milvus import milvus_vector_store

__all__ = ["DEFAULT_EMBED_BATCH_SIZE", "VLLMEmbedding", "milvus_vector_store"]
