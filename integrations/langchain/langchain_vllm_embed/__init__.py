"""LangChain embeddings (`VLLMEmbeddings`) and reranking (`VLLMRerank`) backed by vllm-embed."""

from langchain_vllm_embed.embeddings import VLLMEmbeddings
from langchain_vllm_embed.rerank import VLLMRerank

__all__ = ["VLLMEmbeddings", "VLLMRerank"]
