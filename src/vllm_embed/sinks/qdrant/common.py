"""The Qdrant driver body, whichever client runs it: settings, points, filters, queries, indexes, adoption.

`QdrantSink` (qdrant-client) and `QdrantEdgeSink` (the embedded engine, qdrant-edge-py) build their
requests from different classes; every decision behind them (which payload paths are indexed and with what
type, what a point holds, how a metadata filter becomes conditions, the dense / BM25 / fused searches, the
search parameters of a quantized collection, what the manifest records) is made once here. A client module
only implements the `Driver:` methods: how its client builds and runs each request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vllm_embed.errors import StorageSettingsError as StorageSettingsError
from vllm_embed.sinks.base import (
    UNKNOWN,
    BaseSink,
    Chunk,
    Hit,
    Manifest,
    MetadataFilter,
    MetadataValue,
    StoredVectors,
    check_filter,
)
from vllm_embed.sinks.layouts import Layout, get_layout
from vllm_embed.sinks.manifest import ManifestMismatchError
from vllm_embed.sinks.names import qdrant_name_problem
from vllm_embed.sinks.storage import IndexField, QdrantCollectionSettings, QdrantSearchSettings, validated
from vllm_embed.sparse import BM25Encoder


def collection_settings(owner: str, **values: Any) -> QdrantCollectionSettings:
    """`validated(QdrantCollectionSettings, ...)`: the creation settings of a Qdrant collection."""
    return validated(QdrantCollectionSettings, owner, **values)


def search_settings(owner: str, **values: Any) -> QdrantSearchSettings:
    """`validated(QdrantSearchSettings, ...)`: the search settings of a Qdrant sink."""
    return validated(QdrantSearchSettings, owner, **values)


def payload_index_keys(layout: Layout, fields: Iterable[IndexField]) -> dict[str, str]:
    """Payload key → index type (`keyword`, `integer`, `float`, `bool`) of every payload index to create.

    The document id (where the layout keeps it, keyword) comes first: the resume check and
    `delete_chunks_from` filter on it. Metadata fields are indexed where the layout keeps metadata.
    """
    keys = {layout.qdrant_key(layout.doc_id_path("qdrant")): "keyword"}
    for field in fields:
        keys.setdefault(layout.qdrant_key(layout.metadata_path("qdrant", field.name)), field.type)
    return keys


@dataclass(frozen=True)
class Condition:
    """One condition of a Qdrant metadata filter: `key` equals `value`.

    A float is matched as the range `[value, value]` (Qdrant matches only keywords, integers and booleans
    by value).
    """

    key: str
    value: MetadataValue
    at_least: bool = False
    """Match every value from `value` on (the range `[value, ∞)`)."""

    @property
    def is_range(self) -> bool:
        """Whether the condition is a range (a float value, or `at_least`) rather than a match."""
        return self.at_least or isinstance(self.value, float)

    @property
    def upper(self) -> MetadataValue | None:
        """The range's upper bound (`None`: open)."""
        return None if self.at_least else self.value


@dataclass(frozen=True)
class Query:
    """One query of a search, in the driver's terms: `_request` turns it into the client's request."""

    query: Any
    """The driver's dense or sparse query."""
    limit: int
    filter: Any
    params: Any = None


def filter_conditions(layout: Layout, filter: MetadataFilter | None) -> list[Condition]:
    """The conditions (all must hold) of a metadata filter, keyed where the layout stores metadata.

    Raises:
        ValueError: If the filter is malformed (see `check_filter`) or a key cannot be addressed.
    """
    return [
        Condition(layout.qdrant_key(layout.metadata_path("qdrant", key)), value)
        for key, value in check_filter(filter).items()
    ]


