"""The cache file on its own (no engine): fingerprints, LRU bound, several processes, the CLI."""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path

import numpy as np
import pytest
from backend_spy import FakeBackend, fake_embedder

from vllm_embed.cache import EmbeddingCache, default_cache_path, model_fingerprint


def test_model_fingerprint_follows_the_files(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"hidden_size": 8}')
    (model / "model.safetensors").write_bytes(b"weights")
    before = model_fingerprint(str(model), None)
    assert model_fingerprint(str(model), None) == before
    (model / "config.json").write_text('{"hidden_size": 16}')
    assert model_fingerprint(str(model), None) != before
    assert model_fingerprint("org/name", "v1") != model_fingerprint("org/name", "v2")


def test_least_recently_used_entries_are_evicted_past_the_bound(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "small.sqlite", max_bytes=256 * 1024)
    namespace = b"ns"
    first = cache.keys(namespace, ["keep me"])
    cache.put_many(first, np.ones((1, 256), dtype=np.float32))
    for round_ in range(40):
        texts = [f"text {round_}-{i}" for i in range(50)]
        cache.put_many(cache.keys(namespace, texts), np.random.rand(50, 256).astype(np.float32))
        assert cache.get_many(first, 256), "a recently used entry must survive eviction"
    assert cache.size_bytes() <= 256 * 1024
    assert cache.path.stat().st_size <= 256 * 1024
    assert cache.info()["entries"] < 40 * 50
    assert cache.get_many(cache.keys(namespace, ["text 0-0"]), 256) == {}


def _writer(path: str, worker: int) -> None:
    cache = EmbeddingCache(path)
    for batch in range(20):
        texts = [f"w{worker}-{batch}-{i}" for i in range(25)]
        cache.put_many(cache.keys(b"ns", texts), np.full((25, 16), worker + 1, dtype=np.float32))
        cache.get_many(cache.keys(b"ns", texts[:5]), 16)


def test_several_processes_write_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    EmbeddingCache(path)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(path, worker)) for worker in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    cache = EmbeddingCache(path)
    assert cache.info()["entries"] == 4 * 20 * 25
    found = cache.get_many(cache.keys(b"ns", ["w3-19-24"]), 16)
    np.testing.assert_array_equal(found[0], np.full(16, 4, dtype=np.float32))
    assert cache.clear() == 2000
    assert cache.info()["entries"] == 0


def test_cache_true_uses_the_per_user_cache_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg" / "vllm-embed" / "embeddings.sqlite"


def test_cli_cache_info_and_clear(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vllm_embed.cli import app

    path = tmp_path / "cli.sqlite"
    cache = EmbeddingCache(path)
    cache.put_many(cache.keys(b"ns", ["a", "b", "c"]), np.ones((3, 8), dtype=np.float32))
    runner = CliRunner()
    shown = runner.invoke(app, ["cache", "info", "--path", str(path), "--json"])
    assert shown.exit_code == 0, shown.output
    assert '"entries": 3' in shown.output
    cleared = runner.invoke(app, ["cache", "clear", "--path", str(path)])
    assert cleared.exit_code == 0 and "removed 3 cached vectors" in cleared.output
    assert EmbeddingCache(path).info()["entries"] == 0
    missing = runner.invoke(app, ["cache", "info", "--path", str(tmp_path / "none.sqlite")])
    assert missing.exit_code == 0 and "does not exist yet" in missing.output


def _hub_snapshot(hub: Path, repo_id: str, commit: str, files: str) -> None:
    """Adds a snapshot of `files` (a model directory, weights left out) to a fake Hugging Face cache and
    points `refs/main` at it, as a download of a newer hub commit does."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(files, repo / "snapshots" / commit, ignore=shutil.ignore_patterns("*.safetensors"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)


def test_a_hub_model_is_keyed_on_the_commit_its_weights_came_from(
    minilm_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    hub, path, model = tmp_path / "hub", tmp_path / "cache.sqlite", "org/minilm"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    old, new = "1" * 40, "2" * 40
    _hub_snapshot(hub, model, old, minilm_path)
    assert model_fingerprint(model, None) == f"{model}@{old}"
    with fake_embedder(model, FakeBackend(384), cache=path) as first:
        before = first.embed_documents(["a text"])
        first.embed_documents(["a text"])
        assert (first.cache_stats.hits, first.cache_stats.misses) == (1, 1)

    _hub_snapshot(hub, model, new, minilm_path)  # the model changed on the hub and was downloaded again
    assert model_fingerprint(model, None) == f"{model}@{new}"
    retrained = FakeBackend(384, bad={"a text": np.arange(1, 385, dtype=np.float32)})
    with fake_embedder(model, retrained, cache=path) as second:
        after = second.embed_documents(["a text"])
        assert (second.cache_stats.hits, second.cache_stats.misses) == (0, 1)
    assert not np.allclose(after, before)

    with fake_embedder(model, retrained, cache=path, revision=old) as pinned:  # the old commit, by name
        np.testing.assert_array_equal(pinned.embed_documents(["a text"]), before)
        assert pinned.cache_stats.hits == 1
    assert model_fingerprint(model, "v1") == f"{model}@v1"  # not in the local cache: named by revision


def test_tampered_cache_rows_are_dropped_and_recomputed_never_returned(
    minilm_path: str, tmp_path: Path
) -> None:
    import sqlite3

    path = tmp_path / "cache.sqlite"
    texts = ["fine", "nan", "zero", "inf", "short"]
    with fake_embedder(minilm_path, FakeBackend(384), cache=path) as first:
        expected = first.embed_documents(texts)
    bad = {
        "nan": np.full(384, np.nan, dtype="<f4"),
        "zero": np.zeros(384, dtype="<f4"),
        "inf": np.full(384, np.inf, dtype="<f4"),
        "short": np.ones(3, dtype="<f4"),
    }
    with sqlite3.connect(path) as db:  # the rows in `texts` order: tamper with all but the first
        keys = [key for (key,) in db.execute("SELECT key FROM embeddings ORDER BY rowid")]
        for key, name in zip(keys[1:], texts[1:], strict=True):
            db.execute("UPDATE embeddings SET vector = ? WHERE key = ?", (bad[name].tobytes(), key))
    db.close()

    backend = FakeBackend(384)
    with fake_embedder(minilm_path, backend, cache=path) as second:
        np.testing.assert_allclose(second.embed_documents(texts), expected, rtol=1e-6)
        assert (second.cache_stats.hits, second.cache_stats.misses) == (1, 4)
        assert len(backend.inputs) == 4  # recomputed
    with fake_embedder(minilm_path, FakeBackend(384), cache=path) as third:  # and cached again, repaired
        np.testing.assert_allclose(third.embed_documents(texts), expected, rtol=1e-6)
        assert (third.cache_stats.hits, third.cache_stats.misses) == (5, 0)
