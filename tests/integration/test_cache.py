"""The persistent embedding cache: exact hits, misses on any change, raw float32, bounded, multi-process."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from vllm_embed import Embedder

TEXTS = ["the cache keeps vectors", "between runs", "and processes", "the cache keeps vectors"]


def test_second_call_is_served_from_the_cache(
    minilm_path: str, minilm_embedder: Embedder, tmp_path: Path
) -> None:
    path = tmp_path / "cache.sqlite"
    with Embedder(minilm_path, dtype="float32", cache=path) as cached:
        cold = cached.embed_documents(TEXTS)
        assert (cached.cache_stats.hits, cached.cache_stats.misses) == (0, 3)
        warm = cached.embed_documents(TEXTS)
        assert (cached.cache_stats.hits, cached.cache_stats.misses) == (3, 3)
        np.testing.assert_array_equal(cold, warm)
        np.testing.assert_allclose(warm, minilm_embedder.embed_documents(TEXTS), atol=1e-6)
        assert cached.cache is not None and cached.cache.info()["entries"] == 3
    # A new Embedder (as in a new process) finds the file's entries.
    with Embedder(minilm_path, dtype="float32", cache=str(path)) as again:
        np.testing.assert_array_equal(again.embed_documents(TEXTS[:2]), cold[:2])
        assert again.cache_stats.hits == 2 and again.cache_stats.misses == 0


def test_vectors_are_stored_as_raw_float32(minilm_path: str, tmp_path: Path) -> None:
    path = tmp_path / "raw.sqlite"
    with Embedder(minilm_path, dtype="float32", cache=path) as cached:
        vector = cached.embed_documents(["raw bytes"])[0]
    with sqlite3.connect(path) as connection:
        (blob,) = connection.execute("SELECT vector FROM embeddings").fetchone()
    assert len(blob) == 384 * 4
    np.testing.assert_array_equal(np.frombuffer(blob, dtype="<f4"), vector)


def test_anything_that_changes_a_vector_misses(
    tiny_qwen3_path: Path, qwen3_embedder: Embedder, tmp_path: Path
) -> None:
    # qwen3_embedder keeps the shared engine up between the Embedders below.
    path = tmp_path / "keys.sqlite"
    model = str(tiny_qwen3_path)
    with Embedder(model, dtype="float32", cache=path) as full:
        docs = full.embed_documents(["one text"])
        queries = full.embed_queries(["one text"])
        instructed = full.embed_queries(["one text"], instruction="Find code")
        assert full.cache_stats.misses == 3 and full.cache_stats.hits == 0
        assert not np.allclose(docs, queries) and not np.allclose(queries, instructed)
    with Embedder(model, dtype="float32", cache=path, dimensions=32) as reduced:
        assert reduced.embed_documents(["one text"]).shape == (1, 32)
        assert reduced.cache_stats.misses == 1 and reduced.cache_stats.hits == 0
    with Embedder(model, dtype="float32", cache=path, long_input="truncate") as truncating:
        truncating.embed_documents(["one text"])
        assert truncating.cache_stats.hits == 0
    with Embedder(model, dtype="float32", cache=path) as same:
        np.testing.assert_array_equal(same.embed_documents(["one text"]), docs)
        assert same.cache_stats.hits == 1
