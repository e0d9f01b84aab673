"""Persistent embedding cache: SQLite in WAL mode, vectors as raw float32 bytes, bounded with LRU eviction.

(Over ~500 lines: the key, the store, eviction and the checks on what is read back are one file format.)

An entry's key is a SHA-256 over a *namespace* — everything that changes a vector: model identity (a hub
model by the commit of its weights, a local directory by a fingerprint of its files), profile, dimensions,
normalisation, long-input policy and length limit — and the exact text the model sees (prompt and
instruction included). Change any of them and the key changes, so a stale vector is never returned.

A cache file is marked with its own SQLite `application_id`, so that another application's database given as
the cache path is refused rather than written into, and `clear_cache` deletes a damaged file only when its
header carries the mark. Every SQLite failure surfaces as a `CacheError` naming the file and what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt

from vllm_embed._utils import batched, vector_problem
from vllm_embed.cache_files import APPLICATION_ID, is_sqlite, marked_as_cache, not_a_regular_file
from vllm_embed.config import DEFAULT_CACHE_MAX_BYTES as DEFAULT_MAX_BYTES
from vllm_embed.errors import CacheError

logger = logging.getLogger(__name__)

_SQLITE_MAX_PARAMS = 500  # stay well under SQLite's bound-parameter limit per statement
_ROW_OVERHEAD = 64  # key, timestamp, index entry and B-tree bookkeeping of one row, roughly
_SCHEMA_VERSION = 1
_TABLES = {"embeddings", "totals"}
_BUSY_TIMEOUT_SECONDS = 60  # how long a writer waits for another process's write to finish
# A rowid table keeps a vector of up to about 4 KB inside its B-tree page; a WITHOUT ROWID table (the layout
# of caches before the application id) moves anything over about 1 KB to an overflow page of its own, which
# made a 384-d entry take three times its size. Both layouts answer the same statements.
# The byte total lives in a one-row table kept exact by triggers, in the same transaction as each change,
# so that every process sees the same figure without scanning the table.
_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS embeddings (
        key BLOB NOT NULL UNIQUE,
        vector BLOB NOT NULL,
        last_used REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS embeddings_last_used ON embeddings (last_used)",
    "CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO totals (id, bytes) VALUES (0, 0)",
    f"""CREATE TRIGGER IF NOT EXISTS embeddings_added AFTER INSERT ON embeddings BEGIN
        UPDATE totals SET bytes = bytes + length(NEW.vector) + {_ROW_OVERHEAD} WHERE id = 0;
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS embeddings_removed AFTER DELETE ON embeddings BEGIN
        UPDATE totals SET bytes = bytes - length(OLD.vector) - {_ROW_OVERHEAD} WHERE id = 0;
    END""",
    f"PRAGMA application_id = {APPLICATION_ID}",
    f"PRAGMA user_version = {_SCHEMA_VERSION}",
]


class _DamagedCacheError(CacheError):
    """The cache file is a damaged vllm-embed cache: deleting it (its vectors are recomputed) is the fix."""


@contextlib.contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """An immediate (write-locking) transaction: concurrent writers queue on SQLite's busy timeout."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def default_cache_path() -> Path:
    """Returns the per-user cache file used by `Embedder(cache=True)`."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("vllm-embed")) / "embeddings.sqlite"


def model_fingerprint(model: str, revision: str | None) -> str:
    """Identifies a model's weights: a local directory by its files, a hub id by the commit of its weights.

    A hub id's revision (`None` meaning `main`) is resolved to a commit through the local Hugging Face cache,
    where the engine found the weights (`refs/<branch>` names the commit of `snapshots/<commit>`), so a model
    updated on the hub gets new cache keys. A model the local cache does not hold is named by its revision.
    """
    local = Path(model).expanduser()
    if not local.is_dir():
        return f"{model}@{_cached_commit(model, revision) or revision or 'default'}"
    digest = hashlib.sha256(str(local.resolve()).encode())
    for path in sorted(local.rglob("*")):
        if path.is_file() and path.suffix in {".json", ".safetensors", ".bin", ".model", ".txt"}:
            stat = path.stat()
            digest.update(f"{path.relative_to(local)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
            if path.suffix == ".json":
                digest.update(path.read_bytes())
    return f"{local.resolve()}#{digest.hexdigest()[:16]}"


def _cached_commit(model: str, revision: str | None) -> str | None:
    """The commit of `model` at `revision` in the local Hugging Face cache, or `None` when not cached."""
    from huggingface_hub import try_to_load_from_cache

    for filename in ("config.json", "modules.json", "tokenizer_config.json"):
        try:
            cached = try_to_load_from_cache(model, filename, revision=revision)
        except (ValueError, OSError):  # not a valid hub id (HFValidationError), an unreadable cache
            return None
        if isinstance(cached, str):
            return Path(cached).parent.name  # …/snapshots/<commit>/<filename>
    return None


def namespace_key(parts: dict[str, Any]) -> bytes:
    """Condenses everything that changes a vector into a key prefix."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()


