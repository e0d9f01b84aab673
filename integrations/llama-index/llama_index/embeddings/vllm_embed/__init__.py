"""LlamaIndex embeddings by vllm-embed: `from llama_index.embeddings.vllm_embed import VLLMEmbedding`.

`VLLMSparseFunctions` gives `QdrantVectorStore(enable_hybrid=True)` learned sparse vectors (SPLADE, BGE-M3).
"""

from llama_index.embeddings.vllm_embed.base import DEFAULT_EMBED_BATCH_SIZE, VLLMEmbedding
from llama_index.embeddings.vllm_embed.milvus import milvus_vector_store
from llama_index.embeddings.vllm_embed.sparse import VLLMSparseFunctions

__all__ = ["DEFAULT_EMBED_BATCH_SIZE", "VLLMEmbedding", "VLLMSparseFunctions", "milvus_vector_store"]
