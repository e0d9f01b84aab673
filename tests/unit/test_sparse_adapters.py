"""`vllm_embed.adapters.SparseEmbedderAdapter` on a framework-free adapter: settings, `sparse_embedder=`."""

from __future__ import annotations

from unittest.mock import create_autospec

import numpy as np
import pytest

from vllm_embed import SparseEmbedder, SparseEmbedderConfig, SparseVector
from vllm_embed.adapters import (
    SPARSE_SETTINGS,
    SparseEmbedderAdapter,
    SparseEmbedderSettings,
    sparse_model_field,
)
from vllm_embed.adapters import lazy as lazy_module


class FakeAdapter(SparseEmbedderAdapter):
    """A sparse adapter with no framework, its model field under another name."""

    _model_field = "model_id"

    model_id: str | None = sparse_model_field()


def _fake_sparse_embedder() -> SparseEmbedder:
    fake = create_autospec(SparseEmbedder, instance=True)
    fake.config = SparseEmbedderConfig(model="fake-splade")
    vector = SparseVector(np.array([3, 7], dtype=np.int64), np.array([0.5, 1.5], dtype=np.float32))
    fake.embed_documents.return_value = [vector]
    fake.embed_queries.return_value = [vector, vector]
    return fake  # type: ignore[no-any-return]


def test_every_setting_but_the_model_is_declared_once_for_the_adapters() -> None:
    assert set(SparseEmbedderConfig.model_fields) == {"model", *SparseEmbedderSettings.model_fields}
    assert set(SparseEmbedderSettings.model_fields) == SPARSE_SETTINGS <= set(FakeAdapter.model_fields)
    for name, field in SparseEmbedderSettings.model_fields.items():  # derived from the config, not restated
        declared = SparseEmbedderConfig.model_fields[name]
        assert (field.annotation, field.description) == (declared.annotation, declared.description), name
        assert field.get_default(call_default_factory=True) == declared.get_default(call_default_factory=True)


def test_construction_builds_the_config_and_no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    monkeypatch.setattr(lazy_module, "SparseEmbedder", lambda **kwargs: built.append(kwargs))
    adapter = FakeAdapter(model_id="m", max_terms=64, dtype="float32")
    assert adapter.sparse_embedder_config == SparseEmbedderConfig(model="m", max_terms=64, dtype="float32")
    assert adapter.embed_sparse([], "document") == [] and built == []
    with pytest.raises(
        ValueError, match=r"FakeAdapter needs a model: FakeAdapter\(model_id='naver/splade-v3'\)"
    ):
        FakeAdapter()
    with pytest.raises(ValueError, match="max_terms"):
        FakeAdapter(model_id="m", max_terms=0)
    with pytest.raises(ValueError, match=r"FakeAdapter runs in-process only .* without backend='openai'"):
        FakeAdapter(model_id="m", backend="openai", base_url="http://127.0.0.1:9/v1")


def test_a_sparse_embedder_excludes_every_setting_and_is_left_open() -> None:
    fake = _fake_sparse_embedder()
    adapter = FakeAdapter(sparse_embedder=fake)
    assert adapter.get_sparse_embedder() is fake and adapter.model_id == "fake-splade"
    with pytest.raises(ValueError, match=r"\(got max_terms\); the SparseEmbedder's own settings apply"):
        FakeAdapter(sparse_embedder=fake, max_terms=8)
    with pytest.raises(ValueError, match=r"\(got model_id\)"):
        FakeAdapter(sparse_embedder=fake, model_id="other")
    adapter.close()
    fake.close.assert_not_called()


def test_embed_sparse_returns_python_lists_of_documents_or_queries() -> None:
    fake = _fake_sparse_embedder()
    adapter = FakeAdapter(sparse_embedder=fake)
    [(indices, values)] = adapter.embed_sparse(["a text"], "document")
    assert (indices, values) == ([3, 7], [0.5, 1.5]) and type(indices[0]) is int and type(values[0]) is float
    assert len(adapter.embed_sparse(["q1", "q2"], "query")) == 2
    fake.embed_documents.assert_called_once_with(["a text"])
    fake.embed_queries.assert_called_once_with(["q1", "q2"])
