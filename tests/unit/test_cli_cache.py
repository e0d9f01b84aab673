"""A cache file that cannot be a cache gives one line naming the file and the fix, never a traceback.

`cache clear` deletes a damaged cache, and leaves a file that is not SQLite, another application's database
and a directory alone.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import no_engine, run, write_corpus

from vllm_embed import cli
from vllm_embed.cache import EmbeddingCache


def damaged(path: Path) -> None:
    path.write_bytes(os.urandom(4096))


def truncated(path: Path) -> None:
    cache = EmbeddingCache(path)
    texts = [str(i) for i in range(2000)]
    cache.put_many(cache.keys(b"ns", texts), np.ones((len(texts), 64), dtype=np.float32))
    cache._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cache.close()
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 2)


def foreign(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
        db.execute("INSERT INTO notes VALUES ('keep me')")
    db.close()


def directory(path: Path) -> None:
    path.mkdir()


BAD_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "damaged": (damaged, "is not a SQLite database"),
    "truncated": (truncated, "is damaged (database disk image is malformed)"),
    "foreign": (foreign, "is a SQLite database of another application (tables: notes)"),
    "directory": (directory, "is a directory"),
    "fifo": (os.mkfifo, "is not a regular file (a FIFO); it was left untouched"),
}


def assert_one_line(code: int, err: str, *parts: str) -> None:
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and all(part in err for part in parts), err


@pytest.mark.parametrize("kind", BAD_FILES)
def test_cache_info_names_the_file_and_the_fix(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    make, message = BAD_FILES[kind]
    make(path)
    code, out, err = run("cache", "info", "--path", str(path))
    assert out == ""
    assert_one_line(code, err, str(path), message)
    # `cache clear` is recommended only where it works: for a file proven to be a vllm-embed cache
    assert (f"`vllm-embed cache clear --path {path}`" in err) == (kind == "truncated")


@pytest.mark.parametrize("kind", BAD_FILES)
def test_ingest_with_a_bad_cache_file_fails_before_the_engine(kind: str, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "cache.sqlite"
    make, message = BAD_FILES[kind]
    make(path)
    monkeypatch.setattr(cli, "make_embedder", no_engine)
    corpus = write_corpus(tmp_path)
    target = ["--qdrant", str(tmp_path / "q")]
    code, _, err = run("ingest", str(corpus), "-m", "m", "-c", "c", *target, "--cache", str(path))
    assert_one_line(code, err, str(path), message)


@pytest.mark.parametrize("kind", ["truncated"])
def test_cache_clear_deletes_a_damaged_file(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    BAD_FILES[kind][0](path)
    code, out, err = run("cache", "clear", "--path", str(path))
    assert code == 0, err
    assert out == f"deleted the damaged cache file {path}\n" and not path.exists()
    code, out, _ = run("cache", "info", "--path", str(path))
    assert code == 0 and "does not exist yet" in out


@pytest.mark.parametrize("kind", ["damaged", "foreign", "directory", "fifo"])
def test_cache_clear_leaves_what_is_not_a_cache_alone(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    make, message = BAD_FILES[kind]
    make(path)
    code, _, err = run("cache", "clear", "--path", str(path))
    assert_one_line(code, err, str(path), message)
    assert path.exists()
    if kind == "foreign":
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT body FROM notes").fetchall() == [("keep me",)]
            assert {r[0] for r in db.execute("SELECT name FROM sqlite_master")} == {"notes"}
        db.close()


def test_unopenable_cache_file_is_one_line(tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    path = blocker / "cache.sqlite"  # its parent is a file: cannot be created
    code, _, err = run("cache", "info", "--path", str(path))
    assert code == 0  # nothing to show yet
    monkeypatch.setattr(cli, "make_embedder", no_engine)
    corpus = write_corpus(tmp_path)
    target = ["--qdrant", str(tmp_path / "q")]
    code, _, err = run("ingest", str(corpus), "-m", "m", "-c", "c", *target, "--cache", str(path))
    assert_one_line(code, err, str(path), "cannot create the directory of the cache file")
