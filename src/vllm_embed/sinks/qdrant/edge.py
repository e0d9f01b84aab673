"""Qdrant's own engine in-process (qdrant-edge-py): HNSW, quantization with rescoring, payload indexes, WAL.

The Qdrant server's Rust engine in the process (qdrant-client's local mode is a brute-force emulation). Each
collection is one shard directory `path/<collection>/` with the manifest `vllm_embed.json`, built in a hidden
sibling and renamed into place. Updates are in the write-ahead log before they return; HNSW graphs and
quantized vectors are built by `optimize()`, which `close()` runs after writing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vllm_embed._optional import require
from vllm_embed.errors import ManifestError, StoreBusyError, UnmanagedCollectionError
from vllm_embed.sinks.base import Layout, Manifest, ManifestMismatchError
from vllm_embed.sinks.busy import holders_text
from vllm_embed.sinks.names import EDGE_MAX_BYTES, StorePathError, qdrant_name_problem
from vllm_embed.sinks.qdrant.common import (
    Condition,
    QdrantBaseSink,
    Query,
    StorageSettingsError,
    payload_index_keys,
    quantization_name,
)
from vllm_embed.sinks.storage import IndexField

if TYPE_CHECKING:
    import qdrant_edge

logger = logging.getLogger(__name__)

MANIFEST_FILE = "vllm_embed.json"
"""The manifest's file inside a collection's shard directory."""

_ENGINE_CONFIG = "edge_config.json"  # written by the engine: marks a directory as an edge shard
_WAL_DIR = "wal"  # the engine holds an exclusive flock on it while the shard is open
_CREATING = ".creating-"
_OPTIMIZE_PENDING = ".vllm_embed.optimize-pending"  # written before the first write, removed by optimize()


class _OpenShard:
    """The open `EdgeShard` of a sink, closed at most once (by `close()`, collection or exit)."""

    def __init__(self) -> None:
        self.shard: qdrant_edge.EdgeShard | None = None

    def close(self) -> None:
        shard, self.shard = self.shard, None
        if shard is not None:
            try:
                shard.flush()
            finally:
                shard.close()


class QdrantEdgeSink(QdrantBaseSink):
    """A collection in Qdrant's embedded engine (qdrant-edge-py), created with its manifest on first ingest.

    Cosine distance and the same layouts, filters, hybrid search and manifest as `QdrantSink`. One process
    at a time may open a collection (the engine locks its write-ahead log).

    Args:
        collection: Collection name: the shard's directory name under `path`.
        path: Directory holding the collections (created when missing).
        layout: Payload layout (as `QdrantSink`'s); `None` uses the existing collection's.
        hybrid: As `QdrantSink`'s.
        quantization: Creation setting, as `QdrantSink`'s (so are `on_disk`, `hnsw_m`, `hnsw_ef_construct`).
        on_disk: As `QdrantSink`'s.
        hnsw_m: As `QdrantSink`'s.
        hnsw_ef_construct: As `QdrantSink`'s.
        shard_number: Accepted for the CLI's shared flags; only `None` is valid (one shard).
        replication_factor: Likewise; only `None` is valid.
        ef: Search setting, as `QdrantSink`'s (so are `rescore` and `oversampling`).
        rescore: As `QdrantSink`'s.
        oversampling: As `QdrantSink`'s.
        index_fields: Metadata fields to index (`NAME` or `NAME:TYPE`); `doc_id` is always indexed.
        adopt: Take over an edge shard vllm-embed did not create, when its dense vector fits the run.
        indexing_threshold_kb: Vector KB a segment needs to be indexed (`None`: 10,000; 0: never).
        max_attempts: Attempts per operation on a transient error.
        retry_wait: First backoff wait in seconds.

    Raises:
        StorageSettingsError: For an invalid storage setting, or a cluster setting.
        ValueError: For a collection name that is not a plain directory name; `hybrid=True` with llama-index.
        StoreBusyError: If the collection is open in another sink or process.
        MissingDependencyError: If qdrant-edge-py is not installed.
    """

    def __init__(
        self,
        collection: str,
        *,
        path: str | os.PathLike[str],
        layout: str | None = None,
        hybrid: bool | None = None,
        quantization: str | None = None,
        on_disk: bool = False,
        hnsw_m: int | None = None,
        hnsw_ef_construct: int | None = None,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        ef: int | None = None,
        rescore: bool = True,
        oversampling: float | None = None,
        index_fields: Iterable[str | IndexField] = (),
        adopt: bool = False,
        indexing_threshold_kb: int | None = None,
        max_attempts: int = 3,
        retry_wait: float = 0.5,
    ) -> None:
        owner = type(self).__name__
        super().__init__(collection, layout, max_attempts, retry_wait, hybrid, index_fields, adopt)
        cluster = (("shard_number", shard_number), ("replication_factor", replication_factor))
        given = [f"{name}={value}" for name, value in cluster if value is not None]
        if given:
            raise StorageSettingsError(
                f"{owner}: {', '.join(given)} applies to a Qdrant server's cluster; an in-process collection "
                "is a single shard: leave them out, or use QdrantSink(url=...) with a server"
            )
        self._use_settings(locals())
        if indexing_threshold_kb is not None and indexing_threshold_kb < 0:
            raise StorageSettingsError(f"{owner}: indexing_threshold_kb={indexing_threshold_kb} must be >= 0")
        self.indexing_threshold_kb = indexing_threshold_kb
        self._qe = require("qdrant_edge", owner)
        self.path = Path(path)
        self._connection = {"path": str(self.path)}
        if self.path.exists() and not self.path.is_dir():
            raise StorePathError(
                f"{owner} path {str(self.path)!r} is a file, not a directory of collections: give a "
                "directory (created when missing)"
            )
        self._dir = self.path / collection
        self._open = _OpenShard()
        self._close_at_exit(self._open.close)
        self._dirty = False
        if self._is_shard(self._dir):
            self._load()

    def __repr__(self) -> str:
        return f"QdrantEdgeSink(collection={self.collection!r}, path={str(self.path)!r})"

    # -- the shard on disk -----------------------------------------------------------------------------

    @staticmethod
    def _is_shard(directory: Path) -> bool:
        return (directory / _ENGINE_CONFIG).is_file()

    def _load(self) -> qdrant_edge.EdgeShard:
        """Opens the existing shard (`StoreBusyError` if another sink or process has it open)."""
        try:
            shard: qdrant_edge.EdgeShard = self._qe.EdgeShard.load(str(self._dir))
        except Exception as exc:
            if "WouldBlock" not in str(exc):
                raise
            holders = holders_text([self._dir / _WAL_DIR])
            raise StoreBusyError(
                f"the Qdrant edge collection {str(self._dir)!r} is open elsewhere ({holders}); an embedded "
                "collection allows one process at a time: close the other sink (or stop that process), or "
                "run a Qdrant server and use QdrantSink(url=...) (--qdrant URL)"
            ) from None
        self._open.shard = shard
        return shard

    def _shard(self) -> qdrant_edge.EdgeShard:
        """The open shard, opened on first use (another process may have created the collection since)."""
        with self._lock:
            if self._open.shard is not None:
                return self._open.shard
            if not self._is_shard(self._dir):
                raise self._not_found()
            return self._load()

    def _config(self) -> dict[str, Any] | None:
        """The shard's configuration as the engine persisted it (`edge_config.json`)."""
        if not self._is_shard(self._dir):
            return None
        config: dict[str, Any] = json.loads((self._dir / _ENGINE_CONFIG).read_text())
        return config

    def _write_manifest_file(self, directory: Path, manifest: Manifest) -> None:
        """Writes the manifest atomically: a temporary file, synced, renamed over the old one."""
        target = directory / MANIFEST_FILE
        temporary = directory / f".{MANIFEST_FILE}.{uuid.uuid4().hex}"
        with temporary.open("w", encoding="utf-8") as file:
            json.dump(manifest.model_dump(), file, indent=1)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
        _fsync_directory(directory)

    # -- store hooks of the lifecycle (`BaseSink`) -----------------------------------------------------

    def _name_problem(self, name: str) -> str | None:
        return qdrant_name_problem(name, max_bytes=EDGE_MAX_BYTES)

    def _constructor_text(self) -> str:
        return f"QdrantEdgeSink({self.collection!r}, path={str(self.path)!r})"

    def _manifest_location(self) -> str:
        return f"file {str(self._dir / MANIFEST_FILE)!r}"

    def _unmanaged_error(self) -> UnmanagedCollectionError:
        return UnmanagedCollectionError(
            f"the Qdrant edge collection {str(self._dir)!r} exists but has no vllm-embed manifest "
            f"({MANIFEST_FILE}): adopt it with --adopt (adopt=True) if its vectors fit this run, or "
            "ingest into a new collection"
        )

    def _read_stored(self) -> tuple[bool, object]:
        if not self._is_shard(self._dir):
            return False, None
        file = self._dir / MANIFEST_FILE
        try:
            return True, file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return True, None
        except IsADirectoryError:
            raise ManifestError(
                f"the vllm-embed manifest {str(file)!r} is a directory, not a file: move that directory "
                f"away, then rewrite the manifest with {self._constructor_text()}.write_manifest(...) "
                "(vllm_embed.sinks), or delete the collection and ingest again"
            ) from None

    def prepare(self, manifest: Manifest) -> None:
        """As `BaseSink.prepare`; an optimization a killed run left unfinished is resumed by `close()`.

        Raises:
            ManifestMismatchError: As `BaseSink.prepare`, or the collection's directory holds something else.
            UnmanagedCollectionError: If the shard has no manifest and `adopt` is not set.
            StoreBusyError: If another process created the collection and holds it.
        """
        occupied = self._dir.exists() and (not self._dir.is_dir() or any(self._dir.iterdir()))
        if occupied and not self._is_shard(self._dir):
            raise ManifestMismatchError(
                f"{str(self._dir)!r} exists and is not a Qdrant edge collection: choose another "
                "collection name, or move it away"
            )
        super().prepare(manifest)

    def _prepared(self, stored: Manifest) -> None:
        if (self._dir / _OPTIMIZE_PENDING).exists():
            self._dirty = True  # a run was killed before its optimize finished: close() runs it

    def _create(self, manifest: Manifest) -> Manifest:
        """Builds the shard, its payload indexes and manifest beside the target, then renames it in place."""
        config = self._edge_config(manifest)
        index_keys = payload_index_keys(self.layout, self.index_fields)  # a bad key fails before writing
        self.path.mkdir(parents=True, exist_ok=True)
        building = self.path / f".{self.collection}{_CREATING}{uuid.uuid4().hex[:12]}"
        try:
            shard = self._call("collection creation", self._qe.EdgeShard.create, str(building), config)
            try:
                for key, kind in index_keys.items():
                    self._create_index(key, kind, shard)
                self._write_manifest_file(building, manifest)
            finally:
                shard.flush()
                shard.close()
            try:
                os.rename(building, self._dir)
            except OSError:
                if not self._is_shard(self._dir):
                    raise
                # Another process created the collection first: use (and check) that one.
                shutil.rmtree(building, ignore_errors=True)
                self._load()
                existing = self.read_manifest()
                assert existing is not None
                return self._check_existing(existing, manifest)
            _fsync_directory(self.path)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        self._load()
        return manifest

    def _create_index(self, key: str, kind: str, shard: qdrant_edge.EdgeShard | None = None) -> None:
        schema = getattr(self._qe.PayloadSchemaType, kind.capitalize())
        operation = self._qe.UpdateOperation.create_field_index(key, schema)
        self._call("payload index creation", (shard or self._shard()).update, operation)

    def _payload_schema(self) -> dict[str, str]:
        info = self._call("shard info", self._shard().info)
        return {key: _enum_name(index.data_type).lower() for key, index in info.payload_schema.items()}

    def _store_manifest(self, manifest: Manifest) -> None:
        self._call("manifest update", self._write_manifest_file, self._dir, manifest)

    def _options(self) -> dict[str, Any]:
        options = {**super()._options(), "indexing_threshold_kb": self.indexing_threshold_kb}
        del options["shard_number"], options["replication_factor"]
        return options

    def _sibling_options(self) -> dict[str, Any]:
        return {"path": self.path, **self._options()}

    def _edge_config(self, manifest: Manifest) -> qdrant_edge.EdgeConfig:
        qe, settings = self._qe, self.settings
        quantization, hnsw = self._index_configs(
            lambda: qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, memory=qe.Memory.Pinned),
            lambda: qe.BinaryQuantizationConfig(memory=qe.Memory.Pinned),
            lambda m, ef_construct: qe.HnswIndexConfig(
                m=16 if m is None else m, ef_construct=ef_construct or 100, full_scan_threshold=10_000
            ),
        )
        memory = qe.Memory.Cold if settings.on_disk else None
        dense = qe.EdgeVectorParams(
            size=manifest.dimensions, distance=qe.Distance.Cosine, memory=memory,
            quantization_config=quantization, hnsw_config=hnsw,
        )  # fmt: skip
        vectors = {self.layout.qdrant_vector: dense}
        if manifest.multivector_vector and manifest.multivector:
            vectors[manifest.multivector_vector] = qe.EdgeVectorParams(  # rescoring only: no HNSW graph
                size=int(manifest.multivector["dimensions"]), distance=qe.Distance.Cosine, memory=memory,
                multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
                hnsw_config=qe.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000),
            )  # fmt: skip
        learned = manifest.sparse == "learned"  # learned weights score as they are: no IDF
        params = qe.EdgeSparseVectorParams(modifier=None if learned else qe.Modifier.Idf)
        sparse = {manifest.sparse_vector: params} if manifest.sparse_vector else None
        optimizers = None
        if self.indexing_threshold_kb is not None:
            optimizers = qe.EdgeOptimizersConfig(indexing_threshold=self.indexing_threshold_kb)
        config: qdrant_edge.EdgeConfig = qe.EdgeConfig(
            vectors=vectors, sparse_vectors=sparse, optimizers=optimizers
        )
        return config

    # -- points ----------------------------------------------------------------------------------------

    def _retrieve(self, ids: list[str], *, payload: bool, vector: bool | list[str]) -> Sequence[Any]:
        with_vector = vector if isinstance(vector, list) else [self.layout.qdrant_vector] if vector else False
        records: Sequence[Any] = self._call(
            "point lookup", self._shard().retrieve, ids, with_payload=payload, with_vector=with_vector
        )
        return records

    def _sparse_vector(self, indices: list[int], values: list[float]) -> Any:
        return self._qe.SparseVector(indices, values)

    def _upsert(self, ids: list[str], vectors: list[dict[str, Any]], payloads: list[dict[str, Any]]) -> None:
        points = [self._qe.Point(*point) for point in zip(ids, vectors, payloads, strict=True)]
        self._update("upsert", self._qe.UpdateOperation.upsert_points(points))

    def _delete(self, filter: Any) -> None:
        self._update("delete", self._qe.UpdateOperation.delete_points_by_filter(filter))

    def _search_param_types(self) -> tuple[Any, Any]:
        return self._qe.SearchParams, self._qe.QuantizationSearchParams

    # -- the searches' driver (`QdrantBaseSink` runs them) ------------------------------------------------

    def _nearest(self, vector: Any, using: str) -> Any:
        return self._qe.Query.Nearest(vector, using=using)

    def _condition(self, c: Condition) -> Any:
        qe = self._qe
        if c.is_range:
            return qe.FieldCondition(key=c.key, range=qe.RangeFloat(gte=c.value, lte=c.upper))
        return qe.FieldCondition(key=c.key, match=qe.MatchValue(_match_value(c.value)))

    def _must(self, conditions: list[Any]) -> Any:
        return self._qe.Filter(must=conditions)

    def _has_ids(self, ids: Sequence[str]) -> Any:
        return self._qe.Filter(must=[self._qe.HasIdCondition(set(ids))])

    def _request(self, q: Query) -> Any:
        return self._qe.QueryRequest(
            limit=q.limit, query=q.query, filter=q.filter, params=q.params, with_payload=True
        )

    def _run(self, requests: Sequence[Any]) -> list[Sequence[Any]]:
        if len(requests) == 1:
            return [self._call("search", self._shard().query, requests[0])]
        batch = self._qe.QueryBatchRequest(list(requests))
        return list(self._call("search", self._shard().query_batch, batch))

    def count(self) -> int:
        """Returns the number of points in the collection."""
        return int(self._call("count", self._shard().count, self._qe.CountRequest(exact=True)))

    def _scroll(self, offset: Any, limit: int) -> tuple[Sequence[Any], Any]:
        name = self.layout.qdrant_vector
        request = self._qe.ScrollRequest(offset=offset, limit=limit, with_payload=False, with_vector=[name])
        scrolled: tuple[Sequence[Any], Any] = self._call("scroll", self._shard().scroll, request)
        return scrolled

    def _update_vectors(self, vectors: Sequence[tuple[str, list[float]]]) -> None:
        name = self.layout.qdrant_vector
        points = [self._qe.PointVectors(point_id, {name: row}) for point_id, row in vectors]
        self._update("vector update", self._qe.UpdateOperation.update_vectors(points))

    # -- the collection --------------------------------------------------------------------------------

    def optimize(self) -> bool:
        """Runs the engine's optimizers until none has work left: builds HNSW graphs and quantized vectors.

        Returns:
            Whether any segment changed.

        Raises:
            CollectionNotFoundError: If the collection does not exist.
        """
        changed = bool(self._call("optimize", self._shard().optimize))
        self._dirty = False
        (self._dir / _OPTIMIZE_PENDING).unlink(missing_ok=True)
        return changed

    def _update(self, action: str, operation: Any) -> None:
        """Applies a write; the session's first records that an optimize is due (`_OPTIMIZE_PENDING`).

        A run killed before its optimize leaves the record, so the next `prepare` has `close()` run it.
        """
        shard = self._shard()
        if not self._dirty:
            (self._dir / _OPTIMIZE_PENDING).touch()
            self._dirty = True
        self._call(action, shard.update, operation)

    def _info_storage(self, layout: Layout, config: Mapping[str, Any]) -> dict[str, Any]:
        """The engine's settings, the sparse vectors' modifiers and each segment's index and quantization."""
        storage = {
            **self._stored_storage(layout, config),
            "indexing_threshold_kb": (config.get("optimizers") or {}).get("indexing_threshold"),
            "sparse_vectors": {
                name: {"modifier": params.get("modifier")}
                for name, params in (config.get("sparse_vectors") or {}).items()
            },
            "segments": self._segments(layout),
        }
        del storage["shard_number"], storage["replication_factor"]
        return storage

    def _disk_bytes(self) -> int:
        """Bytes the shard's files occupy on disk (allocated blocks: the WAL's files are sparse)."""
        total = 0
        for root, _dirs, files in os.walk(self._dir):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(root, name)).st_blocks * 512
        return total

    def _segments(self, layout: Layout) -> list[dict[str, Any]]:
        """Each segment's dense index (`hnsw` or `plain`) and quantization (its `segment.json`)."""
        segments = []
        for file in sorted((self._dir / "segments").glob("*/segment.json")):
            try:
                data = json.loads(file.read_text())
            except (OSError, ValueError):  # a segment the optimizer is replacing right now
                continue
            vector = (data.get("config", {}).get("vector_data") or {}).get(layout.qdrant_vector) or {}
            index = vector.get("index") or {}
            hnsw = {k: v for k, v in (index.get("options") or {}).items() if k in ("m", "ef_construct")}
            quantization = quantization_name(vector.get("quantization_config"))
            segment = {"index": index.get("type"), **hnsw, "quantization": quantization}
            segments.append({**segment, "storage_type": vector.get("storage_type")})
        return segments

    def collection_names(self) -> list[str]:
        """Returns the collections under `path`: its subdirectories that are edge shards."""
        if not self.path.is_dir():
            return []
        return sorted(d.name for d in self.path.iterdir() if not d.name.startswith(".") and self._is_shard(d))

    def close(self) -> None:
        """Optimizes the collection if this sink wrote to it, then flushes and releases the shard."""
        if self._dirty and self._open.shard is not None:
            try:
                self.optimize()
            except Exception:
                logger.warning("%s: optimizing at close failed", self, exc_info=True)
        super().close()


def _match_value(value: str | int | float | bool) -> Any:
    """The value for `MatchValue`: qdrant-edge-py 0.9 reads a Python bool as 0 or 1, a NumPy bool right."""
    return np.bool_(value) if isinstance(value, bool) else value


def _enum_name(value: object) -> str:
    """`PayloadSchemaType.Keyword` → `Keyword` (the engine's enums have no `.name`)."""
    return str(value).rpartition(".")[2]


def _fsync_directory(directory: Path) -> None:
    """Makes a rename inside `directory` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
