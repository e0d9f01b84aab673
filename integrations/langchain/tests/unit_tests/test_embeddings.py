"""`VLLMEmbeddings` without an engine: settings, validation, parity with `EmbedderConfig`, a fake Embedder."""

from __future__ import annotations

from unittest.mock import create_autospec

import numpy as np
import pytest
from langchain_vllm_embed import VLLMEmbeddings

from vllm_embed import Embedder, EmbedderConfig
from vllm_embed.config import API_KEY_VARIABLES


def _fake_embedder(dimension: int = 3) -> Embedder:
    fake = create_autospec(Embedder, instance=True)
    fake.config = EmbedderConfig(model="fake-model")
    fake.dimension = dimension
    return fake  # type: ignore[no-any-return]


def test_every_embedder_config_setting_is_a_field_with_its_description() -> None:
    fields = VLLMEmbeddings.model_fields
    for name, setting in EmbedderConfig.model_fields.items():
        assert name in fields, f"EmbedderConfig.{name} is not a field of VLLMEmbeddings"
        assert setting.description, name
        assert (fields[name].description or "").startswith(setting.description), name


def test_defaults_are_the_embedder_configs() -> None:
    adapter = VLLMEmbeddings.model_fields
    for name, field in EmbedderConfig.model_fields.items():
        if name not in {"model", "api_key"}:
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
    config = VLLMEmbeddings(model="m", **settings).embedder_config
    assert config.model == "m"
    assert {name: getattr(config, name) for name in settings} == settings


def test_construction_is_cheap_and_validates_settings() -> None:
    VLLMEmbeddings(model="/no/such/model/on/this/machine")  # nothing is loaded until first use
    with pytest.raises(ValueError, match="needs a model"):
        VLLMEmbeddings()
    with pytest.raises(ValueError, match="long_input"):
        VLLMEmbeddings(model="m", long_input="drop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        VLLMEmbeddings(model="m", batch_size=0)
    with pytest.raises(ValueError, match="dimensions"):
        VLLMEmbeddings(model="m", dimensions=0)  # EmbedderConfig's own validators run too
    with pytest.raises(ValueError, match="engine_kwargs"):
        VLLMEmbeddings(model="m", engine_kwargs={"task": "embed"})
    with pytest.raises(ValueError, match="dimensonz"):
        VLLMEmbeddings(model="m", dimensonz=128)  # type: ignore[call-arg]


def test_api_key_comes_from_the_environment_for_the_remote_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in API_KEY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv(API_KEY_VARIABLES[-1], "from-env")
    remote = VLLMEmbeddings(model="m", backend="openai", base_url="http://127.0.0.1:9/v1")
    assert remote.api_key is not None and remote.api_key.get_secret_value() == "from-env"
    assert remote.embedder_config.api_key == remote.api_key
    assert "from-env" not in repr(remote)
    assert VLLMEmbeddings(model="m").embedder_config.api_key is None  # the local engine needs no key


def test_engine_settings_conflict_with_an_embedder() -> None:
    fake = _fake_embedder()
    embeddings = VLLMEmbeddings(embedder=fake, query_instruction="Retrieve Python docs")
    assert embeddings.model == "fake-model" and embeddings.embedder_config is fake.config
    assert VLLMEmbeddings(embedder=fake, model="fake-model").get_embedder() is fake
    for settings in ({"dimensions": 128}, {"revision": "v1"}, {"model": "another/model"}):
        with pytest.raises(ValueError, match="either embedder= or engine settings"):
            VLLMEmbeddings(embedder=fake, **settings)
    embeddings.close()
    fake.close.assert_not_called()  # type: ignore[attr-defined]


def test_query_instruction_reaches_the_embedder() -> None:
    fake = _fake_embedder()
    fake.embed_query.return_value = np.ones(3, dtype=np.float32)  # type: ignore[attr-defined]
    fake.embed_documents.return_value = np.ones((2, 3), dtype=np.float32)  # type: ignore[attr-defined]
    embeddings = VLLMEmbeddings(embedder=fake, query_instruction="Retrieve Python docs")

    assert embeddings.embed_query("q") == [1.0, 1.0, 1.0]
    assert embeddings.embed_documents(["a", "b"]) == [[1.0] * 3] * 2
    fake.embed_query.assert_called_once_with("q", "Retrieve Python docs")  # type: ignore[attr-defined]
    fake.embed_documents.assert_called_once_with(["a", "b"])  # type: ignore[attr-defined]


async def test_async_methods_await_the_embedders_async_api() -> None:
    fake = _fake_embedder()
    fake.aembed_query.return_value = np.ones(3, dtype=np.float32)  # type: ignore[attr-defined]
    fake.aembed_documents.return_value = np.ones((2, 3), dtype=np.float32)  # type: ignore[attr-defined]
    embeddings = VLLMEmbeddings(embedder=fake, query_instruction="Retrieve Python docs")

    assert await embeddings.aembed_query("q") == [1.0, 1.0, 1.0]
    assert await embeddings.aembed_documents(["a", "b"]) == [[1.0] * 3] * 2
    fake.aembed_query.assert_awaited_once_with("q", "Retrieve Python docs")  # type: ignore[attr-defined]
    fake.aembed_documents.assert_awaited_once_with(["a", "b"])  # type: ignore[attr-defined]
    fake.embed_query.assert_not_called()  # type: ignore[attr-defined]
    fake.embed_documents.assert_not_called()  # type: ignore[attr-defined]
