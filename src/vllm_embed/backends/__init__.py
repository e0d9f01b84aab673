"""Engines behind the `Embedder`: in-process vLLM and OpenAI-compatible servers."""

from vllm_embed.backends.base import Backend, EngineInput

__all__ = ["Backend", "EngineInput"]
