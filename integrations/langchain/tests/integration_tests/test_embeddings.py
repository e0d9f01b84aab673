"""`VLLMEmbeddings` on real Embedders: same vectors, a shared engine, reuse, real async, a remote server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest
from langchain_vllm_embed import VLLMEmbeddings
from remote_stub import STUB_MODEL, StubServer, stub_vector

from vllm_embed import Embedder

DOCUMENTS = [
    "vLLM is a high-throughput inference and serving engine for large language models.",
    "Qdrant is a vector database that stores embeddings and searches them by similarity.",
    "A good sourdough needs flour, water, salt and a lively starter.",
]
QUERY = "How do I bake bread?"


def test_vectors_are_the_embedders_as_float_lists(minilm_embedder: Embedder, minilm_path: str) -> None:
    from vllm_embed.backends.vllm_local import running_engines

    engines = running_engines()
    embeddings = VLLMEmbeddings(model=minilm_path, dtype="float32")
    documents = embeddings.embed_documents(DOCUMENTS)
    query = embeddings.embed_query(QUERY)

    assert running_engines() == engines, "identical settings must share the session's engine"
    assert all(type(value) is float for value in documents[0]) and type(query[0]) is float
    np.testing.assert_allclose(documents, minilm_embedder.embed_documents(DOCUMENTS), atol=1e-6)
    np.testing.assert_allclose(query, minilm_embedder.embed_query(QUERY), atol=1e-6)
    assert int(np.argmax(np.asarray(documents) @ np.asarray(query))) == 2
    assert embeddings.embed_documents([]) == []
    embeddings.close()
    assert not minilm_embedder.closed


async def test_async_methods_run_on_the_engine(minilm_embedder: Embedder, minilm_path: str) -> None:
    embeddings = VLLMEmbeddings(model=minilm_path, dtype="float32")
    documents, query, first = await asyncio.gather(
        embeddings.aembed_documents(DOCUMENTS),
        embeddings.aembed_query(QUERY),
        embeddings.aembed_documents(DOCUMENTS[:1]),
    )
    np.testing.assert_allclose(documents, minilm_embedder.embed_documents(DOCUMENTS), atol=1e-6)
    np.testing.assert_allclose(query, minilm_embedder.embed_query(QUERY), atol=1e-6)
    np.testing.assert_allclose(first, documents[:1], atol=1e-6)
    assert await embeddings.aembed_documents([]) == []


def test_an_existing_embedder_is_reused_and_left_open(minilm_embedder: Embedder) -> None:
    embeddings = VLLMEmbeddings(embedder=minilm_embedder)
    assert embeddings.get_embedder() is minilm_embedder
    assert embeddings.model == minilm_embedder.config.model
    embeddings.close()
    assert not minilm_embedder.closed
    with pytest.raises(ValueError, match="either embedder= or engine settings"):
        VLLMEmbeddings(embedder=minilm_embedder, dimensions=128)


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

    embeddings = VLLMEmbeddings(embedder=remote_embedder)
    np.testing.assert_allclose(embeddings.embed_documents(["a", "b"]), [unit("a"), unit("b")], atol=1e-6)
    np.testing.assert_allclose(await embeddings.aembed_documents(["c"]), [unit("c")], atol=1e-6)
    np.testing.assert_allclose(await embeddings.aembed_query("q"), unit("q"), atol=1e-6)
