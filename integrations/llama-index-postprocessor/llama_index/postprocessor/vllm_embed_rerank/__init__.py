"""LlamaIndex reranking by vllm-embed: `VLLMRerank`, a node postprocessor (Qwen3-Reranker, cross-encoders)."""

from llama_index.postprocessor.vllm_embed_rerank.base import DEFAULT_TOP_N, VLLMRerank

__all__ = ["DEFAULT_TOP_N", "VLLMRerank"]
