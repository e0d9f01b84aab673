"""The Qdrant driver body, whichever client runs it: settings, points, filters, queries, indexes, adoption.

Every decision is made once here; `QdrantSink` (qdrant-client) and `QdrantEdgeSink` (qdrant-edge-py) only
implement the `Driver:` methods: how their client builds and runs each request. (Over ~500 lines: splitting
it would split one driver's decisions across modules that both engines' sinks then import.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from vllm_embed.errors import StorageSettingsError as StorageSettingsError
from vllm_embed.sinks.base import (
    UNKNOWN,
    BaseSink,
    Chunk,
    CollectionInfo,
    Hit,
    Manifest,
    MetadataFilter,
    MetadataValue,
    MultiVector,
    SparseQuery,
    StoredVectors,
    check_filter,
)
from vllm_embed.sinks.layouts import Layout, get_layout
from vllm_embed.sinks.names import qdrant_name_problem
from vllm_embed.sinks.storage import IndexField, QdrantCollectionSettings, QdrantSearchSettings, validated
from vllm_embed.sparse import BM25Encoder

if TYPE_CHECKING:
    from vllm_embed.learned_sparse import SparseVector


def payload_index_keys(layout: Layout, fields: Iterable[IndexField]) -> dict[str, str]:
    """Payload key → index type of every payload index: the document id first (keyword), then `fields`."""
    keys = {layout.qdrant_key(layout.doc_id_path("qdrant")): "keyword"}
    for field in fields:
        keys.setdefault(layout.qdrant_key(layout.metadata_path("qdrant", field.name)), field.type)
    return keys


@dataclass(frozen=True)
class Condition:
    """One condition of a Qdrant filter: `key` equals `value`, or is at least `value`.

    A float is matched as the range `[value, value]` (Qdrant matches only keywords, integers and booleans).
    """

    key: str
    value: MetadataValue
    at_least: bool = False

    @property
    def is_range(self) -> bool:
        """Whether the condition is a range rather than a match."""
        return self.at_least or isinstance(self.value, float)

    @property
    def upper(self) -> MetadataValue | None:
        """The range's upper bound (`None`: open)."""
        return None if self.at_least else self.value


@dataclass(frozen=True)
class Query:
    """One query of a search in the driver's terms (its dense or sparse query): `_request` builds it."""

    query: Any
    limit: int
    filter: Any
    params: Any = None


def filter_conditions(layout: Layout, filter: MetadataFilter | None) -> list[Condition]:
    """The conditions (all must hold) of a metadata filter; `ValueError` for a malformed one."""
    return [
        Condition(layout.qdrant_key(layout.metadata_path("qdrant", key)), value)
        for key, value in check_filter(filter).items()
    ]


