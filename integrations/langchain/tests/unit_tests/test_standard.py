"""LangChain's standard unit suite (langchain-tests) on `VLLMEmbeddings`: construction only, no engine."""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import EmbeddingsUnitTests
from langchain_vllm_embed import VLLMEmbeddings


class TestVLLMEmbeddingsUnit(EmbeddingsUnitTests):
    """The model name need not even exist locally: nothing is loaded at construction."""

    @property
    def embeddings_class(self) -> type[VLLMEmbeddings]:
        return VLLMEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": "sentence-transformers/all-MiniLM-L6-v2", "dimensions": 384}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"VLLM_EMBED_API_KEY": "key-from-env"},
            {"model": "served-model", "backend": "openai", "base_url": "http://127.0.0.1:9/v1"},
            {"api_key": "key-from-env"},
        )