class QdrantBaseSink(BaseSink):
    """What `QdrantSink` and `QdrantEdgeSink` do alike: Qdrant payloads, BM25 sparse vectors, settings.

    Subclasses set `settings` in their constructor. Collection names follow the Qdrant server's rules.
    """

    settings: QdrantCollectionSettings
    search_settings: QdrantSearchSettings
    store_label = "Qdrant collection"

    def _use_settings(self, creation: Mapping[str, Any], search: Mapping[str, Any]) -> None:
        """Validates and keeps the creation and search settings (`QdrantCollectionSettings`, …)."""
        owner = type(self).__name__
        self.settings = collection_settings(owner, **creation)
        """Creation settings of the collection (applied when this sink creates it)."""
        self.search_settings = search_settings(owner, **search)
        """Settings applied to every search."""
        self._quantization: str | None = UNKNOWN

    def _name_problem(self, name: str) -> str | None:
        return qdrant_name_problem(name)

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

    def _sparse_of(self, manifest: Manifest | None) -> tuple[str, BM25Encoder] | None:
        if manifest is None or not manifest.sparse_vector:
            return None
        encoder = BM25Encoder.from_manifest(manifest.sparse_analyzer or {}, self.collection)
        return manifest.sparse_vector, encoder

    def _hits(self, points: Sequence[Any], found: Mapping[str, set[str] | None]) -> list[Hit]:
        """Builds hits; `found` maps each search to the ids it found (`None`: every hit)."""
        hits = []
        for point in points:
            hit = self.layout.hit("qdrant", str(point.id), point.score, point.payload or {})
            by = tuple(branch for branch, ids in found.items() if ids is None or hit.id in ids)
            hits.append(dataclasses.replace(hit, found_by=by))
        return hits

    # -- the collection's configuration, read the same way from either engine ---------------------------

    def _config(self) -> dict[str, Any] | None:
        """Driver: the collection's configuration in the engine's JSON shape (`None`: no collection).

        `vectors` by name (`""` for the unnamed vector: `size`, `distance`, `on_disk`, `memory`,
        `hnsw_config`, `quantization_config`), `sparse_vectors` (`modifier`), the collection's `hnsw_config`
        and `quantization_config`, and a server's `shard_number` and `replication_factor`.
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
        self, layout: Layout, config: Mapping[str, Any] | None = None
    ) -> tuple[int | None, str | None, dict[str, str | None]]:
        """The dense vector's size and distance where `layout` keeps it, and each sparse one's modifier.

        Size and distance are `None` when there is no vector there; modifiers are lower case (`"idf"`).
        """
        config = self._existing_config() if config is None else config
        sparse = {
            name: None if params.get("modifier") is None else str(params["modifier"]).lower()
            for name, params in (config.get("sparse_vectors") or {}).items()
        }
        dense = self._dense_config(layout, config)
        if dense is None:
            return None, None, sparse
        return int(dense["size"]), str(dense.get("distance", "")).lower(), sparse

    def _stored_storage(self, layout: Layout, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The collection's creation settings as the engine keeps them (`QdrantCollectionSettings` terms).

        Product quantization, which vllm-embed does not create, is reported as `"product"`.
        """
        config = self._existing_config() if config is None else config
        dense = self._dense_config(layout, config) or {}
        own = {key: value for key, value in (dense.get("hnsw_config") or {}).items() if value is not None}
        hnsw = {**(config.get("hnsw_config") or {}), **own}
        return {
            "quantization": quantization_name(
                dense.get("quantization_config") or config.get("quantization_config")
            ),
            "on_disk": bool(dense.get("on_disk")) or dense.get("memory") == "cold",
            "hnsw_m": hnsw.get("m"),
            "hnsw_ef_construct": hnsw.get("ef_construct"),
            "shard_number": config.get("shard_number"),
            "replication_factor": config.get("replication_factor"),
        }

    def check_storage(self, stored: Manifest) -> None:
        """Refuses creation settings that differ from the existing collection's (`stored`).

        When the manifest records no storage settings (a collection from before they were recorded, or a
        repaired manifest), the ones the engine reports are compared.

        Raises:
            ManifestMismatchError: Naming each differing setting, both sides, and the fix.
        """
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
                self._quantization = self._stored_storage(self._described_layout(manifest), config)[
                    "quantization"
                ]
        return self._quantization

    # -- adopting a collection vllm-embed did not create ----------------------------------------------

    def _adopt(self, manifest: Manifest) -> Manifest:
        layout = self.layout
        dimensions, distance, sparse = self._stored_vectors(layout)
        self.check_adoptable(dimensions, distance, manifest)
        name = layout.qdrant_sparse_vector
        has_sparse = bool(name) and sparse.get(name) == "idf"
        if self._hybrid and not has_sparse:
            raise ManifestMismatchError(
                f"collection {self.collection!r} cannot be adopted as hybrid: it has no sparse vector "
                f"{self._sparse_name(layout)!r} with the IDF modifier, which the {layout.name} layout keeps "
                "BM25 vectors in; adopt it without --hybrid (dense only), or ingest into a new collection"
            )
        if has_sparse and self._hybrid is None:
            self._hybrid = True  # hybrid left out follows the collection
        payload_index_keys(layout, self.index_fields)  # a bad key fails before writing
        storage = {**self._stored_storage(layout), "index_fields": [f.to_spec() for f in self.index_fields]}
        adopted = self._new_manifest(manifest).model_copy(update={"adopted": True, "storage": storage})
        self.check_storage(adopted)
        self._ensure_indexes(adopted, self.index_fields)
        self._store_manifest(adopted)
        return adopted

    def _with_stored_sparse(self, manifest: Manifest) -> Manifest:
        layout = get_layout(manifest.layout)
        has_sparse = layout.qdrant_sparse_vector in self._stored_vectors(layout)[2]
        return self._hybrid_from_store(manifest, has_sparse)

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

    def upsert(self, chunks: Sequence[Chunk], vectors: NDArray[np.float32]) -> None:
        """Inserts or replaces the points of `chunks` (with their BM25 vector in a hybrid collection)."""
        if not chunks:
            return
        layout = self.layout
        named = [{layout.qdrant_vector: row} for row in np.asarray(vectors, dtype=np.float32).tolist()]
        sparse = self._sparse_state()
        if sparse is not None:
            name, encoder = sparse
            for entry, vector in zip(named, encoder.embed_documents([c.text for c in chunks]), strict=True):
                entry[name] = self._sparse_vector(vector.indices, vector.values)
        self._upsert([c.id for c in chunks], named, [layout.record("qdrant", c, c.text) for c in chunks])

    def delete_chunks_from(self, doc_id: str, first_index: int) -> None:
        """Deletes the chunks of `doc_id` whose `chunk_index` is `first_index` or more."""
        layout = self.layout
        conditions = [
            Condition(layout.qdrant_key(layout.doc_id_path("qdrant")), doc_id),
            Condition(
                layout.qdrant_key(layout.chunk_index_path("qdrant")), float(first_index), at_least=True
            ),
        ]
        self._delete(self._must([self._condition(c) for c in conditions]))

    # -- searches, written once over the driver's requests ----------------------------------------------
    # A driver (`QdrantSink`, `QdrantEdgeSink`) builds its client's request objects (`_request`), runs a
    # batch of them (`_run`), and makes the dense and BM25 queries and the filter.

    def _nearest(self, vector: Any, using: str) -> Any:
        """Driver: the nearest-neighbour query of `vector` (a list, or a sparse vector) on vector `using`."""
        raise NotImplementedError

    def _dense_query(self, vector: NDArray[np.float32]) -> Any:
        """The nearest-neighbour query of the dense vector."""
        return self._nearest(
            np.asarray(vector, dtype=np.float32).reshape(-1).tolist(), self.layout.qdrant_vector
        )

    def _sparse_query(self, encoder: BM25Encoder, name: str, query: str) -> Any:
        """The BM25 query of `query`'s text on the sparse vector `name`."""
        vector = encoder.embed_query(query)
        return self._nearest(self._sparse_vector(vector.indices, vector.values), name)

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

    def search(
        self, vector: NDArray[np.float32], top_k: int, filter: MetadataFilter | None = None
    ) -> list[Hit]:
        """Returns the `top_k` points closest to `vector` whose metadata matches `filter`."""
        query = Query(self._dense_query(vector), top_k, self._filter(filter), self._search_params())
        return self._hits(self._run([self._request(query)])[0], {"dense": None})

    def sparse_search(self, query: str, top_k: int, filter: MetadataFilter | None = None) -> list[Hit]:
        """Returns the `top_k` points with the highest BM25 score for the text `query`.

        Raises:
            ValueError: If the collection is dense-only.
        """
        name, encoder = self._require_sparse()
        sparse = Query(self._sparse_query(encoder, name, query), top_k, self._filter(filter))
        return self._hits(self._run([self._request(sparse)])[0], {"sparse": None})

    def _hybrid_candidates(
        self, query: str, vector: NDArray[np.float32], limit: int, filter: MetadataFilter | None
    ) -> dict[str, list[Hit]]:
        """The dense and BM25 candidates, in one batch of two queries."""
        name, encoder = self._require_sparse()
        query_filter = self._filter(filter)
        dense, sparse = self._run(
            [
                self._request(Query(self._dense_query(vector), limit, query_filter, self._search_params())),
                self._request(Query(self._sparse_query(encoder, name, query), limit, query_filter)),
            ]
        )
        return {"dense": self._hits(dense, {"dense": None}), "sparse": self._hits(sparse, {"sparse": None})}

    # -- stored vectors (verify), over the driver's scroll and vector update -------------------------------

    def _scroll(self, offset: Any, limit: int) -> tuple[Sequence[Any], Any]:
        """Driver: up to `limit` records (id and dense vector) from `offset`, and the next offset."""
        raise NotImplementedError

    def _update_vectors(self, vectors: Sequence[tuple[str, list[float]]]) -> None:
        """Driver: replaces the dense vector of each (point id, vector)."""
        raise NotImplementedError

    def _retrieve(self, ids: list[str], *, payload: bool, vector: bool) -> Sequence[Any]:
        """Driver: the records of `ids` that exist, with their payload and/or dense vector."""
        raise NotImplementedError

    def _record_vector(self, record: Any) -> NDArray[np.float32] | None:
        """The dense vector of a scrolled or retrieved record (`None`: it has none)."""
        vector = (
            record.vector.get(self.layout.qdrant_vector) if isinstance(record.vector, dict) else record.vector
        )
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
        """Yields every stored point's id and vector, `batch_size` points at a time (a scroll)."""
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
