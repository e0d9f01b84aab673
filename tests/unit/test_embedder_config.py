"""Embedder settings are strict and frozen, and checked before any engine starts."""

from __future__ import annotations

import pytest

from vllm_embed import Embedder, EmbedderConfig, Reranker
from vllm_embed.errors import SettingsError, VllmEmbedError


def test_configuration_is_strict_and_frozen(minilm_path: str) -> None:
    with pytest.raises(
        SettingsError, match=r"^Embedder has no setting dimensionz= \(did you mean dimensions=\?\)"
    ):
        Embedder(minilm_path, dimensionz=32)
    with pytest.raises(ValueError, match="long_input"):
        Embedder(minilm_path, long_input="drop")
    with pytest.raises(SettingsError, match="either config"):
        Embedder(minilm_path, config=EmbedderConfig(model=minilm_path))
    with pytest.raises(SettingsError, match="needs a model"):
        Embedder()
    with pytest.raises(ValueError, match=r"engine_kwargs may not set \['runner'\]"):
        EmbedderConfig(model=minilm_path, engine_kwargs={"runner": "generate"})
    config = EmbedderConfig(model=minilm_path)
    with pytest.raises(ValueError, match="frozen"):
        config.dimensions = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (
            lambda: EmbedderConfig(model="m", batchsize=8),
            "Embedder has no setting batchsize= (did you mean batch_size=?)",
        ),
        (
            lambda: Reranker("m", instructoin="x"),
            "Reranker has no setting instructoin= (did you mean instruction=?)",
        ),
        (
            lambda: EmbedderConfig(model="m", zzz=1, long_inptu="chunk"),
            "no setting zzz=, long_inptu= (did you mean long_input=?)",
        ),
    ],
)
def test_a_misspelt_setting_is_answered_with_the_closest_name(build, expected: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SettingsError) as raised:
        build()
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value) and "Extra inputs" not in str(raised.value)


def test_a_dimensions_the_model_cannot_honour_is_a_vllm_embed_error(minilm_path: str) -> None:
    with pytest.raises(VllmEmbedError, match="dimensions=128 is not supported"):
        Embedder(minilm_path, dimensions=128)
    with pytest.raises(VllmEmbedError, match="unknown profile"):
        Embedder(minilm_path, profile="nope")
