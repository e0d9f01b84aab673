"""Qdrant sink: local mode (a directory or `:memory:`) or a server, through the same client calls.

(Just over ~500 lines: the qdrant-client driver of `QdrantBaseSink` — collection creation, local mode's
limits and WAL tuning, the configuration read back, requests — with its documented constructor.)
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from vllm_embed._optional import require
from vllm_embed.errors import StoreBusyError
from vllm_embed.sinks.base import UNKNOWN as _UNKNOWN
from vllm_embed.sinks.base import (
    CollectionInfo,
    Manifest,
    is_transient_grpc_error,
)
from vllm_embed.sinks.busy import holders_text
from vllm_embed.sinks.layouts import get_layout
from vllm_embed.sinks.qdrant.common import Condition, QdrantBaseSink, Query, payload_index_keys
from vllm_embed.sinks.storage import (
    IndexField,
    Quantization,
    StorageSettingsError,
)

if TYPE_CHECKING:
    from qdrant_client import QdrantClient
    from qdrant_client.http import models

logger = logging.getLogger(__name__)

_MANIFEST_KEY = "vllm_embed"
_TRANSIENT_HTTP_STATUS = {408, 429, 500, 502, 503, 504}
_TRANSIENT_GRPC_CODES = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"}
_LOCAL_MODE_ADVICE = (
    "Qdrant's local mode (path= or ':memory:') is a pure-Python emulation that ignores them: use "
    "QdrantEdgeSink (CLI --qdrant-edge DIR), Qdrant's own engine in-process, or a Qdrant server (url=, "
    "CLI --qdrant URL), or leave them out"
)


def _is_local(client: QdrantClient) -> bool:
    """Whether `client` is in local mode (a directory or `:memory:`), not talking to a server."""
    from qdrant_client.local.qdrant_local import QdrantLocal

    return isinstance(getattr(client, "_client", None), QdrantLocal)


def _local_collection_dir(client: QdrantClient, collection: str) -> Path | None:
    """The directory of a local-mode collection on disk (`None` for a server or a `:memory:` store)."""
    local = getattr(client, "_client", None)
    location = getattr(local, "location", None)
    if not _is_local(client) or not getattr(local, "persistent", False) or not isinstance(location, str):
        return None
    return Path(location, "collection", collection)


def _tune_local_storage(client: QdrantClient, collection: str) -> None:
    """Puts a local-mode collection's SQLite file in WAL mode with `synchronous=NORMAL`.

    Local mode commits every point in its own transaction; in SQLite's default rollback-journal mode each
    commit rewrites and syncs a journal file, which costs more CPU than the rest of the upsert and competes
    with the engine for cores (2,048 points: 1.8 s CPU → 0.6 s). A WAL commit survives a crash of the
    process (what resumable ingest relies on); only a power cut may undo the last commits, which a re-run
    embeds again. Servers and `:memory:` stores have no such file; an unknown client layout is left alone.
    """
    collections = getattr(getattr(client, "_client", None), "collections", None)
    local = collections.get(collection) if isinstance(collections, dict) else None
    connection = getattr(getattr(local, "storage", None), "storage", None)
    if not isinstance(connection, sqlite3.Connection):
        return
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error:
        logger.debug("could not switch the Qdrant local store to WAL mode", exc_info=True)


class QdrantSink(QdrantBaseSink):
    """A Qdrant collection with cosine distance, created (with its manifest) on first ingest.

    Give exactly one of `path`, `location`, `url` or `client`. Any string is a valid document id: Qdrant keeps
    payload values whole, so `check_document_id` accepts every id.

    Args:
        collection: Collection name.
        path: Directory of an embedded (local mode) store; only one client may open it at a time.
        location: `":memory:"` for a throw-away in-process store, or a server URL.
        url: Qdrant server URL, e.g. `http://localhost:6333`.
        api_key: API key for a server.
        client: An existing `QdrantClient`; it is not closed by `close()`.
        layout: Payload layout: `"vllm-embed"`, `"langchain"` (readable by langchain-qdrant's
            `QdrantVectorStore`) or `"llama-index"` (LlamaIndex's `QdrantVectorStore`); `None` uses the
            existing collection's (`"vllm-embed"` for a new one).
        max_attempts: Attempts per operation when the server reports a transient error.
        retry_wait: First backoff wait in seconds.
        hybrid: Store a BM25 sparse vector beside the dense one (a named sparse vector with Qdrant's IDF
            modifier; term weights from `vllm_embed.sparse.BM25Encoder`), for `sparse_search` and
            `hybrid_search`. `None` follows the existing collection (dense only for a new one).
        quantization: Quantized copy of the dense vectors, searched first: `"int8"` (scalar) or
            `"binary"`, kept in RAM; `None` keeps float32 only. Set when the collection is created.
        on_disk: Keep the original float32 vectors on disk (memory-mapped). Set at creation.
        hnsw_m: Edges per node of the HNSW graph (Qdrant's default when `None`). Set at creation.
        hnsw_ef_construct: Candidates kept while building the HNSW graph. Set at creation.
        shard_number: Shards of the collection (a server cluster). Set at creation.
        replication_factor: Copies of each shard (a server cluster). Set at creation.
        ef: Candidates each HNSW search keeps (`hnsw_ef`; Qdrant's default when `None`).
        rescore: In a quantized collection, re-rank the candidates with the original vectors.
        oversampling: In a quantized collection, fetch this many times the limit before rescoring
            (2.0 for binary quantization when `None`).
        index_fields: Metadata fields to index for filtering (`NAME` or `NAME:TYPE`); `doc_id` is always
            indexed (keyword). Local mode creates no payload index (it would have no effect) but records
            them in the manifest.
        adopt: Take over an existing collection that has no vllm-embed manifest when its dense vector
            fits (see `prepare`).
        **client_kwargs: Passed to `QdrantClient` (e.g. `timeout`, `prefer_grpc`).

    The creation settings (`quantization` … `replication_factor`) are recorded in the manifest; on an
    existing collection, settings left at their defaults follow the collection and differing ones are
    refused. The search settings (`ef`, `rescore`, `oversampling`) apply to every dense search, and to the
    dense half of a hybrid search.

    Raises:
        ValueError: If not exactly one of `path`, `location`, `url`, `client` is given, or `hybrid=True`
            with the llama-index layout.
        StorageSettingsError: If a storage setting is invalid, or a creation setting is given to a local
            mode store, which would ignore it.
        StoreBusyError: If the local store at `path` is open in another client or process.
    """

    def __init__(
        self,
        collection: str,
        *,
        path: str | None = None,
        location: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        client: QdrantClient | None = None,
        layout: str | None = None,
        max_attempts: int = 6,
        retry_wait: float = 0.5,
        hybrid: bool | None = None,
        quantization: Quantization | None = None,
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
        **client_kwargs: Any,
    ) -> None:
        cluster = {"shard_number": shard_number, "replication_factor": replication_factor}
        creation = {"quantization": quantization, "on_disk": on_disk, "hnsw_m": hnsw_m}
        creation |= {"hnsw_ef_construct": hnsw_ef_construct, **cluster}
        search = {"ef": ef, "rescore": rescore, "oversampling": oversampling}
        super().__init__(collection, layout, max_attempts, retry_wait, hybrid, index_fields, adopt)
        self._use_settings(creation, search)
        given = [name for name, value in (("path", path), ("location", location), ("url", url)) if value]
        if client is not None:
            given.append("client")
        if len(given) != 1:
            raise ValueError(
                "QdrantSink needs exactly one of path=, location=, url= or client=, "
                f"got {', '.join(given) or 'none'}"
            )
        self._target = path or location or url or "client"
        if client is None:
            connection = {"path": path, "location": location, "url": url, "api_key": api_key}
            self._connection = {k: v for k, v in connection.items() if v is not None} | client_kwargs
        self._target_argument = "client=client" if client is not None else f"{given[0]}={self._target!r}"
        qdrant_client = require("qdrant_client", "QdrantSink")
        self._models = require("qdrant_client.http.models", "QdrantSink")

        def connect() -> QdrantClient:
            try:
                created: QdrantClient = qdrant_client.QdrantClient(
                    path=path, location=location, url=url, api_key=api_key, **client_kwargs
                )
            except RuntimeError as exc:
                if path is None or "already accessed" not in str(exc):
                    raise
                holders = holders_text([Path(path, ".lock")])
                raise StoreBusyError(
                    f"the Qdrant local store {path!r} is open elsewhere ({holders}); "
                    "a local store allows one client at a time: close the other client (or stop that "
                    "process), or run a Qdrant server and pass url="
                ) from None
            self._close_at_exit(created.close)
            return created

        self._lazy_client(client, connect, Path(path) if path is not None else None)
        self._local = self._absent is not None or _is_local(self.client)
        if self._local:
            self._refuse_local_creation_settings()

    @property
    def client(self) -> QdrantClient:
        """The qdrant-client `QdrantClient` (connected, and a missing local store created, on first use)."""
        client: QdrantClient = self._connected()
        return client

    @client.setter
    def client(self, client: QdrantClient) -> None:
        self._client = client

    def _refuse_local_creation_settings(self) -> None:
        changed = {
            name: value
            for name, value in self._storage_requested().items()
            if value != self._storage_defaults()[name]
        }
        if changed:
            self.close()
            given = ", ".join(f"{name}={value!r}" for name, value in changed.items())
            raise StorageSettingsError(
                f"QdrantSink({self._target_argument}) cannot apply {given}: {_LOCAL_MODE_ADVICE}"
            )

    def __repr__(self) -> str:
        return f"QdrantSink(collection={self.collection!r}, target={self._target!r})"

    def _is_transient(self, exc: BaseException) -> bool:
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        if isinstance(exc, ResponseHandlingException):
            return True
        if isinstance(exc, UnexpectedResponse):
            return exc.status_code in _TRANSIENT_HTTP_STATUS
        return is_transient_grpc_error(exc, _TRANSIENT_GRPC_CODES) or super()._is_transient(exc)

    # -- store hooks of the lifecycle (`BaseSink`) -----------------------------------------------------

    def _constructor_text(self) -> str:
        return f"QdrantSink({self.collection!r}, {self._target_argument})"

    def _manifest_location(self) -> str:
        return f"Qdrant collection metadata key {_MANIFEST_KEY!r}"

    def _collection_info(self) -> models.CollectionInfo | None:
        """The collection as Qdrant reports it, or `None` when it does not exist."""
        if not self._call("collection lookup", self.client.collection_exists, self.collection):
            return None
        info: models.CollectionInfo = self._call(
            "collection lookup", self.client.get_collection, self.collection
        )
        return info

    def _existing_info(self) -> models.CollectionInfo:
        info = self._collection_info()
        if info is None:
            raise self._not_found()
        return info

    def _read_stored(self) -> tuple[bool, object]:
        if self._store_absent():
            return False, None
        info = self._collection_info()
        if info is None:
            return False, None
        return True, (info.config.metadata or {}).get(_MANIFEST_KEY)

    def _config(self) -> dict[str, Any] | None:
        info = None if self._store_absent() else self._collection_info()
        return None if info is None else _config_of(info)

    def _store_manifest(self, manifest: Manifest) -> None:
        self._call(
            "manifest update",
            self.client.update_collection,
            self.collection,
            metadata={_MANIFEST_KEY: manifest.model_dump()},
        )
        self._quantization = _UNKNOWN

    def _prepared(self, stored: Manifest) -> None:
        self._quantization = _UNKNOWN
        _tune_local_storage(self.client, self.collection)

    def _create(self, manifest: Manifest) -> Manifest:
        indexes = payload_index_keys(self.layout, self.index_fields)  # a bad key fails before writing
        models = self._models
        settings = self.settings
        params = models.VectorParams(
            size=manifest.dimensions,
            distance=models.Distance.COSINE,
            on_disk=True if settings.on_disk else None,
        )
        vector_name = self.layout.qdrant_vector
        sparse = (
            {manifest.sparse_vector: models.SparseVectorParams(modifier=models.Modifier.IDF)}
            if manifest.sparse_vector
            else None
        )
        quantization: Any = None
        if settings.quantization == "int8":
            quantization = models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)
            )
        elif settings.quantization == "binary":
            quantization = models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True))
        hnsw = None
        if settings.hnsw_m is not None or settings.hnsw_ef_construct is not None:
            hnsw = models.HnswConfigDiff(m=settings.hnsw_m, ef_construct=settings.hnsw_ef_construct)
        self._call(
            "collection creation",
            self.client.create_collection,
            self.collection,
            vectors_config={vector_name: params} if vector_name else params,
            sparse_vectors_config=sparse,
            shard_number=settings.shard_number,
            replication_factor=settings.replication_factor,
            hnsw_config=hnsw,
            quantization_config=quantization,
            metadata={_MANIFEST_KEY: manifest.model_dump()},
        )
        self._create_payload_indexes({}, indexes)
        return manifest

    def _ensure_indexes(self, stored: Manifest, fields: Sequence[IndexField]) -> None:
        wanted = payload_index_keys(get_layout(stored.layout), fields)
        self._create_payload_indexes(self._existing_info().payload_schema or {}, wanted)

    def _create_payload_indexes(self, existing: Mapping[str, Any], wanted: Mapping[str, str]) -> None:
        """Creates the payload indexes of `wanted` missing from `existing` (the collection's payload schema).

        Local mode creates none: it would ignore them.
        """
        if self._local:
            return
        for key, kind in wanted.items():
            if key in existing:
                continue
            self._call(
                "payload index creation",
                self.client.create_payload_index,
                self.collection,
                field_name=key,
                field_schema=self._models.PayloadSchemaType(kind),
                wait=True,
            )

    def _shared(self) -> bool:
        return not self._local

    def _sibling_options(self) -> dict[str, Any]:
        return {"client": self.client, **self._options()}

    def for_collection(self, name: str) -> Self:
        """Returns a sink on collection `name` of the same store, sharing this sink's client.

        The new sink leaves the client open on `close()`, has this sink's storage and search settings, and
        follows that collection's layout, hybrid choice and index fields.
        """
        sink = super().for_collection(name)
        sink._target, sink._target_argument = self._target, self._target_argument
        return sink

    # -- what Qdrant reports -------------------------------------------------------------------------------

    def _search_params(self) -> models.SearchParams | None:
        """Local mode gets no search parameters: it searches exactly, and would warn that they do nothing."""
        return None if self._local else super()._search_params()

    def _search_param_types(self) -> tuple[Any, Any]:
        return self._models.SearchParams, self._models.QuantizationSearchParams

    def _retrieve(self, ids: list[str], *, payload: bool, vector: bool) -> Sequence[Any]:
        name = self.layout.qdrant_vector
        records: Sequence[Any] = self._call(
            "point lookup", self.client.retrieve, self.collection, ids=ids, with_payload=payload,
            with_vectors=([name] if name else True) if vector else False,
        )  # fmt: skip
        return records

    def _sparse_vector(self, indices: list[int], values: list[float]) -> Any:
        return self._models.SparseVector(indices=indices, values=values)

    def _upsert(self, ids: list[str], vectors: list[dict[str, Any]], payloads: list[dict[str, Any]]) -> None:
        points = [
            self._models.PointStruct(id=i, vector=v[""] if list(v) == [""] else v, payload=p)
            for i, v, p in zip(ids, vectors, payloads, strict=True)
        ]
        self._call("upsert", self.client.upsert, self.collection, points=points, wait=True)

    def _delete(self, filter: Any) -> None:
        selector = self._models.FilterSelector(filter=filter)
        self._call("delete", self.client.delete, self.collection, points_selector=selector, wait=True)

    # -- the searches' driver (`QdrantBaseSink` runs them) ------------------------------------------------

    def _nearest(self, vector: Any, using: str) -> tuple[Any, str | None]:
        return vector, using or None

    def _condition(self, c: Condition) -> Any:
        qm = self._models
        if c.is_range:
            return qm.FieldCondition(key=c.key, range=qm.Range(gte=c.value, lte=c.upper))
        return qm.FieldCondition(key=c.key, match=qm.MatchValue(value=c.value))

    def _must(self, conditions: list[Any]) -> Any:
        return self._models.Filter(must=conditions)

    def _request(self, query: Query) -> models.QueryRequest:
        qm, f = self._models, query.filter
        vector, using = query.query
        request: models.QueryRequest = qm.QueryRequest(
            query=vector, using=using, filter=f, params=query.params, limit=query.limit,
            with_payload=True,
        )  # fmt: skip
        return request

    def _run(self, requests: Sequence[models.QueryRequest]) -> list[Sequence[Any]]:
        if len(requests) == 1:
            (r,) = requests
            response = self._call(
                "search", self.client.query_points, self.collection, query=r.query, using=r.using,
                query_filter=r.filter, search_params=r.params, limit=r.limit, with_payload=True,
            )  # fmt: skip
            return [response.points]
        responses = self._call("search", self.client.query_batch_points, self.collection, requests=requests)
        return [response.points for response in responses]

    def count(self) -> int:
        """Returns the number of points in the collection."""
        result = self._call("count", self.client.count, self.collection, exact=True)
        return int(result.count)

    def info(self) -> CollectionInfo:
        """Reads back what Qdrant reports about this collection.

        That is its dense vector, quantization, HNSW and on-disk settings, payload indexes and point count,
        and the size on disk of a local-mode directory (`None` for a server or `:memory:`).

        Local mode reports the settings it emulates (no quantization, Qdrant's default HNSW, no payload
        index), whatever was asked for.

        Raises:
            CollectionNotFoundError: If the collection does not exist.
            ManifestError: If its manifest is damaged.
        """
        if self._store_absent():
            raise self._not_found()
        info = self._existing_info()
        manifest = self._known_manifest()
        layout = self._described_layout(manifest)
        config = _config_of(info)
        dimensions, distance, _ = self._stored_vectors(layout, config)
        points = info.points_count if info.points_count is not None else self.count()
        directory = _local_collection_dir(self.client, self.collection)
        disk_bytes = None
        if directory is not None and directory.is_dir():
            disk_bytes = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
        return CollectionInfo(
            name=self.collection,
            store=repr(self),
            manifest=manifest,
            points=int(points),
            dimensions=dimensions,
            distance=distance,
            storage=self._stored_storage(layout, config),
            payload_indexes={
                key: str(index.data_type.value) for key, index in (info.payload_schema or {}).items()
            },
            disk_bytes=disk_bytes,
        )

    def collection_names(self) -> list[str]:
        """Returns the names of every collection in this store (server or local directory), sorted."""
        if self._store_absent():
            return []
        response = self._call("collection listing", self.client.get_collections)
        return sorted(c.name for c in response.collections)

    def _scroll(self, offset: Any, limit: int) -> tuple[Sequence[Any], Any]:
        name = self.layout.qdrant_vector
        scrolled: tuple[Sequence[Any], Any] = self._call(
            "scroll", self.client.scroll, self.collection, limit=limit, offset=offset, with_payload=False,
            with_vectors=[name] if name else True,
        )  # fmt: skip
        return scrolled

    def _update_vectors(self, vectors: Sequence[tuple[str, list[float]]]) -> None:
        name = self.layout.qdrant_vector
        points = [self._models.PointVectors(id=i, vector={name: row} if name else row) for i, row in vectors]
        self._call("vector update", self.client.update_vectors, self.collection, points=points, wait=True)

    def close(self) -> None:
        """Closes the client if this sink created it (releasing a local store's lock)."""
        super().close()


def _config_of(info: models.CollectionInfo) -> dict[str, Any]:
    """The collection's configuration in the engine's JSON shape (`QdrantBaseSink._config`)."""
    dump = info.config.model_dump(mode="json")
    params = dump["params"]
    vectors = params["vectors"] if isinstance(info.config.params.vectors, dict) else {"": params["vectors"]}
    return {**params, "vectors": vectors, **{k: dump[k] for k in ("hnsw_config", "quantization_config")}}
