"""Cache files that cannot be used give a `CacheError` naming the file and the fix; the file stays bounded."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vllm_embed import cache as cache_module
from vllm_embed.cache import EmbeddingCache, clear_cache
from vllm_embed.cache_files import APPLICATION_ID
from vllm_embed.errors import CacheError, VllmEmbedError

# The schema of cache files written before they were marked with an application id.
UNMARKED_SCHEMA = """
CREATE TABLE embeddings (key BLOB PRIMARY KEY, vector BLOB NOT NULL, last_used REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX embeddings_last_used ON embeddings (last_used);
CREATE TABLE totals (id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL);
INSERT INTO totals (id, bytes) VALUES (0, 0);
CREATE TRIGGER embeddings_added AFTER INSERT ON embeddings BEGIN
    UPDATE totals SET bytes = bytes + length(NEW.vector) + 64 WHERE id = 0;
END;
CREATE TRIGGER embeddings_removed AFTER DELETE ON embeddings BEGIN
    UPDATE totals SET bytes = bytes - length(OLD.vector) - 64 WHERE id = 0;
END;
"""


def _filled(path: Path, count: int = 300, width: int = 384) -> EmbeddingCache:
    cache = EmbeddingCache(path)
    texts = [f"text {i}" for i in range(count)]
    cache.put_many(cache.keys(b"ns", texts), np.ones((count, width), dtype=np.float32))
    return cache


def _clear_hint(path: Path) -> str:
    return f"`vllm-embed cache clear --path {path}`"


def test_a_directory_is_refused_naming_a_file_to_use(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="is a directory; pass a file path such as") as caught:
        EmbeddingCache(tmp_path)
    assert str(tmp_path / "embeddings.sqlite") in str(caught.value)
    assert isinstance(caught.value, VllmEmbedError) and isinstance(caught.value, RuntimeError)


def test_a_corrupted_cache_is_reported_when_read_and_clear_deletes_it(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    _filled(path).close()
    with open(path, "r+b") as handle:  # overwrite the pages after the first with garbage
        handle.seek(4096)
        handle.write(os.urandom(path.stat().st_size - 4096))
    with pytest.raises(CacheError, match=r"is damaged \(database disk image is malformed\)") as caught:
        EmbeddingCache(path).info()
    assert _clear_hint(path) in str(caught.value)
    clear_cache(path)
    fresh = EmbeddingCache(path)
    assert fresh.info()["entries"] == 0
    fresh.put_many(fresh.keys(b"ns", ["again"]), np.ones((1, 4), dtype=np.float32))


def test_a_truncated_cache_is_reported_when_read(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    _filled(path).close()
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
    with pytest.raises(CacheError, match=rf"the cache file {path} is damaged"):  # at opening or reading
        cache = EmbeddingCache(path)
        cache.get_many(cache.keys(b"ns", [f"text {i}" for i in range(300)]), 384)
    clear_cache(path)
    assert EmbeddingCache(path).info()["entries"] == 0


def test_another_applications_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE users (name TEXT)")
        connection.execute("INSERT INTO users VALUES ('ada')")
    connection.close()
    before = path.read_bytes()
    for attempt in (EmbeddingCache, clear_cache):
        with pytest.raises(
            CacheError, match=r"another application \(tables: users\).*choose another cache path"
        ):
            attempt(path)
    assert path.read_bytes() == before
    assert not (tmp_path / "app.db-wal").exists()


def test_a_foreign_table_named_like_ours_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE embeddings (id INTEGER, data BLOB)")
    connection.close()
    with pytest.raises(CacheError, match="another application"):
        EmbeddingCache(path)


def test_a_cache_written_before_the_marker_stays_readable(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    key = EmbeddingCache.keys(b"ns", ["kept"])[0]
    with sqlite3.connect(path) as connection:
        connection.executescript(UNMARKED_SCHEMA)
        connection.execute(
            "INSERT INTO embeddings VALUES (?, ?, 1.0)", (key, np.full(8, 2, dtype="<f4").tobytes())
        )
    connection.close()
    cache = EmbeddingCache(path)
    np.testing.assert_array_equal(cache.get_many([key], 8)[0], np.full(8, 2, dtype=np.float32))
    assert cache.size_bytes() == 8 * 4 + 64
    added = cache.keys(b"ns", [f"new {i}" for i in range(50)])  # the old layout takes writes and evicts
    cache.put_many(added, np.ones((50, 8), dtype=np.float32))
    assert len(cache.get_many(added, 8)) == 50
    assert cache.clear() == 51  # emptied, it takes the current layout
    with sqlite3.connect(path) as connection:
        (table,) = connection.execute("SELECT sql FROM sqlite_master WHERE name = 'embeddings'").fetchone()
        assert "WITHOUT ROWID" not in table
        assert connection.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    connection.close()
    cache.put_many(added[:1], np.ones((1, 8), dtype=np.float32))
    assert cache.size_bytes() == 8 * 4 + 64
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    connection.close()


def test_a_read_only_cache_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cache.sqlite"
    _filled(path, count=3).close()
    real_connect = sqlite3.connect

    def read_only(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        # What SQLite does when the file is not writable (chmod cannot show it to root).
        return real_connect(f"file:{database}?mode=ro", *args, uri=True, **kwargs)

    monkeypatch.setattr(cache_module.sqlite3, "connect", read_only)
    cache = EmbeddingCache(path)
    with pytest.raises(CacheError, match=rf"the cache file {path} is read-only .*make it and its directory"):
        cache.put_many(cache.keys(b"ns", ["new"]), np.ones((1, 384), dtype=np.float32))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only files")
def test_a_read_only_file_names_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    _filled(path, count=3).close()
    path.chmod(0o444)
    with pytest.raises(CacheError, match=str(path)):
        cache = EmbeddingCache(path)
        cache.put_many(cache.keys(b"ns", ["new"]), np.ones((1, 384), dtype=np.float32))


def test_a_cache_in_an_unusable_directory_names_the_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    with pytest.raises(CacheError, match="cannot create the directory of the cache file"):
        EmbeddingCache(blocker / "cache.sqlite")


def test_the_file_and_its_log_stay_within_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "bounded.sqlite"
    bound = 100 * 1024
    cache = EmbeddingCache(path, max_bytes=bound)
    rng = np.random.default_rng(0)
    for batch in range(2):  # each call alone holds 30 times the bound
        keys = cache.keys(b"ns", [f"{batch}-{i}" for i in range(2048)])
        cache.put_many(keys, rng.standard_normal((2048, 384)).astype(np.float32))
        assert path.stat().st_size <= bound
        assert path.with_name("bounded.sqlite-wal").stat().st_size <= bound // 10
    assert 0 < cache.info()["entries"] < 100
    newest = cache.keys(b"ns", ["1-2047"])
    assert cache.get_many(newest, 384), "the newest entry is kept"


def test_cli_cache_clear_deletes_a_cache_damaged_past_its_header(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vllm_embed.cli import app

    path = tmp_path / "cache.sqlite"
    _filled(path).close()
    with open(path, "r+b") as handle:  # the schema page, after the header that marks the file as ours
        handle.seek(100)
        handle.write(os.urandom(4096 - 100))
    cleared = CliRunner().invoke(app, ["cache", "clear", "--path", str(path)])
    assert cleared.exit_code == 0, cleared.output
    assert not path.exists()


def _foreign_damaged(path: Path) -> None:
    """Another application's database, damaged past its first page."""
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE users (name TEXT)")
        connection.executemany("INSERT INTO users VALUES (?)", [("x" * 100,)] * 500)
    connection.close()
    with open(path, "r+b") as handle:  # the schema page, after the 100-byte file header
        handle.seek(100)
        handle.write(os.urandom(4096 - 100))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: path.write_bytes(os.urandom(8192)), "is not a SQLite database"),
        (
            lambda path: path.write_bytes(b"SQLite format 3\x00" + os.urandom(8000)),
            "not marked as a vllm-embed cache",
        ),
        (_foreign_damaged, "is a damaged SQLite database not marked as a vllm-embed cache"),
        (lambda path: os.mkfifo(path), "is not a regular file (a FIFO)"),
    ],
    ids=["random-bytes", "sqlite-magic-and-garbage", "damaged-foreign-database", "fifo"],
)
def test_clear_deletes_only_a_file_proven_to_be_a_cache_and_never_recommends_it_otherwise(
    make: Any, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "cache.sqlite"
    make(path)
    before = path.read_bytes() if path.is_file() else None
    for attempt in (lambda p: EmbeddingCache(p).info(), clear_cache):
        with pytest.raises(CacheError, match=re.escape(message)) as caught:
            attempt(path)
        assert "cache clear" not in str(caught.value) and "left untouched" in str(caught.value)
    assert path.exists() and (before is None or path.read_bytes() == before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.sqlite"]
