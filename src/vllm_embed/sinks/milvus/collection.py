"""The Milvus collection's lifecycle hooks: schema, indexes, adoption, settings, `info`."""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vllm_embed.sinks.base import Chunk, ClientSink, CollectionInfo, Layout, Manifest, directory_size
from vllm_embed.sinks.layouts import DEFAULT_LAYOUT, DOC_ID, KeyPath, get_layout
from vllm_embed.sinks.milvus.values import BM25_TERMS_FIELD, VARCHAR_MAX_BYTES, MilvusSparse, milvus_literal
from vllm_embed.sinks.milvus_index import (
    DEFAULT_INDEX,
    SCALAR_INDEX,
    SERVER_INDEXES,
    MilvusIndexError,
    build_params,
    check_supported,
)
from vllm_embed.sinks.names import milvus_name_problem
from vllm_embed.sinks.storage import IndexField, MilvusIndexSettings
from vllm_embed.sparse import TERM_TEXT_ANALYSIS, BM25Terms

if TYPE_CHECKING:
    from pymilvus import MilvusClient

_MANIFEST_PROPERTY = "vllm_embed.manifest"
JSON_MAX_BYTES = 65536
"""Largest JSON value (a JSON field, or a row's dynamic fields together) a Milvus server accepts."""
BM25_ANALYZER: dict[str, Any] = {
    "tokenizer": "standard",
    "filter": [
        "lowercase",
        {"type": "stemmer", "language": "english"},
        {"type": "stop", "stop_words": ["_english_"]},
    ],
}
"""Analyzer of the text field of a hybrid collection made before `bm25_terms` (still searched with it):
Unicode words, lower-cased, English stemming and stop words. Milvus Lite 3.2 applies the tokenizer and
lowercasing but neither the stemmer nor `_english_` stop words, which is why new collections index
`BM25Terms` text instead."""
_LEGACY_ANALYZER: dict[str, Any] = {"function": "BM25", "analyzer_params": BM25_ANALYZER}
"""What the manifest of a hybrid collection made before `bm25_terms` records: the text field's analyzer."""
BM25_TERMS_ANALYZER: dict[str, Any] = {"tokenizer": "standard"}
"""Analyzer of the `bm25_terms` field: its words are already analysed (base-36 token hashes)."""
_JSON_CAST = {"keyword": "VARCHAR", "integer": "DOUBLE", "float": "DOUBLE", "bool": "BOOL"}
"""`json_cast_type` of a JSON-path index per `IndexField.type` (Milvus keeps JSON numbers as doubles)."""
_INDEX_KEYS = frozenset({"index_type", "metric_type", "field_name", "index_name", "total_rows", "state"})
_INDEX_KEYS |= {"indexed_rows", "pending_index_rows", "index_state_fail_reason", "mmap.enabled"}


