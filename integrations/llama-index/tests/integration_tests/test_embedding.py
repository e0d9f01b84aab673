"""`VLLMEmbedding` on real Embedders: same vectors, a shared engine, real async, reuse, a remote server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest
from llama_index.embeddings.vllm_embed import VLLMEmbedding
from remote_stub import STUB_MODEL, StubServer, stub_vector

from vllm_embed import Embedder

DOCUMENTS = [
    "vLLM is a high-throughput inference and serving engine for large language models.",
    "Qdrant is a vector database that stores embeddings and searches them by similarity.",
    "A good sourdough needs flour, water, salt and a lively starter.",
]
QUERY = "How do I bake bread?"


def test_vectors_are_the_embedders(minilm_embedder: Embedder, minilm_path: str) -> None:
    from vllm_embed.backends.vllm_local import running_engines

    engines = running_engines()
    model = VLLMEmbedding(minilm_path, dtype="float32")
    documents = model.get_text_embedding_batch(DOCUMENTS)
    query = model.get_query_embedding(QUERY)

    assert running_engines() == engines, "identical settings must share the session's engine"
    np.testing.assert_allclose(documents, minilm_embedder.embed_documents(DOCUMENTS), atol=1e-6)
    np.testing.assert_allclose(query, minilm_embedder.embed_query(QUERY), atol=1e-6)
    model.close()
    assert not minilm_embedder.closed


async def test_async_methods_run_on_the_engine(minilm_embedder: Embedder, minilm_path: str) -> None:
    model = VLLMEmbedding(minilm_path, dtype="float32")
    documents, query = await asyncio.gather(
        model.aget_text_embedding_batch(DOCUMENTS), model.aget_query_embedding(QUERY)
    )
    np.testing.assert_allclose(documents, minilm_embedder.embed_documents(DOCUMENTS), atol=1e-6)
    np.testing.assert_allclose(query, minilm_embedder.embed_query(QUERY), atol=1e-6)


def test_an_existing_embedder_is_reused_and_left_open(minilm_embedder: Embedder) -> None:
    model = VLLMEmbedding(embedder=minilm_embedder)
    assert model.get_embedder() is minilm_embedder
    assert model.model_name == minilm_embedder.config.model
    model.close()
    assert not minilm_embedder.closed


@pytest.fixture
def remote_embedder() -> Iterator[Embedder]:
    server = StubServer()
    embedder = Embedder(
        STUB_MODEL, backend="openai", base_url=server.url, profile="sentence-transformers", retry_seconds=5
    )
    yield embedder
    embedder.close()
    server.stop()


async def test_a_remote_embedder_works_too(remote_embedder: Embedder) -> None:
    def unit(text: str) -> np.ndarray:
        vector = stub_vector(text)
        return vector / np.linalg.norm(vector)

    model = VLLMEmbedding(embedder=remote_embedder)
    np.testing.assert_allclose(model.get_text_embedding_batch(["a", "b"]), [unit("a"), unit("b")], atol=1e-6)
    np.testing.assert_allclose(await model.aget_text_embedding_batch(["c"]), [unit("c")], atol=1e-6)
    np.testing.assert_allclose(await model.aget_query_embedding("q"), unit("q"), atol=1e-6)
