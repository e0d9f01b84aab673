"""`VLLMEmbedding` behaviour: whole batches, query instructions, real async, reuse of an Embedder."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from unittest.mock import create_autospec

import numpy as np
import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.embeddings.vllm_embed import DEFAULT_EMBED_BATCH_SIZE, VLLMEmbedding
from remote_stub import STUB_MODEL, StubServer, stub_vector

from vllm_embed import Embedder, EmbedderConfig

DOCUMENTS = [
    "vLLM is a high-throughput inference and serving engine for large language models.",
    "Qdrant is a vector database that stores embeddings and searches them by similarity.",
    "A good sourdough needs flour, water, salt and a lively starter.",
]
QUERY = "How do I bake bread?"


def _fake_embedder() -> Embedder:
    fake = create_autospec(Embedder, instance=True)
    fake.config = EmbedderConfig(model="fake-model")
    fake.embed_documents.side_effect = lambda texts: np.ones((len(texts), 3), dtype=np.float32)
    fake.aembed_documents.side_effect = lambda texts: np.ones((len(texts), 3), dtype=np.float32)
    fake.embed_query.return_value = np.ones(3, dtype=np.float32)
    fake.aembed_query.return_value = np.ones(3, dtype=np.float32)
    return fake  # type: ignore[no-any-return]


def test_is_a_base_embedding_with_a_batch_size_for_vllm() -> None:
    model = VLLMEmbedding("/no/such/model/on/this/machine")  # construction loads nothing
    assert isinstance(model, BaseEmbedding)
    assert model.embed_batch_size == DEFAULT_EMBED_BATCH_SIZE > 10
    assert model.model_name == "/no/such/model/on/this/machine"
    assert VLLMEmbedding.class_name() == "VLLMEmbedding"


def test_a_whole_batch_goes_to_the_engine_at_once() -> None:
    fake = _fake_embedder()
    model = VLLMEmbedding(embedder=fake)
    texts = [f"text {index}" for index in range(300)]

    vectors = model.get_text_embedding_batch(texts)

    assert len(vectors) == 300 and vectors[0] == [1.0, 1.0, 1.0]
    fake.embed_documents.assert_called_once_with(texts)  # type: ignore[attr-defined]


def test_queries_use_the_query_instruction_and_texts_the_document_prompt() -> None:
    fake = _fake_embedder()
    model = VLLMEmbedding(embedder=fake, query_instruction="Retrieve Python docs")

    model.get_query_embedding("q")
    model.get_text_embedding("t")

    fake.embed_query.assert_called_once_with("q", "Retrieve Python docs")  # type: ignore[attr-defined]
    fake.embed_documents.assert_called_once_with(["t"])  # type: ignore[attr-defined]


async def test_async_methods_await_the_embedders_async_api() -> None:
    fake = _fake_embedder()
    model = VLLMEmbedding(embedder=fake, query_instruction="Retrieve Python docs")

    assert await model.aget_query_embedding("q") == [1.0, 1.0, 1.0]
    assert len(await model.aget_text_embedding_batch(["a", "b", "c"])) == 3
    assert await model.aget_text_embedding("t") == [1.0, 1.0, 1.0]

    fake.aembed_query.assert_awaited_once_with("q", "Retrieve Python docs")  # type: ignore[attr-defined]
    assert [call.args for call in fake.aembed_documents.await_args_list] == [  # type: ignore[attr-defined]
        (["a", "b", "c"],),
        (["t"],),
    ]
    fake.embed_query.assert_not_called()  # type: ignore[attr-defined]
    fake.embed_documents.assert_not_called()  # type: ignore[attr-defined]


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


def test_settings_are_validated_at_construction(minilm_embedder: Embedder) -> None:
    with pytest.raises(ValueError, match="needs a model"):
        VLLMEmbedding()
    with pytest.raises(ValueError, match="batch_size"):
        VLLMEmbedding("m", embedder_kwargs={"batch_size": 0})
    with pytest.raises(ValueError, match="dimensonz"):
        VLLMEmbedding("m", dimensonz=128)
    with pytest.raises(ValueError, match="either embedder= or engine settings"):
        VLLMEmbedding(embedder=minilm_embedder, dimensions=128)
    with pytest.raises(ValueError, match="model_name"):
        VLLMEmbedding("another/model", embedder=minilm_embedder)


def test_defaults_are_the_embedder_configs() -> None:
    adapter = VLLMEmbedding.model_fields
    for name, field in EmbedderConfig.model_fields.items():
        if name in adapter and name != "api_key":
            assert adapter[name].get_default(call_default_factory=True) == field.get_default(
                call_default_factory=True
            ), name


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
