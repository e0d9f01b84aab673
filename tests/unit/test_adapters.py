"""`vllm_embed.adapters` on a framework-free adapter: settings from `EmbedderSettings`, `embedder=`, lazy."""

from __future__ import annotations

from unittest.mock import create_autospec

import pytest

from vllm_embed import Embedder, EmbedderConfig
from vllm_embed.adapters import ENGINE_SETTINGS, PER_CALL_SETTINGS, EmbedderAdapter, LazyEmbedder, model_field
from vllm_embed.config import EmbedderSettings


class FakeAdapter(EmbedderAdapter):
    """An adapter with no framework: the model field under its own name, like LlamaIndex's `model_name`."""

    _model_field = "model_id"

    model_id: str | None = model_field()


def _fake_embedder() -> Embedder:
    fake = create_autospec(Embedder, instance=True)
    fake.config = EmbedderConfig(model="fake-model")
    return fake  # type: ignore[no-any-return]


def test_every_setting_but_the_model_is_declared_once_for_the_adapters() -> None:
    assert set(EmbedderConfig.model_fields) == {"model", *EmbedderSettings.model_fields}
    assert set(EmbedderSettings.model_fields) <= set(FakeAdapter.model_fields)
    assert set(EmbedderSettings.model_fields) == ENGINE_SETTINGS | PER_CALL_SETTINGS
    assert all(field.description for field in EmbedderConfig.model_fields.values())


def test_construction_builds_the_config_and_no_engine() -> None:
    adapter = FakeAdapter(model_id="m", dimensions=64, query_instruction="Find code")
    assert adapter.embedder_config == EmbedderConfig(model="m", dimensions=64)
    with pytest.raises(ValueError, match=r"FakeAdapter needs a model: FakeAdapter\(model_id="):
        FakeAdapter()


def test_the_api_key_goes_to_the_remote_backend_only() -> None:
    local = FakeAdapter(model_id="m", api_key="secret")
    assert local.embedder_config.api_key is None
    remote = FakeAdapter(model_id="m", backend="openai", base_url="http://127.0.0.1:9/v1", api_key="secret")
    assert remote.embedder_config.api_key is not None
    assert remote.embedder_config.api_key.get_secret_value() == "secret"


def test_an_embedder_excludes_engine_settings_but_not_per_call_ones() -> None:
    fake = _fake_embedder()
    adapter = FakeAdapter(embedder=fake, query_instruction="Find code")
    assert adapter.get_embedder() is fake and adapter.model_id == "fake-model"
    with pytest.raises(ValueError, match=r"\(got backend, dimensions\)"):
        FakeAdapter(embedder=fake, dimensions=64, backend="openai")
    with pytest.raises(ValueError, match=r"\(got model_id\)"):
        FakeAdapter(embedder=fake, model_id="other")
    adapter.close()
    fake.close.assert_not_called()  # type: ignore[attr-defined]


def test_lazy_embedder_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        LazyEmbedder()
    with pytest.raises(ValueError, match="exactly one"):
        LazyEmbedder(EmbedderConfig(model="m"), embedder=_fake_embedder())
    assert LazyEmbedder(EmbedderConfig(model="m")).config.model == "m"


def test_a_key_in_base_url_moves_to_api_key_in_every_adapter() -> None:
    adapter = FakeAdapter(model_id="m", backend="openai", base_url="http://user:SECRET@127.0.0.1:9/v1")
    assert "SECRET" not in repr(adapter) and "SECRET" not in str(adapter.model_dump())
    assert adapter.base_url == "http://127.0.0.1:9/v1"
    assert adapter.api_key is not None and adapter.api_key.get_secret_value() == "SECRET"
    assert adapter.embedder_config.base_url == "http://127.0.0.1:9/v1"