class QdrantBaseSink(BaseSink):
    """What `QdrantSink` and `QdrantEdgeSink` do alike: Qdrant payloads, BM25 sparse vectors, settings."""

    settings: QdrantCollectionSettings
    search_settings: QdrantSearchSettings
    store_label = "Qdrant collection"

    def _use_settings(self, arguments: Mapping[str, Any]) -> None:
        """Validates and keeps the creation and search settings among the constructor's `arguments`."""
        owner = type(self).__name__
        fields = QdrantCollectionSettings.model_fields
        creation = {name: arguments[name] for name in fields if name in arguments}
        search = {name: arguments[name] for name in QdrantSearchSettings.model_fields}
        self.settings = validated(QdrantCollectionSettings, owner, **creation)
        """Creation settings of the collection (applied when this sink creates it)."""
        self.search_settings = validated(QdrantSearchSettings, owner, **search)
        """Settings applied to every search."""
        self._quantization: str | None = UNKNOWN

    def _name_problem(self, name: str) -> str | None:
        return qdrant_name_problem(name)

    def _index_configs(
        self,
        int8: Callable[[], Any],
        binary: Callable[[], Any],
        hnsw: Callable[[int | None, int | None], Any],
    ) -> tuple[Any, Any]:
        """The client's quantization and HNSW configs built from the creation settings (`None`: defaults)."""
        settings = self.settings
        quantization = {"int8": int8, "binary": binary}.get(settings.quantization or "", lambda: None)()
        tuned = settings.hnsw_m is not None or settings.hnsw_ef_construct is not None
        return quantization, hnsw(settings.hnsw_m, settings.hnsw_ef_construct) if tuned else None

    def _storage_requested(self) -> dict[str, Any]:
        return self.settings.model_dump()

    def _options(self) -> dict[str, Any]:
        return {**super()._options(), **self.settings.model_dump(), **self.search_settings.model_dump()}

    def _storage_defaults(self) -> dict[str, Any]:
        return QdrantCollectionSettings().model_dump()

    def _layout_sparse(self, layout: Layout) -> str:
        return layout.qdrant_sparse_vector

    def _sparse_analyzer(self) -> dict[str, Any]:
        return BM25Encoder().describe()

    def _layout_multivector(self, layout: Layout) -> str:
        return layout.qdrant_multivector

    def _sparse_of(self, manifest: Manifest | None) -> tuple[str, BM25Encoder | None] | None:
        """The sparse vector's name and, for BM25, its encoder (`None`: learned vectors, given on write)."""
        if manifest is None or not manifest.sparse_vector:
            return None
        if manifest.sparse == "learned":
            return manifest.sparse_vector, None
        encoder = BM25Encoder.from_manifest(manifest.sparse_analyzer or {}, self.collection)
        return manifest.sparse_vector, encoder

    def _found(self, points: Sequence[Any], branch: str) -> list[Hit]:
        """The hits of the scored points a search `branch` found."""
        return self._hits("qdrant", ((p.id, p.score, p.payload or {}) for p in points), branch)

    # -- the collection's configuration, read the same way from either engine ---------------------------

    def _config(self) -> dict[str, Any] | None:
        """Driver: the collection's configuration in the engine's JSON shape (`None`: no collection).

        `vectors` by name (`""`: unnamed), `sparse_vectors`, `hnsw_config`, `quantization_config`, and a
        server's `shard_number` and `replication_factor`.
        """
        raise NotImplementedError

    def _existing_config(self) -> dict[str, Any]:
        config = self._config()
        if config is None:
            raise self._not_found()
        return config

    def _dense_config(self, layout: Layout, config: Mapping[str, Any]) -> dict[str, Any] | None:
        """The dense vector's configuration where `layout` keeps it (`None`: there is none there)."""
        params = (config.get("vectors") or {}).get(layout.qdrant_vector)
        return params if isinstance(params, dict) else None

    def _stored_dimensions(self, layout: Layout) -> int | None:
        config = self._config()
        dense = None if config is None else self._dense_config(layout, config)
        return None if dense is None else int(dense["size"])

    def _stored_vectors(
        self, layout: Layout, config: Mapping[str, Any]
    ) -> tuple[int | None, str | None, dict[str, str | None]]:
        """The dense vector's size and distance (`None`: no vector there), and each sparse one's modifier."""
        sparse = {
            name: None if params.get("modifier") is None else str(params["modifier"]).lower()
            for name, params in (config.get("sparse_vectors") or {}).items()
        }
        dense = self._dense_config(layout, config)
        if dense is None:
            return None, None, sparse
        return int(dense["size"]), str(dense.get("distance", "")).lower(), sparse

    def _stored_storage(self, layout: Layout, config: Mapping[str, Any]) -> dict[str, Any]:
        """The collection's creation settings as the engine keeps them (`QdrantCollectionSettings` terms)."""
        dense = self._dense_config(layout, config) or {}
        own = {key: value for key, value in (dense.get("hnsw_config") or {}).items() if value is not None}
        hnsw = {**(config.get("hnsw_config") or {}), **own}
        quantization = dense.get("quantization_config") or config.get("quantization_config")
        return {
            "quantization": quantization_name(quantization),
            "on_disk": bool(dense.get("on_disk")) or dense.get("memory") == "cold",
            "hnsw_m": hnsw.get("m"),
            "hnsw_ef_construct": hnsw.get("ef_construct"),
            "shard_number": config.get("shard_number"),
            "replication_factor": config.get("replication_factor"),
        }

    def check_storage(self, stored: Manifest) -> None:
        """As `BaseSink.check_storage`; a manifest without storage settings is compared with the engine's."""
        requested, defaults = self._storage_requested(), self._storage_defaults()
        if stored.storage is None and any(value != defaults[name] for name, value in requested.items()):
            config = self._config()
            if config is not None:
                storage = self._stored_storage(self._described_layout(stored), config)
                stored = stored.model_copy(update={"storage": storage})
        super().check_storage(stored)

    def _collection_quantization(self) -> str | None:
        """The collection's quantization: the manifest's, else the one the engine reports (kept once read)."""
        if self._quantization is UNKNOWN:
            manifest = self._known_manifest()
            if manifest is not None and manifest.storage is not None:
                self._quantization = manifest.storage.get("quantization")
            else:
                config = self._config()
                if config is None:
                    return None
                layout = self._described_layout(manifest)
                self._quantization = self._stored_storage(layout, config)["quantization"]
        return self._quantization

    # -- adopting a collection vllm-embed did not create ----------------------------------------------

    def _adopt(self, manifest: Manifest) -> Manifest:
        layout, config = self.layout, self._existing_config()
        dimensions, distance, sparse = self._stored_vectors(layout, config)
        self.check_adoptable(dimensions, distance, manifest)
        name = layout.qdrant_sparse_vector
        has_sparse = bool(name) and sparse.get(name) == "idf"
        if self._hybrid and not has_sparse:
            raise self._mismatch(
                f"cannot be adopted as hybrid: it has no sparse vector {self._sparse_name(layout)!r} with "
                f"the IDF modifier, which the {layout.name} layout keeps BM25 vectors in; adopt it without "
                "--hybrid (dense only), or ingest into a new collection"
            )
        if has_sparse and self._hybrid is None:
            self._hybrid = True  # hybrid left out follows the collection
        payload_index_keys(layout, self.index_fields)  # a bad key fails before writing
        storage = {
            **self._stored_storage(layout, config),
            "index_fields": [f.to_spec() for f in self.index_fields],
        }
        adopted = self._new_manifest(manifest).model_copy(update={"adopted": True, "storage": storage})
        self.check_storage(adopted)
        self._ensure_indexes(adopted, self.index_fields)
        self._store_manifest(adopted)
        return adopted

    def _with_stored_sparse(self, manifest: Manifest) -> Manifest:
        layout = get_layout(manifest.layout)
        modifiers = self._stored_vectors(layout, self._existing_config())[2]
        has_sparse = modifiers.get(layout.qdrant_sparse_vector, "") == "idf"  # BM25: a learned one has none
        return self._hybrid_from_store(manifest, has_sparse)

    # -- payload indexes and what the engine reports -------------------------------------------------------

    def _payload_schema(self) -> dict[str, str]:
        """Driver: the indexed payload keys and their type (`keyword`, `integer`, …)."""
        raise NotImplementedError

    def _create_index(self, key: str, kind: str) -> None:
        """Driver: creates the payload index of `key` with type `kind`."""
        raise NotImplementedError

    def _ensure_indexes(self, stored: Manifest, fields: Sequence[IndexField]) -> None:
        existing = self._payload_schema()
        for key, kind in payload_index_keys(get_layout(stored.layout), fields).items():
            if key not in existing:
                self._create_index(key, kind)

    def _info_storage(self, layout: Layout, config: Mapping[str, Any]) -> dict[str, Any]:
        """Driver: the storage settings `info` reports."""
        return self._stored_storage(layout, config)

    def _disk_bytes(self) -> int | None:
        """Driver: the collection's size on disk (`None`: not on a local disk)."""
        raise NotImplementedError

    def info(self) -> CollectionInfo:
        """Reads back what the engine reports: vector and storage settings, payload indexes, points, size.

        Raises:
            CollectionNotFoundError: If the collection does not exist.
            ManifestError: If its manifest is damaged.
        """
        config = self._existing_config()
        manifest = self._known_manifest()
        layout = self._described_layout(manifest)  # an unmanaged collection: the layout given, or default
        dimensions, distance, _ = self._stored_vectors(layout, config)
        return self._collection_info(
            manifest, points=self.count(), dimensions=dimensions, distance=distance,
            storage=self._info_storage(layout, config), payload_indexes=self._payload_schema(),
            disk_bytes=self._disk_bytes(),
        )  # fmt: skip

    # -- points, written once over the driver's point and filter builders -------------------------------

    def _sparse_vector(self, indices: list[int], values: list[float]) -> Any:
        """Driver: the client's sparse vector."""
        raise NotImplementedError

    def _upsert(self, ids: list[str], vectors: list[dict[str, Any]], payloads: list[dict[str, Any]]) -> None:
        """Driver: writes the points (each vector a dict by name; `""` names the unnamed vector)."""
        raise NotImplementedError

    def _delete(self, filter: Any) -> None:
        """Driver: deletes the points that match the client's `filter`."""
        raise NotImplementedError

    def _upsert_points(
        self,
        chunks: Sequence[Chunk],
        vectors: NDArray[np.float32],
        sparse: list[SparseVector] | None,
        multivectors: list[MultiVector] | None,
    ) -> None:
        layout = self.layout
        named = [{layout.qdrant_vector: row} for row in np.asarray(vectors, dtype=np.float32).tolist()]
        state = self._sparse_state()
        if state is not None:
            name, encoder = state
            terms = sparse if encoder is None else encoder.embed_documents([c.text for c in chunks])
            assert terms is not None  # `upsert` checked that a learned collection gets its vectors
            for entry, vector in zip(named, terms, strict=True):
                entry[name] = self._sparse_vector(
                    np.asarray(vector.indices).tolist(), np.asarray(vector.values).tolist()
                )
        if multivectors is not None:
            name = self._multivector_of()
            for entry, matrix in zip(named, multivectors, strict=True):
                entry[name] = np.asarray(matrix, dtype=np.float32).tolist()
        self._upsert([c.id for c in chunks], named, [layout.record("qdrant", c, c.text) for c in chunks])

    def delete_chunks_from(self, doc_id: str, first_index: int) -> None:
        """Deletes the chunks of `doc_id` whose `chunk_index` is `first_index` or more."""
        layout, chunk_index = self.layout, float(first_index)
        doc = Condition(layout.qdrant_key(layout.doc_id_path("qdrant")), doc_id)
        later = Condition(layout.qdrant_key(layout.chunk_index_path("qdrant")), chunk_index, at_least=True)
        self._delete(self._must([self._condition(doc), self._condition(later)]))

    # -- searches, written once over the driver's requests (`_request`) and batches (`_run`) -------------

    def _nearest(self, vector: Any, using: str) -> Any:
        """Driver: the nearest-neighbour query of `vector` (a list, or a sparse vector) on vector `using`."""
        raise NotImplementedError

    def _dense_query(self, vector: NDArray[np.float32]) -> Any:
        """The nearest-neighbour query of the dense vector."""
        return self._nearest(
            np.asarray(vector, dtype=np.float32).reshape(-1).tolist(), self.layout.qdrant_vector
        )

    def _sparse_query(self, encoder: BM25Encoder | None, name: str, query: SparseQuery) -> Any:
        """The sparse query on the vector `name`: BM25 of the text, or the learned `SparseVector` itself."""
        vector = query if encoder is None or not isinstance(query, str) else encoder.embed_query(query)
        assert not isinstance(vector, str)  # `_require_sparse` matched the query to the collection
        indices, values = np.asarray(vector.indices).tolist(), np.asarray(vector.values).tolist()
        return self._nearest(self._sparse_vector(indices, values), name)

    def _multivector_of(self) -> str:
        manifest = self._vector_manifest()
        assert manifest is not None and manifest.multivector_vector is not None
        return manifest.multivector_vector

    def _has_ids(self, ids: Sequence[str]) -> Any:
        """Driver: the client's filter matching exactly the points `ids`."""
        raise NotImplementedError

    def _maxsim(self, name: str, query: MultiVector, ids: Sequence[str]) -> dict[str, float]:
        if not ids:
            return {}
        request = Query(self._nearest(query.tolist(), name), len(ids), self._has_ids(ids))
        (points,) = self._run([self._request(request)])
        return {str(point.id): float(point.score) for point in points}

    def _stored_extras(
        self, ids: Sequence[str]
    ) -> tuple[dict[str, SparseVector] | None, dict[str, MultiVector] | None]:
        manifest = self._vector_manifest()
        learned = manifest is not None and manifest.sparse == "learned" and manifest.sparse_vector
        multivector = None if manifest is None else manifest.multivector_vector
        names = [name for name in (learned or None, multivector) if name]
        if not names or not ids:
            return ({} if learned else None), ({} if multivector else None)
        from vllm_embed.learned_sparse import SparseVector

        records = self._retrieve(list(ids), payload=False, vector=names)
        sparse: dict[str, SparseVector] | None = {} if learned else None
        matrices: dict[str, MultiVector] | None = {} if multivector else None
        for record in records:
            stored = record.vector or {}
            if sparse is not None and (terms := stored.get(learned)) is not None:
                sparse[str(record.id)] = SparseVector.from_terms(terms.indices, terms.values)
            if matrices is not None and (rows := stored.get(multivector)) is not None:
                matrices[str(record.id)] = np.asarray(rows, dtype=np.float32)
        return sparse, matrices

    def _condition(self, condition: Condition) -> Any:
        """Driver: the client's field condition of one `Condition`."""
        raise NotImplementedError

    def _must(self, conditions: list[Any]) -> Any:
        """Driver: the client's filter requiring all of `conditions`."""
        raise NotImplementedError

    def _filter(self, filter: MetadataFilter | None) -> Any:
        """The client's filter of a metadata filter (`None` for no filter)."""
        conditions = filter_conditions(self.layout, filter)
        return self._must([self._condition(c) for c in conditions]) if conditions else None

    def _search_param_types(self) -> tuple[Any, Any]:
        """Driver: the client's `SearchParams` and `QuantizationSearchParams` classes (same fields)."""
        raise NotImplementedError

    def _search_params(self) -> Any:
        """The parameters of a dense search (`QdrantSearchSettings`; `None`: the engine's defaults)."""
        settings, quantization = self.search_settings, self._collection_quantization()
        if settings.ef is None and quantization is None:
            return None
        search_params, quantization_params = self._search_param_types()
        quantized = None
        if quantization is not None:
            oversampling = settings.oversampling_for(quantization)
            quantized = quantization_params(rescore=settings.rescore, oversampling=oversampling)
        return search_params(hnsw_ef=settings.ef, quantization=quantized)

    def _request(self, query: Query) -> Any:
        """Driver: the client's request object of `query`."""
        raise NotImplementedError

    def _run(self, requests: Sequence[Any]) -> list[Sequence[Any]]:
        """Driver: the points each request found (one call for the whole batch)."""
        raise NotImplementedError

    def _queries(
        self,
        vector: NDArray[np.float32] | None,
        query: SparseQuery | None,
        limit: int,
        filter: MetadataFilter | None,
    ) -> dict[str, list[Hit]]:
        """The hits of a dense search of `vector` and/or a sparse search of `query`, in one batch."""
        query_filter, queries = self._filter(filter), {}
        if vector is not None:
            queries["dense"] = Query(self._dense_query(vector), limit, query_filter, self._search_params())
        if query is not None:
            name, encoder = self._require_sparse(query)
            queries["sparse"] = Query(self._sparse_query(encoder, name, query), limit, query_filter)
        found = self._run([self._request(q) for q in queries.values()])
        return {branch: self._found(points, branch) for branch, points in zip(queries, found, strict=True)}

    def search(
        self, vector: NDArray[np.float32], top_k: int, filter: MetadataFilter | None = None
    ) -> list[Hit]:
        """Returns the `top_k` points closest to `vector` whose metadata matches `filter`."""
        return self._queries(vector, None, top_k, filter)["dense"]

    def sparse_search(
        self, query: SparseQuery, top_k: int, filter: MetadataFilter | None = None
    ) -> list[Hit]:
        """Returns the `top_k` points with the highest sparse score (BM25 of a text, or a learned product)."""
        return self._queries(None, query, top_k, filter)["sparse"]

    def _hybrid_candidates(
        self, query: SparseQuery, vector: NDArray[np.float32], limit: int, filter: MetadataFilter | None
    ) -> dict[str, list[Hit]]:
        return self._queries(vector, query, limit, filter)

    # -- stored vectors (verify), over the driver's scroll and vector update -------------------------------

    def _scroll(self, offset: Any, limit: int) -> tuple[Sequence[Any], Any]:
        """Driver: up to `limit` records (id and dense vector) from `offset`, and the next offset."""
        raise NotImplementedError

    def _update_vectors(self, vectors: Sequence[tuple[str, list[float]]]) -> None:
        """Driver: replaces the dense vector of each (point id, vector)."""
        raise NotImplementedError

    def _retrieve(self, ids: list[str], *, payload: bool, vector: bool | list[str]) -> Sequence[Any]:
        """Driver: the records of `ids` that exist, with payload and dense vector (or `vector` names)."""
        raise NotImplementedError

    def _record_vector(self, record: Any) -> NDArray[np.float32] | None:
        """The dense vector of a scrolled or retrieved record (`None`: it has none)."""
        vector = record.vector
        vector = vector.get(self.layout.qdrant_vector) if isinstance(vector, dict) else vector
        return None if vector is None else np.asarray(vector, np.float32)

    def fetch_chunks(self, ids: Sequence[str]) -> dict[str, Hit]:
        """Returns the stored text and metadata of each of `ids` that exists (as hits, score 0)."""
        records = self._retrieve(list(ids), payload=True, vector=False) if ids else []
        return {str(r.id): self.layout.hit("qdrant", str(r.id), 0.0, r.payload or {}) for r in records}

    def fetch_vectors(self, ids: Sequence[str]) -> dict[str, NDArray[np.float32]]:
        """Returns the stored dense vector of each of `ids` that exists."""
        records = self._retrieve(list(ids), payload=False, vector=True) if ids else []
        vectors = {str(r.id): self._record_vector(r) for r in records}
        return {point: vector for point, vector in vectors.items() if vector is not None}

    def iter_vectors(self, batch_size: int) -> Iterator[StoredVectors]:
        """Yields every stored point's id and vector, `batch_size` points at a time."""
        offset = None
        while True:
            records, offset = self._scroll(offset, batch_size)
            batch: StoredVectors = [(str(record.id), self._record_vector(record)) for record in records]
            if batch:
                yield batch
            if offset is None:
                return

    def replace_vectors(self, ids: Sequence[str], vectors: NDArray[np.float32]) -> None:
        """Replaces the vectors of existing points, leaving their payloads as they are."""
        if ids:
            self._update_vectors(list(zip(ids, np.asarray(vectors, dtype=np.float32).tolist(), strict=True)))


def quantization_name(config: object) -> str | None:
    """`{"scalar": {"type": "int8"}}` → `int8`, `{"binary": {...}}` → `binary`, other kinds by their key."""
    if not isinstance(config, dict) or not config:
        return None
    kind = next(iter(config))
    if kind == "scalar":
        return str((config[kind] or {}).get("type", "int8"))
    return str(kind)
