"""Qdrant sink: local mode (a directory or `:memory:`) or a server, through the same client calls."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vllm_embed._optional import require
from vllm_embed.errors import StoreBusyError
from vllm_embed.sinks.base import UNKNOWN, ClientSink, Manifest, directory_size, is_transient_grpc_error
from vllm_embed.sinks.busy import holders_text
from vllm_embed.sinks.qdrant.common import Condition, QdrantBaseSink, Query, payload_index_keys
from vllm_embed.sinks.storage import IndexField, Quantization, StorageSettingsError

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

    Local mode commits every point in its own transaction; a rollback-journal commit rewrites and syncs a
    journal file (2,048 points: 1.8 s CPU → 0.6 s in WAL). A WAL commit survives a crash of the process;
    only a power cut may undo the last commits, which a re-run embeds again.
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


class QdrantSink(QdrantBaseSink, ClientSink["QdrantClient"]):
    """A Qdrant collection with cosine distance, created (with its manifest) on first ingest.

    Give exactly one of `path`, `location`, `url` or `client`. Any string is a valid document id.

    Args:
        collection: Collection name.
        path: Directory of an embedded (local mode) store; only one client may open it at a time.
        location: `":memory:"` for a throw-away in-process store, or a server URL.
        url: Qdrant server URL, e.g. `http://localhost:6333`.
        api_key: API key for a server.
        client: An existing `QdrantClient`; it is not closed by `close()`.
        layout: `"vllm-embed"`, `"langchain"` or `"llama-index"` (those frameworks' `QdrantVectorStore`).
        max_attempts: Attempts per operation when the server reports a transient error.
        retry_wait: First backoff wait in seconds.
        hybrid: Store a BM25 sparse vector (IDF modifier, `sparse.BM25Encoder` weights) beside the dense one.
        quantization: Creation setting (`QdrantCollectionSettings`, like the next five).
        on_disk: Keep the original float32 vectors on disk (memory-mapped).
        hnsw_m: Edges per node of the HNSW graph.
        hnsw_ef_construct: Candidates kept while building the HNSW graph.
        shard_number: Shards of the collection (a server cluster).
        replication_factor: Copies of each shard (a server cluster).
        ef: Search setting (`QdrantSearchSettings`, like the next two): candidates each HNSW search keeps.
        rescore: In a quantized collection, re-rank the candidates with the original vectors.
        oversampling: In a quantized collection, fetch this many times the limit before rescoring.
        index_fields: Metadata fields to index (`NAME` or `NAME:TYPE`); local mode indexes nothing.
        adopt: Take over an existing collection without vllm-embed manifest when its dense vector fits.
        **client_kwargs: Passed to `QdrantClient` (e.g. `timeout`, `prefer_grpc`).

    Creation settings are recorded in the manifest; differing ones are refused on an existing collection.

    Raises:
        ValueError: Unless exactly one of `path`, `location`, `url`, `client` is given; hybrid llama-index.
        StorageSettingsError: If a storage setting is invalid, or a creation setting is given to local mode.
        StoreBusyError: If the local store at `path` is open in another client or process.
    """

    _sibling_attributes = ("_target", "_target_argument")

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
        super().__init__(collection, layout, max_attempts, retry_wait, hybrid, index_fields, adopt)
        self._use_settings(locals())
        given = [name for name, value in (("path", path), ("location", location), ("url", url)) if value]
        if client is not None:
            given.append("client")
        if len(given) != 1:
            got = ", ".join(given) or "none"
            raise ValueError(f"QdrantSink needs exactly one of path=, location=, url= or client=, got {got}")
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

    def _refuse_local_creation_settings(self) -> None:
        defaults = self._storage_defaults()
        given = ", ".join(f"{k}={v!r}" for k, v in self._storage_requested().items() if v != defaults[k])
        if given:
            self.close()
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

    def _described(self) -> models.CollectionInfo | None:
        """The collection as Qdrant reports it, or `None` when it does not exist."""
        if self._store_absent() or not self._on("collection lookup", self.client.collection_exists):
            return None
        info: models.CollectionInfo = self._on("collection lookup", self.client.get_collection)
        return info

    def _read_stored(self) -> tuple[bool, object]:
        info = self._described()
        return (False, None) if info is None else (True, (info.config.metadata or {}).get(_MANIFEST_KEY))

    def _config(self) -> dict[str, Any] | None:
        info = self._described()
        if info is None:
            return None
        dump = info.config.model_dump(mode="json")
        params, vectors = dump["params"], dump["params"]["vectors"]
        vectors = vectors if isinstance(info.config.params.vectors, dict) else {"": vectors}
        return {**params, "vectors": vectors, **{k: dump[k] for k in ("hnsw_config", "quantization_config")}}

    def _store_manifest(self, manifest: Manifest) -> None:
        metadata = {_MANIFEST_KEY: manifest.model_dump()}
        self._on("manifest update", self.client.update_collection, metadata=metadata)
        self._quantization = UNKNOWN

    def _prepared(self, stored: Manifest) -> None:
        self._quantization = UNKNOWN
        _tune_local_storage(self.client, self.collection)

    def _create(self, manifest: Manifest) -> Manifest:
        indexes = payload_index_keys(self.layout, self.index_fields)  # a bad key fails before writing
        models, settings = self._models, self.settings
        on_disk = True if settings.on_disk else None
        params = models.VectorParams(
            size=manifest.dimensions, distance=models.Distance.COSINE, on_disk=on_disk
        )
        vector_name = self.layout.qdrant_vector
        learned = manifest.sparse == "learned"  # learned weights score as they are: no IDF
        sparse_params = models.SparseVectorParams(modifier=None if learned else models.Modifier.IDF)
        sparse = {manifest.sparse_vector: sparse_params} if manifest.sparse_vector else None
        vectors: Any = {vector_name: params} if vector_name else params
        if manifest.multivector_vector and manifest.multivector:  # beside an unnamed one: named ""
            vectors = {vector_name: params}
            vectors[manifest.multivector_vector] = models.VectorParams(  # rescoring only: no HNSW graph
                size=int(manifest.multivector["dimensions"]), distance=models.Distance.COSINE,
                on_disk=on_disk,
                multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
                hnsw_config=models.HnswConfigDiff(m=0),
            )  # fmt: skip
        quantization, hnsw = self._index_configs(
            lambda: models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)
            ),
            lambda: models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True)),
            lambda m, ef_construct: models.HnswConfigDiff(m=m, ef_construct=ef_construct),
        )
        self._on(
            "collection creation", self.client.create_collection,
            vectors_config=vectors, sparse_vectors_config=sparse,
            shard_number=settings.shard_number, replication_factor=settings.replication_factor,
            hnsw_config=hnsw, quantization_config=quantization,
            metadata={_MANIFEST_KEY: manifest.model_dump()},
        )  # fmt: skip
        for key, kind in indexes.items():
            self._create_index(key, kind)
        return manifest

    def _payload_schema(self) -> dict[str, str]:
        info = self._described()
        if info is None:
            raise self._not_found()
        return {key: str(index.data_type.value) for key, index in (info.payload_schema or {}).items()}

    def _create_index(self, key: str, kind: str) -> None:
        if self._local:  # local mode would ignore it
            return
        schema = self._models.PayloadSchemaType(kind)
        self._on(
            "payload index creation", self.client.create_payload_index, field_name=key,
            field_schema=schema, wait=True,
        )  # fmt: skip

    def _shared(self) -> bool:
        return not self._local

    # -- what Qdrant reports -------------------------------------------------------------------------------

    def _search_params(self) -> models.SearchParams | None:
        """Local mode gets no search parameters: it searches exactly, and would warn that they do nothing."""
        return None if self._local else super()._search_params()

    def _search_param_types(self) -> tuple[Any, Any]:
        return self._models.SearchParams, self._models.QuantizationSearchParams

    def _retrieve(self, ids: list[str], *, payload: bool, vector: bool | list[str]) -> Sequence[Any]:
        name = self.layout.qdrant_vector
        dense = [name] if name else True
        records: Sequence[Any] = self._on(
            "point lookup", self.client.retrieve, ids=ids, with_payload=payload,
            with_vectors=vector if isinstance(vector, list) else dense if vector else False,
        )  # fmt: skip
        return records

    def _has_ids(self, ids: Sequence[str]) -> Any:
        return self._models.Filter(must=[self._models.HasIdCondition(has_id=list(ids))])

    def _sparse_vector(self, indices: list[int], values: list[float]) -> Any:
        return self._models.SparseVector(indices=indices, values=values)

    def _upsert(self, ids: list[str], vectors: list[dict[str, Any]], payloads: list[dict[str, Any]]) -> None:
        points = [
            self._models.PointStruct(id=i, vector=v[""] if list(v) == [""] else v, payload=p)
            for i, v, p in zip(ids, vectors, payloads, strict=True)
        ]
        self._on("upsert", self.client.upsert, points=points, wait=True)

    def _delete(self, filter: Any) -> None:
        selector = self._models.FilterSelector(filter=filter)
        self._on("delete", self.client.delete, points_selector=selector, wait=True)

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

    def _request(self, q: Query) -> Any:
        (vector, using), qm = q.query, self._models
        return qm.QueryRequest(
            query=vector, using=using, filter=q.filter, params=q.params, limit=q.limit, with_payload=True
        )

    def _run(self, requests: Sequence[models.QueryRequest]) -> list[Sequence[Any]]:
        if len(requests) == 1:
            (r,) = requests
            response = self._on(
                "search", self.client.query_points, query=r.query, using=r.using,
                query_filter=r.filter, search_params=r.params, limit=r.limit, with_payload=True,
            )  # fmt: skip
            return [response.points]
        responses = self._on("search", self.client.query_batch_points, requests=requests)
        return [response.points for response in responses]

    def count(self) -> int:
        """Returns the number of points in the collection."""
        return int(self._on("count", self.client.count, exact=True).count)

    def _disk_bytes(self) -> int | None:
        """A local-mode directory's size (`None`: a server or `:memory:`).

        Local mode's `info` reports the settings it emulates (no quantization, default HNSW, no index).
        """
        return directory_size(_local_collection_dir(self.client, self.collection))

    def collection_names(self) -> list[str]:
        """Returns the names of every collection in this sink's store, sorted."""
        if self._store_absent():
            return []
        response = self._call("collection listing", self.client.get_collections)
        return sorted(c.name for c in response.collections)

    def _scroll(self, offset: Any, limit: int) -> tuple[Sequence[Any], Any]:
        name = self.layout.qdrant_vector
        scrolled: tuple[Sequence[Any], Any] = self._on(
            "scroll", self.client.scroll, limit=limit, offset=offset, with_payload=False,
            with_vectors=[name] if name else True,
        )  # fmt: skip
        return scrolled

    def _update_vectors(self, vectors: Sequence[tuple[str, list[float]]]) -> None:
        name = self.layout.qdrant_vector
        points = [self._models.PointVectors(id=i, vector={name: row} if name else row) for i, row in vectors]
        self._on("vector update", self.client.update_vectors, points=points, wait=True)
