"""Qdrant's own engine in-process (qdrant-edge-py): HNSW, quantization with rescoring, payload indexes, WAL.

(Over ~500 lines: the edge engine's driver of `QdrantBaseSink` plus its on-disk shard handling — atomic
creation, manifest file, segments read back, optimize — which no other store has.)

qdrant-client's local mode (`QdrantSink(path=...)`) is a pure-Python emulation that searches by brute
force and ignores quantization, HNSW settings and payload indexes. `QdrantEdgeSink` runs the Rust engine
of the Qdrant server inside the process instead, with no server to run.

On disk, `path` is a directory of collections: each collection is one edge shard in `path/<collection>/`
(the engine's `edge_config.json`, `wal/` and `segments/`), and vllm-embed's manifest is the JSON file
`vllm_embed.json` inside the shard directory, so a collection moves or is deleted as one directory.
A new collection is built in a hidden sibling directory (`.<collection>.creating-…`) and renamed into place
once its payload indexes and manifest are written: a collection directory always has its manifest, unless
someone else created the shard (then it can be adopted).

The engine writes every update to its write-ahead log before it returns, so a killed process loses no
acknowledged point; the next open replays the log. It builds HNSW graphs and quantized vectors only when
its optimizers run, which in-process happens on `optimize()`: the sink runs it on `close()` after writing,
so an ingest ends with an indexed collection. Until then (and for segments below the engine's indexing
threshold) searches are exact scans.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vllm_embed._optional import require
from vllm_embed.errors import ManifestError, StoreBusyError, UnmanagedCollectionError
from vllm_embed.sinks.base import (
    CollectionInfo,
    CollectionNotFoundError,
    Layout,
    Manifest,
    ManifestMismatchError,
)
from vllm_embed.sinks.busy import holders_text
from vllm_embed.sinks.layouts import get_layout
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
_SCHEMA_TYPES = {"keyword": "Keyword", "integer": "Integer", "float": "Float", "bool": "Bool"}


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

    Cosine distance, like `QdrantSink`; the same layouts, filters, hybrid search and manifest. One process
    at a time may open a collection (the engine locks its write-ahead log); other collections under the same
    `path` are independent.

    Args:
        collection: Collection name: the shard's directory name under `path`.
        path: Directory holding the collections (created when missing).
        layout: Payload layout: `"vllm-embed"`, `"langchain"` or `"llama-index"` (the payload shapes of
            `QdrantSink`); `None` uses the existing collection's (`"vllm-embed"` for a new one).
        hybrid: Store a BM25 sparse vector beside the dense one (a named sparse vector with the IDF
            modifier, term weights from `vllm_embed.sparse.BM25Encoder`); `None` follows the existing
            collection (dense only for a new one).
        quantization: `"int8"` or `"binary"`: a quantized copy of the vectors, searched first (creation
            setting, `QdrantCollectionSettings`).
        on_disk: Keep the float32 vectors on disk, memory-mapped (creation setting).
        hnsw_m: Edges per node of the HNSW graph (creation setting).
        hnsw_ef_construct: Candidates kept while building the HNSW graph (creation setting).
        shard_number: Accepted for the CLI's shared flags; an in-process collection is one shard, so only
            `None` is valid.
        replication_factor: Likewise; only `None` is valid.
        ef: Candidates the HNSW search keeps (`QdrantSearchSettings`).
        rescore: In a quantized collection, re-rank the candidates with the float32 vectors.
        oversampling: In a quantized collection, candidates fetched per hit before rescoring.
        index_fields: Metadata fields to index (`NAME` or `NAME:TYPE`); `doc_id` is always indexed.
        adopt: Take over an edge shard vllm-embed did not create, when its dense vector fits the run.
        indexing_threshold_kb: Vector data (KB) a segment needs before the optimizer builds its HNSW graph
            and quantized vectors; smaller segments are scanned exactly. `None` keeps the engine's default
            (10,000 KB); 0 never indexes. A creation setting kept by the engine.
        max_attempts: Attempts per operation on a transient error.
        retry_wait: First backoff wait in seconds.

    Raises:
        StorageSettingsError: For an invalid storage setting, or a cluster setting (`shard_number`,
            `replication_factor`).
        ValueError: For a collection name that is not a plain directory name, or `hybrid=True` with the
            llama-index layout.
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
        creation = {"quantization": quantization, "on_disk": on_disk, "hnsw_m": hnsw_m}
        creation["hnsw_ef_construct"] = hnsw_ef_construct
        search = {"ef": ef, "rescore": rescore, "oversampling": oversampling}
        super().__init__(collection, layout, max_attempts, retry_wait, hybrid, index_fields, adopt)
        self._use_settings(creation, search)
        cluster = (("shard_number", shard_number), ("replication_factor", replication_factor))
        given = [f"{name}={value}" for name, value in cluster if value is not None]
        if given:
            raise StorageSettingsError(
                f"{owner}: {', '.join(given)} applies to a Qdrant server's cluster; an in-process collection "
                "is a single shard: leave them out, or use QdrantSink(url=...) with a server"
            )
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
        """Opens the existing shard.

        Raises:
            StoreBusyError: If another sink or process has it open.
        """
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
            shard = self._open.shard
            if shard is None:
                if not self._is_shard(self._dir):
                    raise CollectionNotFoundError(
                        f"collection {self.collection!r} does not exist in {self!r}"
                    )
                shard = self._load()
            return shard

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
        """Creates the collection with `manifest` when missing, checks it when it exists, adopts it if asked.

        See `BaseSink.prepare`. A directory under the collection's name that is not an edge collection is
        refused; an optimization a killed run left unfinished is resumed by `close()`.

        Raises:
            ManifestMismatchError: If the collection was embedded differently, `hybrid` or the creation
                settings differ from it, an index field has another type in it, a shard to adopt does not
                fit, or the collection's directory holds something else.
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
        config = self._edge_config(manifest.dimensions, manifest.sparse_vector)
        index_keys = payload_index_keys(self.layout, self.index_fields)  # a bad key fails before writing
        self.path.mkdir(parents=True, exist_ok=True)
        building = self.path / f".{self.collection}{_CREATING}{uuid.uuid4().hex[:12]}"
        try:
            shard = self._call("collection creation", self._qe.EdgeShard.create, str(building), config)
            try:
                for key, kind in index_keys.items():
                    self._create_index(shard, key, kind)
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
                existing.require_compatible(manifest, self.collection)
                self.check_hybrid(existing)
                self.check_storage(existing)
                return self._add_index_fields(existing)
            _fsync_directory(self.path)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        self._load()
        return manifest

    def _create_index(self, shard: qdrant_edge.EdgeShard, key: str, kind: str) -> None:
        schema = getattr(self._qe.PayloadSchemaType, _SCHEMA_TYPES[kind])
        self._call(
            "payload index creation", shard.update, self._qe.UpdateOperation.create_field_index(key, schema)
        )

    def _ensure_indexes(self, stored: Manifest, fields: Sequence[IndexField]) -> None:
        existing = self._payload_schema()
        for key, kind in payload_index_keys(get_layout(stored.layout), fields).items():
            if key not in existing:
                self._create_index(self._shard(), key, kind)

    def _payload_schema(self) -> dict[str, str]:
        """Indexed payload keys and their type, as the engine reports them (`keyword`, `integer`, …)."""
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

    def _edge_config(self, dimensions: int, sparse_vector: str | None) -> qdrant_edge.EdgeConfig:
        qe, settings = self._qe, self.settings
        quantization: Any = None
        if settings.quantization == "int8":
            quantization = qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, memory=qe.Memory.Pinned)
        elif settings.quantization == "binary":
            quantization = qe.BinaryQuantizationConfig(memory=qe.Memory.Pinned)
        hnsw = None
        if settings.hnsw_m is not None or settings.hnsw_ef_construct is not None:
            hnsw = qe.HnswIndexConfig(
                m=16 if settings.hnsw_m is None else settings.hnsw_m,
                ef_construct=settings.hnsw_ef_construct or 100,
                full_scan_threshold=10_000,
            )
        dense = qe.EdgeVectorParams(
            size=dimensions,
            distance=qe.Distance.Cosine,
            memory=qe.Memory.Cold if settings.on_disk else None,
            quantization_config=quantization,
            hnsw_config=hnsw,
        )
        sparse = (
            {sparse_vector: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)} if sparse_vector else None
        )
        optimizers = (
            qe.EdgeOptimizersConfig(indexing_threshold=self.indexing_threshold_kb)
            if self.indexing_threshold_kb is not None
            else None
        )
        config: qdrant_edge.EdgeConfig = qe.EdgeConfig(
            vectors={self.layout.qdrant_vector: dense}, sparse_vectors=sparse, optimizers=optimizers
        )
        return config

    # -- points ----------------------------------------------------------------------------------------

    def _retrieve(self, ids: list[str], *, payload: bool, vector: bool) -> Sequence[Any]:
        with_vector = [self.layout.qdrant_vector] if vector else False
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

    def _request(self, query: Query) -> Any:
        qe, f = self._qe, query.filter
        return qe.QueryRequest(
            limit=query.limit,
            query=query.query,
            filter=f,
            params=query.params,
            with_payload=True,
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

        `close()` runs it after this sink wrote anything.

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
        """Applies a write; the first one of a session first records that an optimize is due.

        The record (`_OPTIMIZE_PENDING` in the shard directory) is removed once `optimize()` finishes, so a
        run killed before then leaves it, and the next `prepare` has `close()` optimize.
        """
        shard = self._shard()
        if not self._dirty:
            (self._dir / _OPTIMIZE_PENDING).touch()
            self._dirty = True
        self._call(action, shard.update, operation)

    def info(self) -> CollectionInfo:
        """Reads back what the engine reports: vector and storage settings, segments, payload indexes, size.

        `storage` holds the dense vector's settings from the engine's configuration (quantization, HNSW,
        on-disk, indexing threshold) and `segments`: each segment's index (`hnsw` with its parameters, or
        `plain` before the optimizer indexed it) and quantization, from the segments themselves.

        Raises:
            CollectionNotFoundError: If the collection does not exist.
        """
        shard = self._shard()
        manifest = self._known_manifest()
        # An unmanaged shard is described under the layout given, else the default one (adopt or not).
        layout = self._described_layout(manifest)
        config = self._existing_config()
        dimensions, distance, _ = self._stored_vectors(layout, config)
        shard_info = self._call("shard info", shard.info)
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
        return CollectionInfo(
            name=self.collection,
            store=repr(self),
            manifest=manifest,
            points=self.count(),
            dimensions=dimensions,
            distance=distance,
            storage=storage,
            payload_indexes={
                key: _enum_name(index.data_type).lower() for key, index in shard_info.payload_schema.items()
            },
            disk_bytes=_disk_bytes(self._dir),
        )

    def _segments(self, layout: Layout) -> list[dict[str, Any]]:
        """Each segment's dense index and quantization as the segment records them (`segment.json`)."""
        segments = []
        for file in sorted((self._dir / "segments").glob("*/segment.json")):
            try:
                data = json.loads(file.read_text())
            except (OSError, ValueError):  # a segment the optimizer is replacing right now
                continue
            vector = (data.get("config", {}).get("vector_data") or {}).get(layout.qdrant_vector) or {}
            index = vector.get("index") or {}
            segments.append(
                {
                    "index": index.get("type"),
                    **{k: v for k, v in (index.get("options") or {}).items() if k in ("m", "ef_construct")},
                    "quantization": quantization_name(vector.get("quantization_config")),
                    "storage_type": vector.get("storage_type"),
                }
            )
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
    """The value to give `MatchValue`.

    qdrant-edge-py 0.9 reads a Python bool as the integer 0 or 1 (which matches no boolean payload), but
    a NumPy bool as a bool.
    """
    return np.bool_(value) if isinstance(value, bool) else value


def _enum_name(value: object) -> str:
    """`PayloadSchemaType.Keyword` → `Keyword` (the engine's enums have no `.name`)."""
    return str(value).rpartition(".")[2]


def _disk_bytes(directory: Path) -> int:
    """Bytes the directory's files occupy on disk (allocated blocks: the WAL's files are sparse)."""
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total


def _fsync_directory(directory: Path) -> None:
    """Makes a rename inside `directory` durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
