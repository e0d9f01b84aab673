"""`VLLMEmbedding` without an engine: settings, validation, parity with `EmbedderConfig`, a fake Embedder."""

from __future__ import annotations

from unittest.mock import create_autospec

import numpy as np
import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.embeddings.vllm_embed import DEFAULT_EMBED_BATCH_SIZE, VLLMEmbedding

from vllm_embed import Embedder, EmbedderConfig

# LlamaIndex names the model `model_name` (a `BaseEmbedding` field); every other setting keeps its name.
FIELD_NAMES = {"model": "model_name"}


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


def test_every_embedder_config_setting_is_a_field_with_its_description() -> None:
    fields = VLLMEmbedding.model_fields
    for name, setting in EmbedderConfig.model_fields.items():
        field_name = FIELD_NAMES.get(name, name)
        assert field_name in fields, f"EmbedderConfig.{name} is not a field of VLLMEmbedding"
        assert setting.description, name
        assert (fields[field_name].description or "").startswith(setting.description), name


def test_defaults_are_the_embedder_configs() -> None:
    adapter = VLLMEmbedding.model_fields
    for name, field in EmbedderConfig.model_fields.items():
        if name != "model":
            assert adapter[name].get_default(call_default_factory=True) == field.get_default(
                call_default_factory=True
            ), name


def test_settings_reach_the_embedder_config() -> None:
    settings = {
        "dimensions": 128,
        "dtype": "float32",
        "revision": "main",
        "batch_size": 16,
        "profile": "sentence-transformers",
        "cache": "cache.sqlite",
        "cache_max_bytes": 1 << 20,
        "timeout": 5.0,
        "engine_kwargs": {"enforce_eager": True},
    }
    config = VLLMEmbedding("m", **settings).embedder_config
    assert config.model == "m"
    assert {name: getattr(config, name) for name in settings} == settings
    remote = VLLMEmbedding("m", backend="openai", base_url="http://127.0.0.1:9/v1", api_key="secret")
    assert remote.embedder_config.api_key is not None
    assert remote.embedder_config.api_key.get_secret_value() == "secret"
    assert "api_key" not in remote.to_dict() and "secret" not in repr(remote)


def test_serialised_settings_round_trip() -> None:
    model = VLLMEmbedding("m", dimensions=64, revision="v1", query_instruction="Find code")
    again = VLLMEmbedding.from_dict(model.to_dict())
    assert again.embedder_config == model.embedder_config
    assert again.query_instruction == "Find code"


def test_settings_are_validated_at_construction() -> None:
    fake = _fake_embedder()
    with pytest.raises(ValueError, match="needs a model"):
        VLLMEmbedding()
    with pytest.raises(ValueError, match="batch_size"):
        VLLMEmbedding("m", batch_size=0)
    with pytest.raises(ValueError, match="dimensions"):
        VLLMEmbedding("m", dimensions=0)  # EmbedderConfig's own validators run too
    with pytest.raises(ValueError, match="dimensonz"):
        VLLMEmbedding("m", dimensonz=128)
    with pytest.raises(ValueError, match="either embedder= or engine settings"):
        VLLMEmbedding(embedder=fake, dimensions=128)
    with pytest.raises(ValueError, match="model_name"):
        VLLMEmbedding("another/model", embedder=fake)
    assert VLLMEmbedding("fake-model", embedder=fake).get_embedder() is fake


def test_an_embedder_is_used_and_left_open() -> None:
    fake = _fake_embedder()
    model = VLLMEmbedding(embedder=fake, query_instruction="Retrieve Python docs")
    assert model.get_embedder() is fake and model.model_name == "fake-model"
    assert model.embedder_config is fake.config
    model.close()
    fake.close.assert_not_called()  # type: ignore[attr-defined]


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