@dataclass(frozen=True)
class CacheStats:
    """Hit and miss counts of one Embedder's cache lookups."""

    hits: int = 0
    misses: int = 0

    @property
    def hit_rate(self) -> float:
        """Fraction of lookups that were hits (0 when there were none)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class EmbeddingCache:
    """A SQLite file of vectors, safe with several threads and processes writing at once.

    Args:
        path: The SQLite file (created with its directory when missing).
        max_bytes: Size bound of the database file. After every `put_many` the file holds at most
            `max_bytes` (least-recently-used entries are evicted past it, and the pages they held are given
            back to the file system; cache files created before this bound existed reuse those pages
            instead). Beside it, SQLite's write-ahead log (`<path>-wal`) is checkpointed into the file and cut
            back to a tenth of `max_bytes` (64 KiB to 4 MiB) whenever it grows past that, and emptied after
            an eviction.

    Raises:
        CacheError: If the path is a directory, another application's SQLite database, a damaged file, or
            cannot be opened or written; the message names the file and what to do.
    """

    def __init__(self, path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = Path(path).expanduser()
        self.max_bytes = max_bytes
        self._local = threading.local()
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # -- opening --------------------------------------------------------------------------------------

    def _open(self) -> None:
        """Opens the file, refuses what is not a vllm-embed cache, and creates or marks the schema."""
        if self.path.is_dir():
            raise CacheError(
                f"the cache path {self.path} is a directory; pass a file path such as "
                f"{self.path / 'embeddings.sqlite'}"
            )
        kind = not_a_regular_file(self.path)
        if kind is not None:  # SQLite would read and write it as a file (and create files beside it)
            raise CacheError(
                f"the cache path {self.path} is not a regular file ({kind}); it was left untouched: pass "
                "the path of a file"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(
                f"cannot create the directory of the cache file {self.path} ({exc}); "
                "choose another cache path"
            ) from exc
        with self._errors():
            connection = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None)
            self._local.connection = connection
            marked = self._check_is_cache(connection)
            if not marked and not self._tables(connection):
                # Only a new, empty file can take this; it lets eviction give freed pages back.
                connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
            self._configure(connection)
            if not marked:
                with _transaction(connection):
                    if not self._check_is_cache(connection):  # another process may have just done it
                        for statement in _SCHEMA:
                            connection.execute(statement)

    def _check_is_cache(self, connection: sqlite3.Connection) -> bool:
        """Whether the file is marked as a vllm-embed cache; `False` for a new file or an unmarked cache.

        Raises:
            CacheError: If the file is another application's database, or a newer vllm-embed's cache.
        """
        application_id, version = (
            connection.execute(f"PRAGMA {name}").fetchone()[0] for name in ("application_id", "user_version")
        )
        if application_id == APPLICATION_ID:
            if version > _SCHEMA_VERSION:
                raise CacheError(
                    f"the cache file {self.path} was written by a newer vllm-embed (cache format {version}); "
                    "upgrade vllm-embed or choose another cache path"
                )
            return True
        tables = self._tables(connection)
        columns = [row[1] for row in connection.execute("PRAGMA table_info(embeddings)")]
        unmarked_cache = tables == _TABLES and columns == ["key", "vector", "last_used"]
        if application_id == 0 and (not tables or unmarked_cache):
            return False
        shown = ", ".join(sorted(tables)[:5]) or "none"
        raise CacheError(
            f"{self.path} is a SQLite database of another application (tables: {shown}), not a vllm-embed "
            "cache; it was left untouched: choose another cache path"
        )

    @staticmethod
    def _tables(connection: sqlite3.Connection) -> set[str]:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(name) for (name,) in rows}

    def _configure(self, connection: sqlite3.Connection) -> None:
        """Sets what each connection needs: WAL (concurrent readers and writers) and the log's bound."""
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        # The log is checkpointed, and cut back, once it holds a tenth of the bound (64 KiB..4 MiB).
        wal_bytes = max(64 << 10, min(self.max_bytes // 10, 4 << 20))
        page_size = int(connection.execute("PRAGMA page_size").fetchone()[0])
        connection.execute(f"PRAGMA journal_size_limit = {wal_bytes}")
        connection.execute(f"PRAGMA wal_autocheckpoint = {wal_bytes // page_size}")

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            # Autocommit mode; transactions are opened explicitly. The timeout waits out other writers.
            connection = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None)
            self._local.connection = connection
            self._configure(connection)
        return connection

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turns SQLite's errors into a `CacheError` that names the file and the fix."""
        try:
            yield
        except sqlite3.Error as exc:
            self._raise(exc)

    def _raise(self, exc: sqlite3.Error) -> NoReturn:
        name = str(getattr(exc, "sqlite_errorname", "") or "")
        path = self.path
        clear = f"`vllm-embed cache clear --path {path}`"
        ours = marked_as_cache(path)  # `cache clear` deletes a damaged file only then
        if name == "SQLITE_NOTADB" or name.startswith("SQLITE_CORRUPT"):
            if ours:
                raise _DamagedCacheError(
                    f"the cache file {path} is damaged ({exc}): delete it with {clear} (its vectors are "
                    "computed again when needed), or choose another cache path"
                ) from exc
            if is_sqlite(path):
                raise CacheError(
                    f"{path} is a damaged SQLite database not marked as a vllm-embed cache ({exc}); it was "
                    "left untouched: choose another cache path (delete the file yourself if it is a cache of "
                    "an older vllm-embed)"
                ) from exc
            raise CacheError(
                f"{path} is not a SQLite database, so not a vllm-embed cache; it was left untouched: choose "
                "another cache path"
            ) from exc
        if name.startswith("SQLITE_READONLY"):
            raise CacheError(
                f"the cache file {path} is read-only ({exc}): make it and its directory writable, or choose "
                "another cache path"
            ) from exc
        if name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
            raise CacheError(
                f"the cache file {path} cannot be opened ({exc}): check that it and its directory are "
                f"writable (SQLite also creates {path.name}-wal and {path.name}-shm beside it), or choose "
                "another cache path"
            ) from exc
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            raise CacheError(
                f"the cache file {path} stayed locked by another process for over {_BUSY_TIMEOUT_SECONDS} s "
                f"({exc}): try again when it has finished, or choose another cache path"
            ) from exc
        if name == "SQLITE_FULL":
            raise CacheError(
                f"the disk holding the cache file {path} is full: free space, lower cache_max_bytes, or "
                "choose another cache path"
            ) from exc
        problem = f"{name or type(exc).__name__}: {exc}"
        if ours:
            raise _DamagedCacheError(
                f"the cache file {path} cannot be used ({problem}): delete it with {clear}, or choose "
                "another cache path"
            ) from exc
        raise CacheError(
            f"the cache file {path} cannot be used ({problem}); it was left untouched: choose another "
            "cache path"
        ) from exc

    # -- entries --------------------------------------------------------------------------------------

    @staticmethod
    def keys(namespace: bytes, texts: Sequence[str]) -> list[bytes]:
        """Returns the entry keys of `texts` under `namespace`."""
        return [hashlib.sha256(namespace + text.encode("utf-8")).digest() for text in texts]

    def get_many(self, keys: Sequence[bytes], dimension: int) -> dict[int, npt.NDArray[np.float32]]:
        """Looks keys up; returns `{position in keys: vector}` for the hits and marks them used.

        A stored vector is checked as the engine's output is (`dimension` finite numbers, not all zero): a
        row that fails (a damaged or edited file) is deleted and reported as a miss, so it is computed and
        stored again.
        """
        found: dict[int, npt.NDArray[np.float32]] = {}
        if not keys:
            return found
        position = {key: index for index, key in enumerate(keys)}
        hits: list[bytes] = []
        unusable: list[bytes] = []
        with self._errors():
            connection = self._connection()
            for chunk in batched(keys, _SQLITE_MAX_PARAMS):
                marks = ",".join("?" * len(chunk))
                rows = connection.execute(
                    f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", list(chunk)
                )
                for key, blob in rows:
                    vector = np.frombuffer(blob, dtype="<f4") if len(blob) % 4 == 0 else None
                    if vector is None or vector_problem(vector, dimension) is not None:
                        unusable.append(key)
                        continue
                    found[position[key]] = vector
                    hits.append(key)
            if hits or unusable:
                now = time.time()
                with _transaction(connection):
                    connection.executemany(
                        "UPDATE embeddings SET last_used = ? WHERE key = ?", [(now, key) for key in hits]
                    )
                    connection.executemany("DELETE FROM embeddings WHERE key = ?", [(k,) for k in unusable])
        if unusable:
            logger.warning(
                "%s: %d cached vectors were unusable (not finite, all zeros or of the wrong length); they "
                "were dropped and are computed again",
                self.path,
                len(unusable),
            )
        return found

    def put_many(self, keys: Sequence[bytes], vectors: npt.NDArray[np.float32]) -> None:
        """Stores vectors (one row per key) and evicts the least recently used entries past the bound."""
        if not keys:
            return
        data = np.ascontiguousarray(vectors, dtype="<f4")
        row_bytes = data.shape[1] * 4 + _ROW_OVERHEAD if data.ndim == 2 else _ROW_OVERHEAD
        # Each transaction adds at most a tenth of the bound, so the file never overshoots it by more.
        per_write = max(1, min(_SQLITE_MAX_PARAMS, self.max_bytes // 10 // row_bytes))
        evicted = False
        with self._errors():
            connection = self._connection()
            for rows in batched(range(len(keys)), per_write):
                now = time.time()
                with _transaction(connection):
                    # A key fixes its vector, so an existing entry only needs its timestamp refreshed.
                    connection.executemany(
                        "INSERT INTO embeddings (key, vector, last_used) VALUES (?, ?, ?) "
                        "ON CONFLICT (key) DO UPDATE SET last_used = excluded.last_used",
                        [(keys[row], data[row].tobytes(), now) for row in rows],
                    )
                    evicted = self._evict(connection, row_bytes) or evicted
            if evicted:
                self._release_free_pages(connection)

    def _evict(self, connection: sqlite3.Connection, row_bytes: int) -> bool:
        """Deletes least-recently-used entries while the file is over the bound; returns whether it did."""
        entry_bytes = self.size_bytes()
        file_bytes = self._used_file_bytes(connection)
        if max(entry_bytes, file_bytes) <= self.max_bytes:
            return False
        # The file is larger than the entries (pages, overflow pages, the index): keep, of the entries, the
        # share that brings the file down to 90% of the bound, so that eviction does not run on every write.
        ratio = max(1.0, file_bytes / max(entry_bytes, 1))
        keep = 0.9 * self.max_bytes / ratio
        count = max(1, -(-int(entry_bytes - keep) // row_bytes))
        connection.execute(
            "DELETE FROM embeddings WHERE key IN (SELECT key FROM embeddings ORDER BY last_used LIMIT ?)",
            (count,),
        )
        return True

    @staticmethod
    def _used_file_bytes(connection: sqlite3.Connection) -> int:
        """Bytes of the pages that hold data (the file's size less its free pages)."""
        pages, free, size = (
            int(connection.execute(f"PRAGMA {name}").fetchone()[0])
            for name in ("page_count", "freelist_count", "page_size")
        )
        return (pages - free) * size

    @staticmethod
    def _release_free_pages(connection: sqlite3.Connection) -> None:
        """Gives evicted entries' pages back to the file system and empties the log, without waiting."""
        if int(connection.execute("PRAGMA auto_vacuum").fetchone()[0]) == 2:  # incremental
            # `executescript` steps the pragma to the end; `execute` would free a single page.
            connection.executescript("PRAGMA incremental_vacuum;")
        # A checkpoint that truncates the log must wait for readers: skip it when any are busy.
        connection.execute("PRAGMA busy_timeout = 0")
        try:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_SECONDS * 1000}")

    def size_bytes(self) -> int:
        """Bytes held by the entries: vectors plus an estimated per-entry overhead (not the file size)."""
        with self._errors():
            row = self._connection().execute("SELECT bytes FROM totals WHERE id = 0").fetchone()
        return int(row[0])

    def file_bytes(self) -> int:
        """Bytes the cache takes on disk: the database file and its write-ahead log."""
        return sum(
            candidate.stat().st_size
            for candidate in (self.path, self.path.with_name(f"{self.path.name}-wal"))
            if candidate.is_file()
        )

    def info(self) -> dict[str, Any]:
        """Returns the path, entry count, entry bytes, bytes on disk and bound of the cache."""
        with self._errors():
            count = int(self._connection().execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
        return {
            "path": str(self.path),
            "entries": count,
            "bytes": self.size_bytes(),
            "file_bytes": self.file_bytes(),
            "max_bytes": self.max_bytes,
        }

    def clear(self) -> int:
        """Deletes every entry and returns how many there were."""
        with self._errors():
            connection = self._connection()
            with _transaction(connection):
                removed = connection.execute("DELETE FROM embeddings").rowcount
                # Emptied, a cache file of an older release takes the current layout.
                connection.execute("DROP TABLE embeddings")
                for statement in _SCHEMA:
                    connection.execute(statement)
            connection.execute("PRAGMA auto_vacuum = INCREMENTAL")  # applied by the VACUUM
            connection.execute("VACUUM")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return int(removed)

    def close(self) -> None:
        """Closes this thread's connection."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def clear_cache(path: str | Path) -> int:
    """Empties the cache file at `path`; what `vllm-embed cache clear` does.

    A damaged file is deleted only when it is proven to be a vllm-embed cache (its SQLite header carries
    the cache's application id); anything else is refused and left untouched.

    Args:
        path: The cache file.

    Returns:
        How many entries were removed (0 for a missing or a deleted damaged file).

    Raises:
        CacheError: If `path` is not a cache that can be cleared: not a SQLite database, another
            application's database (damaged or not), a directory, a device or FIFO, or a file that cannot
            be opened or written; the file is left untouched.
    """
    target = Path(path).expanduser()
    if not target.exists():
        return 0
    try:
        cache = EmbeddingCache(target)
        try:
            return cache.clear()
        finally:
            cache.close()
    except _DamagedCacheError:
        if not marked_as_cache(target):
            raise
        for suffix in ("", "-wal", "-shm"):
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        return 0
