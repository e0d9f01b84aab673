"""LangChain embeddings backed by vllm-embed: `from langchain_vllm_embed import VLLMEmbeddings`."""

from langchain_vllm_embed.embeddings import VLLMEmbeddings

__all__ = ["VLLMEmbeddings"]
