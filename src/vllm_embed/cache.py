"""Persistent embedding cache: SQLite in WAL mode, vectors as raw float32 bytes, bounded with LRU eviction.

An entry's key is a SHA-256 over a *namespace* — everything that changes a vector: model identity (name or
path, plus revision or a fingerprint of the local files), profile, dimensions, normalisation, long-input
policy and length limit — and the exact text the model sees (prompt and instruction included). Change any
of them and the key changes, so a stale vector is never returned.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

DEFAULT_MAX_BYTES = 2 << 30
_SQLITE_MAX_PARAMS = 500  # stay well under SQLite's bound-parameter limit per statement
_ROW_OVERHEAD = 64  # key, timestamp, index entry and B-tree bookkeeping of one row, roughly
# The byte total lives in a one-row table kept exact by triggers, in the same transaction as each change,
# so that every process sees the same figure without scanning the table.
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS embeddings (
    key BLOB PRIMARY KEY,
    vector BLOB NOT NULL,
    last_used REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS embeddings_last_used ON embeddings (last_used);
CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO totals (id, bytes) VALUES (0, 0);
CREATE TRIGGER IF NOT EXISTS embeddings_added AFTER INSERT ON embeddings BEGIN
    UPDATE totals SET bytes = bytes + length(NEW.vector) + {_ROW_OVERHEAD} WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS embeddings_removed AFTER DELETE ON embeddings BEGIN
    UPDATE totals SET bytes = bytes - length(OLD.vector) - {_ROW_OVERHEAD} WHERE id = 0;
END;
"""


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
        except ValueError:  # not a valid hub id (huggingface_hub's HFValidationError)
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
        max_bytes: Size bound of the file; least-recently-used entries are evicted past it.
    """

    def __init__(self, path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._local = threading.local()
        self._connection().executescript(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            # Autocommit mode; transactions are opened explicitly. The timeout waits out other writers.
            connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
        return connection

    @staticmethod
    def keys(namespace: bytes, texts: Sequence[str]) -> list[bytes]:
        """Returns the entry keys of `texts` under `namespace`."""
        return [hashlib.sha256(namespace + text.encode("utf-8")).digest() for text in texts]

    def get_many(self, keys: Sequence[bytes], dimension: int) -> dict[int, npt.NDArray[np.float32]]:
        """Looks keys up; returns `{position in keys: vector}` for the hits and marks them used."""
        found: dict[int, npt.NDArray[np.float32]] = {}
        if not keys:
            return found
        position = {key: index for index, key in enumerate(keys)}
        connection = self._connection()
        hits: list[bytes] = []
        for start in range(0, len(keys), _SQLITE_MAX_PARAMS):
            chunk = keys[start : start + _SQLITE_MAX_PARAMS]
            marks = ",".join("?" * len(chunk))
            rows = connection.execute(f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", chunk)
            for key, blob in rows:
                vector = np.frombuffer(blob, dtype="<f4")
                if vector.shape == (dimension,):
                    found[position[key]] = vector
                    hits.append(key)
        if hits:
            now = time.time()
            with _transaction(connection):
                connection.executemany(
                    "UPDATE embeddings SET last_used = ? WHERE key = ?", [(now, key) for key in hits]
                )
        return found

    def put_many(self, keys: Sequence[bytes], vectors: npt.NDArray[np.float32]) -> None:
        """Stores vectors (one row per key) and evicts the least recently used entries past the bound."""
        if not keys:
            return
        now = time.time()
        data = np.ascontiguousarray(vectors, dtype="<f4")
        connection = self._connection()
        row_bytes = data.shape[1] * 4 + _ROW_OVERHEAD if data.ndim == 2 else _ROW_OVERHEAD
        with _transaction(connection):
            # A key fixes its vector, so an existing entry only needs its timestamp refreshed.
            connection.executemany(
                "INSERT INTO embeddings (key, vector, last_used) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET last_used = excluded.last_used",
                [(key, data[row].tobytes(), now) for row, key in enumerate(keys)],
            )
            excess = self.size_bytes() - self.max_bytes
            if excess > 0:
                # Evict down to 90% of the bound so that eviction does not run on every write.
                count = -(-(excess + self.max_bytes // 10) // row_bytes)
                connection.execute(
                    "DELETE FROM embeddings WHERE key IN "
                    "(SELECT key FROM embeddings ORDER BY last_used LIMIT ?)",
                    (count,),
                )

    def size_bytes(self) -> int:
        """Bytes held by the entries (vectors plus per-row overhead); what `max_bytes` bounds."""
        row = self._connection().execute("SELECT bytes FROM totals WHERE id = 0").fetchone()
        return int(row[0])

    def info(self) -> dict[str, Any]:
        """Returns the path, entry count and size of the cache."""
        count = int(self._connection().execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
        return {
            "path": str(self.path),
            "entries": count,
            "bytes": self.size_bytes(),
            "max_bytes": self.max_bytes,
        }

    def clear(self) -> int:
        """Deletes every entry and returns how many there were."""
        connection = self._connection()
        with _transaction(connection):
            removed = connection.execute("DELETE FROM embeddings").rowcount
        connection.execute("VACUUM")
        return int(removed)

    def close(self) -> None:
        """Closes this thread's connection."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