class MilvusCollection(ClientSink["MilvusClient"]):
    """The store hooks of `BaseSink` for a Milvus collection (schema, indexes, adoption, what it reports)."""

    store_label = "Milvus collection"
    _client: MilvusClient | None
    index_settings: MilvusIndexSettings
    text_max_bytes: int
    _target: str
    _loaded: bool
    _search_params: dict[str, Any] | None

    # -- store hooks of the lifecycle (`BaseSink`) -----------------------------------------------------

    def _name_problem(self, name: str) -> str | None:
        return milvus_name_problem(name)

    def _constructor_text(self) -> str:
        argument = "client=client" if self._target == "client" else f"uri={self._target!r}"
        return f"MilvusSink({self.collection!r}, {argument})"

    def _manifest_location(self) -> str:
        return f"Milvus collection property {_MANIFEST_PROPERTY!r}"

    def _describe(self, missing_ok: bool = False) -> dict[str, Any] | None:
        """`describe_collection`; `None` for a missing collection when `missing_ok`."""
        if missing_ok and (
            self._store_absent() or not self._on("collection lookup", self.client.has_collection)
        ):
            return None
        info: dict[str, Any] = self._on("collection lookup", self.client.describe_collection)
        return info

    def _read_stored(self) -> tuple[bool, object]:
        info = self._describe(missing_ok=True)
        return (
            (False, None) if info is None else (True, (info.get("properties") or {}).get(_MANIFEST_PROPERTY))
        )

    def _stored_dimensions(self, layout: Layout) -> int | None:
        fields = (self._describe(missing_ok=True) or {}).get("fields", [])
        vector = next((field for field in fields if field.get("name") == layout.milvus_vector), None)
        return None if vector is None else int((vector.get("params") or {})["dim"])

    def _store_manifest(self, manifest: Manifest) -> None:
        properties = {_MANIFEST_PROPERTY: manifest.model_dump_json()}
        self._on("manifest update", self.client.alter_collection_properties, properties=properties)

    def check_document_id(self, doc_id: str) -> None:
        """Raises `ValueError` naming the limit when `doc_id` is longer than a Milvus server's fields hold.

        Sizes are UTF-8 bytes: the `doc_id` VARCHAR field, and in the framework layouts the row's dynamic
        fields together (one JSON value; the LlamaIndex layout keeps the id there three more times).
        """
        layout = self.layout
        size = len(doc_id.encode("utf-8"))
        for name, type_name, kwargs in layout.milvus_fields(1, self.text_max_bytes):
            if name == DOC_ID and type_name == "VARCHAR" and size > kwargs["max_length"]:
                raise ValueError(
                    f"document id of {size} bytes is longer than Milvus's {name!r} field allows "
                    f"({kwargs['max_length']} bytes, UTF-8): use a shorter id"
                )
        if layout.milvus_dynamic:
            probe = Chunk(id=str(uuid.UUID(int=0)), doc_id=doc_id, chunk_index=0, text="")
            dynamic = {
                k: v for k, v in layout.record("milvus", probe, "").items() if k not in self._field_names
            }
            dynamic_size = len(json.dumps(dynamic, ensure_ascii=False).encode("utf-8"))
            if dynamic_size > JSON_MAX_BYTES:
                raise ValueError(
                    f"document id of {size} bytes makes the {layout.name} layout's dynamic fields "
                    f"{dynamic_size} bytes, over Milvus's JSON limit of {JSON_MAX_BYTES} bytes: "
                    "use a shorter id"
                )

    def _with_stored_sparse(self, manifest: Manifest) -> Manifest:
        layout, info = get_layout(manifest.layout), self._describe() or {}
        outputs = {name for function in info.get("functions", []) for name in function["output_field_names"]}
        stored = bool(layout.milvus_sparse) and layout.milvus_sparse in outputs
        manifest = self._hybrid_from_store(manifest, stored)
        inputs = {name for function in info.get("functions", []) for name in function["input_field_names"]}
        if stored and BM25_TERMS_FIELD not in inputs:  # made before the BM25 terms: the server's analyzer
            manifest = manifest.model_copy(update={"sparse_analyzer": _LEGACY_ANALYZER})
        return manifest

    def _layout_sparse(self, layout: Layout) -> str:
        return layout.milvus_sparse

    def _multivector_refusal(self) -> str | None:
        return (
            "Milvus keeps no per-token vectors here: Milvus Lite 3.2 creates an ARRAY of STRUCT with a "
            "vector but cannot index it (create_index: unknown field), and vllm-embed does not write "
            "Milvus 2.6 servers' embedding lists yet; store the multi-vector collection in Qdrant "
            "(QdrantEdgeSink, --qdrant-edge PATH) or leave out the multi-vector model"
        )

    def _sparse_analyzer(self) -> dict[str, Any]:
        return {"function": "BM25", **BM25Terms().describe()}

    def _sparse_of(self, manifest: Manifest | None) -> MilvusSparse | None:
        if manifest is None or not manifest.sparse_vector:
            return None
        if manifest.sparse == "learned":
            return MilvusSparse(manifest.sparse_vector, None, learned=True)
        recorded = manifest.sparse_analyzer or {}
        if recorded.get("analysis") != TERM_TEXT_ANALYSIS:
            return MilvusSparse(manifest.sparse_vector, None)
        return MilvusSparse(manifest.sparse_vector, BM25Terms.from_manifest(recorded, self.collection))

    # -- storage settings -----------------------------------------------------------------------------

    @functools.cached_property
    def _lite(self) -> bool:
        """Whether the store is Milvus Lite: a file, or the `milvus_lite server` process (by its version)."""
        version = self._call("server version", self.client.get_server_version)
        return str(version).lower().startswith("milvus_lite")

    def _check_index(self, index: str, search_params: Mapping[str, Any] | None) -> None:
        """Refuses an index type (requested, or the collection's) or parameter this store does not build.

        `search_params` `None`: not known to apply yet (the default type follows an existing collection's).
        """
        requested = self.index_settings
        params = requested.index_params if index == requested.index else {}
        if search_params is None:
            search_params = {} if index == DEFAULT_INDEX else requested.search_params
        check_supported(index, params, search_params, self._lite)

    def _storage_requested(self) -> dict[str, Any]:
        return {"index": self.index_settings.index, "index_params": self.index_settings.index_params}

    def _storage_defaults(self) -> dict[str, Any]:
        return {"index": DEFAULT_INDEX, "index_params": {}}

    def check_storage(self, stored: Manifest) -> None:
        """As `BaseSink.check_storage`, and refuses settings or index fields this store cannot use.

        Raises:
            ManifestMismatchError: Naming each differing setting, both sides, and the fix.
            MilvusIndexError: For search parameters or index fields this store cannot use.
        """
        super().check_storage(stored)
        storage = stored.storage or {}
        index = self.index_settings.index
        if index == DEFAULT_INDEX:
            index = str(storage.get("index", DEFAULT_INDEX))
        if index in SERVER_INDEXES:  # a hand-made collection's type may be one this sink does not know
            self._check_index(index, self.index_settings.search_params)
        self._index_targets(get_layout(stored.layout), self.index_fields)

    def check_creation(self) -> None:
        """Refuses `index_fields` this store cannot index in a new collection (`MilvusIndexError`)."""
        self._index_targets(self._layout or get_layout(DEFAULT_LAYOUT), self.index_fields)

    def _index_targets(
        self, layout: Layout, index_fields: Iterable[IndexField]
    ) -> dict[IndexField, tuple[str, str, dict[str, Any]]]:
        """Where each of `index_fields` is indexed: (field, index name, params); else `MilvusIndexError`."""
        fields = frozenset(name for name, _, _ in layout.milvus_fields(1, self.text_max_bytes))
        targets: dict[IndexField, tuple[str, str, dict[str, Any]]] = {}
        for field in index_fields:
            path = layout.metadata_path("milvus", field.name)
            if len(path) == 1 and path[0] in fields:
                targets[field] = (path[0], path[0], {})
                continue
            if self._lite:
                where = f"the JSON field {path[0]!r}" if len(path) > 1 else "dynamic fields (JSON)"
                raise MilvusIndexError(
                    f"Milvus Lite cannot index metadata field {field.name!r}: the {layout.name} layout "
                    f"keeps metadata in {where}, and Milvus Lite builds scalar indexes on schema fields "
                    "only; leave out --index-field (index_fields=), or use a Milvus server (2.5.11 or later "
                    "indexes JSON paths)"
                )
            # A key of the JSON field: `metadata["lang"]`; a dynamic field: the key names field and path.
            head, json_path = (path[0], self._field(path)) if len(path) > 1 else (field.name, field.name)
            params = {"json_path": json_path, "json_cast_type": _JSON_CAST[field.type]}
            targets[field] = (head, "meta_" + re.sub(r"\W", "_", field.name), params)
        return targets

    def _scalar_indexes(self) -> dict[str, dict[str, Any]]:
        """The collection's indexes other than on vectors, by index name (`describe_index` of each)."""
        indexes = {}
        for name in self._on("index lookup", self.client.list_indexes):
            described = self._on("index lookup", self.client.describe_index, name)
            if described and str(described.get("metric_type", "NONE")).upper() in ("", "NONE"):
                indexes[str(name)] = described
        return indexes

    def _vector_index(self, vector: str) -> dict[str, Any] | None:
        """`describe_index` of the index on the dense vector field `vector` (`None` without one)."""
        for name in self._on("index lookup", self.client.list_indexes, vector):
            described = self._on("index lookup", self.client.describe_index, name)
            if described and described.get("field_name", vector) == vector:
                return dict(described)
        return None

    def _add_indexes(self, specs: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        """Creates scalar indexes on the existing collection (released and loaded again if the store asks)."""
        if not specs:
            return
        from pymilvus import MilvusClient

        index_params = _with_scalar_indexes(MilvusClient.prepare_index_params(), specs)
        try:
            self._on("index creation", self.client.create_index, index_params)
        except Exception as exc:
            if "load" not in str(exc).lower():
                raise
            self._on("collection release", self.client.release_collection)
            self._on("index creation", self.client.create_index, index_params)
            self._on("collection load", self.client.load_collection)

    def _ensure_doc_id_index(self) -> dict[str, dict[str, Any]]:
        """Indexes `doc_id` unless it is; returns the scalar indexes as `_scalar_indexes` read them before."""
        present = self._scalar_indexes()
        if not any(index.get("field_name") == DOC_ID for index in present.values()):
            self._add_indexes([(DOC_ID, DOC_ID, {})])
        return present

    def _use_search_params(self, stored: Manifest) -> None:
        """Searches with the search parameters given, else those the collection recorded."""
        recorded = (stored.storage or {}).get("search_params") or {}
        self._search_params = dict(self.index_settings.search_params or recorded)

    def _dense_params(self) -> dict[str, Any]:
        """Search parameters of a dense search: the metric and the index's search parameters."""
        if self._search_params is None:
            self._search_params = dict(self.index_settings.search_params)
            stored = self._known_manifest()
            if stored is not None:
                self._use_search_params(stored)
        params = {"params": dict(self._search_params)} if self._search_params else {}
        return {"metric_type": "COSINE", **params}

    def _prepared(self, stored: Manifest) -> None:
        self._use_search_params(stored)

    def _ensure_indexes(self, stored: Manifest, fields: Sequence[IndexField]) -> None:
        self._ensure_loaded()
        present = self._ensure_doc_id_index() if stored.storage is None else self._scalar_indexes()
        targets = self._index_targets(get_layout(stored.layout), fields)
        self._add_indexes([target for target in targets.values() if target[1] not in present])

    def _create(self, manifest: Manifest) -> Manifest:
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        layout, settings = self.layout, self.index_settings
        self._check_index(settings.index, settings.search_params)
        targets = self._index_targets(layout, self.index_fields)
        params = build_params(settings.index, settings.index_params, manifest.dimensions)
        storage = {**settings.model_dump(), "index_params": params}
        storage["index_fields"] = [field.to_spec() for field in targets]
        stored = manifest.model_copy(update={"storage": storage})
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=layout.milvus_dynamic)
        for name, type_name, kwargs in layout.milvus_fields(manifest.dimensions, self.text_max_bytes):
            schema.add_field(name, getattr(DataType, type_name), **kwargs)
        index_params = MilvusClient.prepare_index_params()
        index_params.add_index(
            field_name=layout.milvus_vector, index_type=settings.index, metric_type="COSINE", params=params
        )
        index_params.add_index(field_name=DOC_ID, index_type=SCALAR_INDEX)
        _with_scalar_indexes(index_params, targets.values())
        if (sparse := stored.sparse_vector) and stored.sparse == "learned":
            schema.add_field(sparse, DataType.SPARSE_FLOAT_VECTOR)
            index_params.add_index(field_name=sparse, index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
        elif sparse:
            schema.add_field(
                BM25_TERMS_FIELD, DataType.VARCHAR, max_length=VARCHAR_MAX_BYTES, enable_analyzer=True,
                analyzer_params=BM25_TERMS_ANALYZER,
            )  # fmt: skip
            schema.add_field(sparse, DataType.SPARSE_FLOAT_VECTOR)
            bm25 = FunctionType.BM25
            schema.add_function(
                Function("bm25", bm25, input_field_names=[BM25_TERMS_FIELD], output_field_names=[sparse])
            )
            index_params.add_index(field_name=sparse, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        self._on(
            "collection creation", self.client.create_collection, schema=schema,
            index_params=index_params, consistency_level="Strong",
            properties={_MANIFEST_PROPERTY: stored.model_dump_json()},
        )  # fmt: skip
        self._loaded = True
        return stored

    # -- adopting a collection vllm-embed did not create ------------------------------------------------

    def _adopt(self, manifest: Manifest) -> Manifest:
        layout, info = self.layout, self._describe() or {}
        fields = {str(field["name"]): field for field in info.get("fields", [])}
        vector = fields.get(layout.milvus_vector)
        dimensions = None if vector is None else int((vector.get("params") or {}).get("dim", 0))
        described = self._vector_index(layout.milvus_vector) if vector is not None else None
        metric = None if described is None else str(described.get("metric_type", "")).lower() or None
        self.check_adoptable(dimensions, metric, manifest)
        self._check_adopted_fields(
            layout, fields, bool(info.get("enable_dynamic_field")), manifest.dimensions
        )
        adopted = self._with_stored_sparse(manifest)
        self.check_hybrid(adopted)
        index = str((described or {}).get("index_type", DEFAULT_INDEX)).upper()
        known_params = SERVER_INDEXES.get(index, (frozenset(), frozenset()))[0]
        read_back = {k: v for k, v in _index_params(described or {}).items() if k in known_params}
        search = self.index_settings.search_params
        storage = {"index": index, "index_params": read_back, "search_params": search, "index_fields": []}
        adopted = adopted.model_copy(update={"storage": storage, "adopted": True})
        self.check_storage(adopted)
        present = self._ensure_doc_id_index()
        targets = self._index_targets(layout, self.index_fields)
        self._add_indexes([target for target in targets.values() if target[1] not in present])
        storage = {**storage, "index_fields": [field.to_spec() for field in targets]}
        adopted = adopted.model_copy(update={"storage": storage})
        self._store_manifest(adopted)
        self._layout = layout
        self._on("collection load", self.client.load_collection)
        self._loaded = True
        return adopted

    def _check_adopted_fields(
        self, layout: Layout, fields: Mapping[str, Mapping[str, Any]], dynamic: bool, dimensions: int
    ) -> None:
        """Refuses a collection that lacks one of the layout's fields, or has it with another type."""
        problems = []
        for name, type_name, kwargs in layout.milvus_fields(dimensions, self.text_max_bytes):
            field, needs = fields.get(name), f"the {layout.name} layout needs {type_name}"
            if field is None:
                problems.append(f"field {name!r}: collection has none, {needs}")
                continue
            stored_type = getattr(field.get("type"), "name", str(field.get("type")))
            if stored_type != type_name:
                problems.append(f"field {name!r}: collection has {stored_type}, {needs}")
            elif kwargs.get("is_primary") and not field.get("is_primary"):
                problems.append(
                    f"field {name!r}: collection has it as a plain field, the layout needs the primary key"
                )
            elif name == layout.milvus_text:
                stored_max = int((field.get("params") or {}).get("max_length", self.text_max_bytes))
                self.text_max_bytes = min(self.text_max_bytes, stored_max)  # texts are cut to fit the field
        if layout.milvus_dynamic and not dynamic:
            problems.append(
                f"dynamic fields: collection has them off, the {layout.name} layout keeps metadata in them"
            )
        fix = "adopt it with the layout its fields follow (--layout), or ingest into a new collection"
        self._refuse("cannot be adopted", problems, fix)

    # -- what the store reports -----------------------------------------------------------------------

    def info(self) -> CollectionInfo:
        """As `BaseSink.info`: the collection's schema, indexes and row count as the store reports them."""
        state = self.state()
        if state.missing:
            raise self._not_found()
        manifest = state.manifest
        layout = self._described_layout(manifest)
        fields = (self._describe() or {}).get("fields", [])
        vectors = [f for f in fields if getattr(f.get("type"), "name", "") == "FLOAT_VECTOR"]
        vector = next(
            (f for f in vectors if f["name"] == layout.milvus_vector), vectors[0] if vectors else None
        )
        dimensions = distance = None
        storage: dict[str, Any] = {}
        if vector is not None:
            dimensions = int((vector.get("params") or {}).get("dim", 0)) or None
            index = self._vector_index(str(vector["name"]))
            if index is not None:
                distance = str(index.get("metric_type", "")).lower() or None
                storage = {"index": index.get("index_type"), "index_params": _index_params(index)}
        payload_indexes = {
            str(_index_params(i).get("json_path") or i.get("field_name")): str(i.get("index_type"))
            for i in self._scalar_indexes().values()
        }
        stats = self._on("count", self.client.get_collection_stats)
        lite = "://" not in self._target and self._target != "client"  # a Milvus Lite directory to measure
        return self._collection_info(
            manifest, points=int(stats.get("row_count", 0)), dimensions=dimensions, distance=distance,
            storage=storage, payload_indexes=payload_indexes,
            disk_bytes=directory_size(Path(self._target, "collections", self.collection)) if lite else None,
        )  # fmt: skip

    def collection_names(self) -> list[str]:
        """Returns the names of every collection in this sink's store, sorted."""
        if self._store_absent():
            return []
        return sorted(str(name) for name in self._call("collection list", self.client.list_collections))

    def _ensure_loaded(self) -> None:
        """Loads the collection once (Milvus searches and queries only loaded ones)."""
        if not self._loaded:
            self._on("collection load", self.client.load_collection)
            self._loaded = True

    @functools.cached_property
    def _field_names(self) -> frozenset[str]:
        """Names of the layout's schema fields (any other top-level key is a dynamic field)."""
        return frozenset(name for name, _, _ in self.layout.milvus_fields(1, self.text_max_bytes))

    def _field(self, path: KeyPath) -> str:
        """Returns the Milvus expression for a stored value: a field, a JSON key, or a dynamic field."""
        if len(path) == 1:
            return path[0] if path[0] in self._field_names else f"$meta[{milvus_literal(path[0])}]"
        head, *keys = path
        return head + "".join(f"[{milvus_literal(key)}]" for key in keys)


def _with_scalar_indexes(index_params: Any, specs: Iterable[tuple[str, str, dict[str, Any]]]) -> Any:
    """`index_params` with a scalar index per (field name, index name, params)."""
    for field_name, index_name, params in specs:
        index_params.add_index(
            field_name=field_name, index_type=SCALAR_INDEX, index_name=index_name, params=params
        )
    return index_params


def _index_params(described: Mapping[str, Any]) -> dict[str, Any]:
    """The build parameters in a `describe_index` answer (a server lists them beside its own keys)."""
    nested = described.get("params")
    if isinstance(nested, Mapping):
        return dict(nested)
    return {k: v for k, v in described.items() if k not in _INDEX_KEYS}
