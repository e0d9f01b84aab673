"""Embedder settings are strict and frozen, and checked before any engine starts."""

from __future__ import annotations

import pytest

from vllm_embed import Embedder, EmbedderConfig


def test_configuration_is_strict_and_frozen(minilm_path: str) -> None:
    with pytest.raises(ValueError, match="dimensionz"):
        Embedder(minilm_path, dimensionz=32)
    with pytest.raises(ValueError, match="long_input"):
        Embedder(minilm_path, long_input="drop")
    with pytest.raises(ValueError, match="either config"):
        Embedder(minilm_path, config=EmbedderConfig(model=minilm_path))
    with pytest.raises(ValueError, match="needs a model"):
        Embedder()
    with pytest.raises(ValueError, match=r"engine_kwargs may not set \['runner'\]"):
        EmbedderConfig(model=minilm_path, engine_kwargs={"runner": "generate"})
    config = EmbedderConfig(model=minilm_path)
    with pytest.raises(ValueError, match="frozen"):
        config.dimensions = 8  # type: ignore[misc]
