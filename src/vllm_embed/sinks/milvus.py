"""Milvus sink: a Milvus Lite file or a Milvus server, through the same client calls.

Over ~500 lines because it is the whole Milvus driver of `BaseSink` (schema and index creation, adoption
checks of a hand-made schema, JSON-path index targets, expressions, BM25 searches); the planned split is
`milvus/` (driver, indexes, expressions), see the architecture notes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from vllm_embed._optional import require
from vllm_embed._utils import one_line
from vllm_embed.errors import StoreBusyError
from vllm_embed.sinks.base import (
    BaseSink,
    Chunk,
    CollectionInfo,
    Hit,
    Layout,
    Manifest,
    ManifestMismatchError,
    MetadataFilter,
    MetadataValue,
    StoredVectors,
    check_filter,
    is_transient_grpc_error,
)
from vllm_embed.sinks.busy import held_elsewhere, holders_text
from vllm_embed.sinks.layouts import DOC_ID, KeyPath, get_layout
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
VARCHAR_MAX_BYTES = 65535
"""Largest VARCHAR a Milvus server accepts; longer texts are cut to fit (the vector still covers all)."""
JSON_MAX_BYTES = 65536
"""Largest JSON value (a JSON field, or a row's dynamic fields together) a Milvus server accepts."""
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_TRANSIENT_GRPC_CODES = {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
_UNKNOWN: Any = object()
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
BM25_TERMS_FIELD = "bm25_terms"
"""VARCHAR field of a hybrid collection holding `BM25Terms` text, which the BM25 Function indexes."""
BM25_TERMS_ANALYZER: dict[str, Any] = {"tokenizer": "standard"}
"""Analyzer of the `bm25_terms` field: its words are already analysed (base-36 token hashes)."""
_TERMS_SEPARATOR = " "


@dataclasses.dataclass(frozen=True)
class MilvusSparse:
    """What a BM25 search of a hybrid Milvus collection needs.

    Attributes:
        field: The sparse field the BM25 Function fills.
        terms: The analysis of the `bm25_terms` field the function reads, or `None` for a collection made
            before it (its function reads the text field with the server's analyzer, `BM25_ANALYZER`).
    """

    field: str
    terms: BM25Terms | None


def terms_text(terms: BM25Terms, text: str) -> str:
    """`terms.document_text(text)` cut at a word to fit the `bm25_terms` VARCHAR (65,535 bytes).

    At about 8 bytes a token this keeps the first ~8,000 analysed tokens, far beyond a chunk; a longer
    text is still embedded whole, only its BM25 terms stop there.
    """
    words = terms.document_text(text)
    if len(words) <= VARCHAR_MAX_BYTES:  # base-36 words are ASCII: one byte a character
        return words
    return words[: VARCHAR_MAX_BYTES + 1].rsplit(_TERMS_SEPARATOR, 1)[0]


def milvus_literal(value: MetadataValue) -> str:
    r"""Returns `value` as a Milvus expression literal, escaped so it can never change the expression.

    Milvus Lite does not support templated expressions (`filter_params`), so values are escaped instead;
    the escapes used (`\\ \" \n \r \t`) mean the same on Milvus Lite and on a Milvus server, and every
    other character (other control characters included) stands for itself inside the quotes.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return '"' + "".join(_ESCAPES.get(char, char) for char in value) + '"'


def truncate_utf8(text: str, max_bytes: int) -> str:
    """Returns the longest prefix of `text` whose UTF-8 encoding fits in `max_bytes`."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


# pymilvus pings its server every 10 s, even when idle; Milvus Lite's in-process gRPC server keeps gRPC's
# default policy (one ping per 5 minutes without calls) and, after about 80 s of idling, answers with a
# GOAWAY ("too_many_pings") that gRPC logs on stderr before pymilvus reconnects. Pings over loopback to our
# own process find nothing, so they are switched off for Milvus Lite files.
_LITE_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 2**31 - 1, "grpc.keepalive_permit_without_calls": False}


class MilvusSink(BaseSink):
    """A Milvus collection with cosine metric, created (with its manifest and indexes) on first ingest.

    Every collection gets a scalar (`INVERTED`) index on `doc_id`, which the resume check filters on.

    Args:
        collection: Collection name (letters, digits and underscores).
        uri: A Milvus Lite file (`./milvus.db`) or a server URI (`http://localhost:19530`).
        token: Server token (`user:password` or an API key).
        client: An existing `MilvusClient`; it is not closed by `close()`.
        layout: Payload layout: `"vllm-embed"`, `"langchain"` (readable by langchain-milvus's `Milvus`)
            or `"llama-index"` (LlamaIndex's `MilvusVectorStore`); `None` uses the existing collection's
            (`"vllm-embed"` for a new one).
        text_max_bytes: Size of the `text` VARCHAR field; longer chunk texts are stored cut to this size.
        max_attempts: Attempts per operation when the server reports a transient error.
        retry_wait: First backoff wait in seconds.
        hybrid: Store a BM25 sparse field beside the dense vector, for `sparse_search` and `hybrid_search`:
            Milvus's own BM25 Function computes it from the `bm25_terms` field, which holds each chunk
            analysed as Qdrant's BM25 analyses it (`vllm_embed.sparse.BM25Terms`: stop words dropped,
            words stemmed), so BM25 ranks alike on every store. `None` follows the existing collection
            (dense only for a new one); a hybrid collection made before `bm25_terms` is searched as it
            was made (the text field, the server's analyzer).
        index: Dense index type of a new collection (`MilvusIndexSettings.index`; Milvus Lite builds
            `AUTOINDEX`, `FLAT`, `HNSW`, `HNSW_SQ`, `IVF_FLAT` and `IVF_SQ8`). Left at `"AUTOINDEX"`, an
            existing collection keeps its own; another type that differs from it is refused.
        index_params: Build parameters of the index (e.g. `{"M": 32}` for HNSW, `{"nlist": 256}` for IVF).
        search_params: Parameters of every dense search (e.g. `{"ef": 128}`, `{"nprobe": 32}`); `None`
            uses those recorded when the collection was created.
        index_fields: Metadata fields to index for filtering (`NAME` or `NAME:TYPE`): on a Milvus server
            as JSON-path indexes of the metadata JSON field or dynamic fields; Milvus Lite cannot index
            those (only schema fields), so it refuses them.
        adopt: Take over a collection vllm-embed did not create when its vector field, distance and the
            layout's fields fit (`prepare` checks them, indexes `doc_id` and writes the manifest).
        **client_kwargs: Passed to `MilvusClient` (e.g. `db_name`, `timeout`).

    Raises:
        ValueError: If neither or both of `uri` and `client` are given, or `hybrid=True` with a framework
            layout.
        MilvusIndexError: For an unknown index type or parameter, or one Milvus Lite does not build (a
            Milvus Lite file is checked here; a server when the collection is prepared).
        StoreBusyError: If the Milvus Lite file `uri` is open in another process.
    """

    store_label = "Milvus collection"

    def __init__(
        self,
        collection: str,
        *,
        uri: str | None = None,
        token: str | None = None,
        client: MilvusClient | None = None,
        layout: str | None = None,
        text_max_bytes: int = VARCHAR_MAX_BYTES,
        max_attempts: int = 6,
        retry_wait: float = 0.5,
        hybrid: bool | None = None,
        index: str = DEFAULT_INDEX,
        index_params: Mapping[str, Any] | None = None,
        search_params: Mapping[str, Any] | None = None,
        index_fields: Iterable[str | IndexField] = (),
        adopt: bool = False,
        **client_kwargs: Any,
    ) -> None:
        super().__init__(collection, layout, max_attempts, retry_wait, hybrid, index_fields, adopt)
        try:
            self.index_settings = MilvusIndexSettings(
                index=index, index_params=dict(index_params or {}), search_params=dict(search_params or {})
            )
        except ValidationError as exc:
            raise MilvusIndexError(f"MilvusSink: invalid index settings ({one_line(exc)})") from None
        self._search_params: dict[str, Any] | None = None
        if (uri is None) == (client is None):
            raise ValueError(
                "MilvusSink needs exactly one of uri= (a Milvus Lite file or server URI) or client="
            )
        if not 1 <= text_max_bytes <= VARCHAR_MAX_BYTES:
            raise ValueError(f"text_max_bytes={text_max_bytes} must be between 1 and {VARCHAR_MAX_BYTES}")
        self.text_max_bytes = text_max_bytes
        self._target = uri or "client"
        if uri is not None:
            self._connection = {"uri": uri, **({} if token is None else {"token": token}), **client_kwargs}
        self._loaded = False
        pymilvus = require("pymilvus", "MilvusSink")
        lite = uri is not None and "://" not in uri
        if lite:
            self._lite = True  # a server's kind is asked when the collection is prepared
            self._check_index(self.index_settings.index, None)

        def connect() -> MilvusClient:
            if lite:
                self._refuse_busy_lite_file()
                Path(str(uri)).parent.mkdir(parents=True, exist_ok=True)  # Milvus Lite does not create it
                grpc_options = client_kwargs.get("grpc_options", {})
                client_kwargs["grpc_options"] = {**_LITE_GRPC_OPTIONS, **grpc_options}
            if token is not None:
                client_kwargs["token"] = token
            try:
                created: MilvusClient = pymilvus.MilvusClient(uri=uri, **client_kwargs)
            except pymilvus.exceptions.ConnectionConfigException:
                if lite:
                    self._refuse_busy_lite_file(retried=True)
                raise
            self._close_at_exit(created.close)
            return created

        self._lazy_client(client, connect, Path(str(uri)) if lite else None)

    @property
    def client(self) -> MilvusClient:
        """The pymilvus `MilvusClient` (connected, and a missing Milvus Lite file created, on first use)."""
        client: MilvusClient = self._connected()
        return client

    @client.setter
    def client(self, client: MilvusClient) -> None:
        self._client = client

    def _lite_lock_files(self) -> list[Path]:
        """Lock files of a Milvus Lite store: `LOCK` in its directory (3.x), `.<name>.lock` beside a file."""
        path = Path(self._target)
        return [path / "LOCK", path.parent / f".{path.name}.lock"]

    def _refuse_busy_lite_file(self, *, retried: bool = False) -> None:
        """Raises `StoreBusyError` if another process holds the Lite file (any process if `retried`)."""
        locks = self._lite_lock_files()
        if held_elsewhere(locks) or (retried and holders_text(locks) != "another process"):
            raise StoreBusyError(
                f"the Milvus Lite file {self._target!r} is open elsewhere ({holders_text(locks)}); "
                "Milvus Lite allows one process at a time: close the other MilvusClient (or stop that "
                "process), or run a Milvus server and pass its uri="
            )

    def __repr__(self) -> str:
        return f"MilvusSink(collection={self.collection!r}, uri={self._target!r})"

    def _is_transient(self, exc: BaseException) -> bool:
        from pymilvus.exceptions import ConnectError, MilvusUnavailableException

        if isinstance(exc, ConnectError | MilvusUnavailableException):
            return True
        return is_transient_grpc_error(exc, _TRANSIENT_GRPC_CODES) or super()._is_transient(exc)

    # -- store hooks of the lifecycle (`BaseSink`) -----------------------------------------------------

    def _name_problem(self, name: str) -> str | None:
        return milvus_name_problem(name)

    def _constructor_text(self) -> str:
        argument = "client=client" if self._target == "client" else f"uri={self._target!r}"
        return f"MilvusSink({self.collection!r}, {argument})"

    def _manifest_location(self) -> str:
        return f"Milvus collection property {_MANIFEST_PROPERTY!r}"

    def _read_stored(self) -> tuple[bool, object]:
        if self._store_absent():
            return False, None
        if not self._call("collection lookup", self.client.has_collection, self.collection):
            return False, None
        info = self._call("collection lookup", self.client.describe_collection, self.collection)
        return True, (info.get("properties") or {}).get(_MANIFEST_PROPERTY)

    def _stored_dimensions(self, layout: Layout) -> int | None:
        if self._store_absent():
            return None
        if not self._call("collection lookup", self.client.has_collection, self.collection):
            return None
        info = self._call("collection lookup", self.client.describe_collection, self.collection)
        for field in info.get("fields", []):
            if field.get("name") == layout.milvus_vector:
                return int((field.get("params") or {})["dim"])
        return None

    def _store_manifest(self, manifest: Manifest) -> None:
        self._call(
            "manifest update",
            self.client.alter_collection_properties,
            self.collection,
            properties={_MANIFEST_PROPERTY: manifest.model_dump_json()},
        )

    def check_document_id(self, doc_id: str) -> None:
        """Refuses a document id longer than the layout's fields can hold on a Milvus server.

        Sizes are UTF-8 bytes: the `doc_id` VARCHAR field (65,535 bytes), and in the framework layouts the
        row's dynamic fields together (one JSON value of at most 65,536 bytes; the LlamaIndex layout keeps the
        id there three more times).

        Raises:
            ValueError: Naming the limit the id exceeds.
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
            dynamic = {k: v for k, v in layout.milvus_row(probe, "").items() if k not in self._field_names}
            dynamic_size = len(json.dumps(dynamic, ensure_ascii=False).encode("utf-8"))
            if dynamic_size > JSON_MAX_BYTES:
                raise ValueError(
                    f"document id of {size} bytes makes the {layout.name} layout's dynamic fields "
                    f"{dynamic_size} bytes, over Milvus's JSON limit of {JSON_MAX_BYTES} bytes: "
                    "use a shorter id"
                )

    def _with_stored_sparse(self, manifest: Manifest) -> Manifest:
        layout = get_layout(manifest.layout)
        info = self._call("collection lookup", self.client.describe_collection, self.collection)
        outputs = {name for function in info.get("functions", []) for name in function["output_field_names"]}
        stored = bool(layout.milvus_sparse) and layout.milvus_sparse in outputs
        manifest = self._hybrid_from_store(manifest, stored)
        inputs = {name for function in info.get("functions", []) for name in function["input_field_names"]}
        if stored and BM25_TERMS_FIELD not in inputs:  # made before the BM25 terms: the server's analyzer
            manifest = manifest.model_copy(update={"sparse_analyzer": _LEGACY_ANALYZER})
        return manifest

    def _layout_sparse(self, layout: Layout) -> str:
        return layout.milvus_sparse

    def _sparse_analyzer(self) -> dict[str, Any]:
        return {"function": "BM25", **BM25Terms().describe()}

    def _sparse_of(self, manifest: Manifest | None) -> MilvusSparse | None:
        if manifest is None or not manifest.sparse_vector:
            return None
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
        """Refuses an index type or parameter this store does not build.

        Args:
            index: The index type that applies (the requested one, or the existing collection's).
            search_params: The search parameters to check against it (`None`: not known to apply yet, as
                the default index type follows an existing collection's).
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
        """Refuses index settings that differ from the existing collection's, or that this store cannot use.

        Raises:
            ManifestMismatchError: Naming each differing setting, both sides, and the fix.
            MilvusIndexError: For search parameters the collection's index type does not take, or index
                fields this store cannot index.
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
        """Refuses `index_fields` this store cannot index in a new collection of the sink's layout.

        Raises:
            MilvusIndexError: Naming the field and the fix (Milvus Lite: metadata is kept in JSON).
        """
        self._index_targets(self._layout or get_layout(Layout.name), self.index_fields)

    def _index_targets(
        self, layout: Layout, index_fields: Iterable[IndexField]
    ) -> dict[IndexField, tuple[str, str, dict[str, Any]]]:
        """Where each of `index_fields` is indexed: (field name, index name, index params).

        Raises:
            MilvusIndexError: If the store cannot index one of them (Milvus Lite: metadata kept in JSON).
        """
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
            targets[field] = (
                head,
                "meta_" + re.sub(r"\W", "_", field.name),
                {"json_path": json_path, "json_cast_type": _JSON_CAST[field.type]},
            )
        return targets

    def _scalar_indexes(self) -> dict[str, dict[str, Any]]:
        """The collection's indexes other than on vectors, by index name (`describe_index` of each)."""
        indexes = {}
        for name in self._call("index lookup", self.client.list_indexes, self.collection):
            described = self._call("index lookup", self.client.describe_index, self.collection, name)
            if described and str(described.get("metric_type", "NONE")).upper() in ("", "NONE"):
                indexes[str(name)] = described
        return indexes

    def _vector_index(self, vector: str) -> dict[str, Any] | None:
        """`describe_index` of the index on the dense vector field `vector` (`None` without one)."""
        for name in self._call("index lookup", self.client.list_indexes, self.collection, vector):
            described = self._call("index lookup", self.client.describe_index, self.collection, name)
            if described and described.get("field_name", vector) == vector:
                return dict(described)
        return None

    def _add_indexes(self, specs: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        """Creates scalar indexes on the existing collection (released and loaded again if the store asks)."""
        if not specs:
            return
        from pymilvus import MilvusClient

        index_params = MilvusClient.prepare_index_params()
        for field_name, index_name, params in specs:
            index_params.add_index(
                field_name=field_name, index_type=SCALAR_INDEX, index_name=index_name, params=params
            )
        try:
            self._call("index creation", self.client.create_index, self.collection, index_params)
        except Exception as exc:
            if "load" not in str(exc).lower():
                raise
            self._call("collection release", self.client.release_collection, self.collection)
            self._call("index creation", self.client.create_index, self.collection, index_params)
            self._call("collection load", self.client.load_collection, self.collection)

    def _ensure_doc_id_index(self) -> dict[str, dict[str, Any]]:
        """Indexes `doc_id` unless it is; returns the scalar indexes as `_scalar_indexes` read them before."""
        present = self._scalar_indexes()
        if not any(index.get("field_name") == DOC_ID for index in present.values()):
            self._add_indexes([(DOC_ID, DOC_ID, {})])
        return present

    def _use_search_params(self, stored: Manifest) -> None:
        recorded = (stored.storage or {}).get("search_params") or {}
        self._search_params = dict(self.index_settings.search_params or recorded)

    def _dense_params(self) -> dict[str, Any]:
        """Search parameters of a dense search: the metric and the index's search parameters."""
        if self._search_params is None:
            self._search_params = dict(self.index_settings.search_params)
            stored = self._known_manifest()
            if stored is not None:
                self._use_search_params(stored)
        if not self._search_params:
            return {"metric_type": "COSINE"}
        return {"metric_type": "COSINE", "params": dict(self._search_params)}

    def _prepared(self, stored: Manifest) -> None:
        self._use_search_params(stored)

    def _ensure_indexes(self, stored: Manifest, fields: Sequence[IndexField]) -> None:
        self._ensure_loaded()
        present = self._ensure_doc_id_index() if stored.storage is None else self._scalar_indexes()
        targets = self._index_targets(get_layout(stored.layout), fields)
        self._add_indexes([target for target in targets.values() if target[1] not in present])

    def _create(self, manifest: Manifest) -> Manifest:
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        layout = self.layout
        settings = self.index_settings
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
        for field_name, index_name, json_params in targets.values():
            index_params.add_index(
                field_name=field_name, index_type=SCALAR_INDEX, index_name=index_name, params=json_params
            )
        if stored.sparse_vector:
            schema.add_field(
                BM25_TERMS_FIELD,
                DataType.VARCHAR,
                max_length=VARCHAR_MAX_BYTES,
                enable_analyzer=True,
                analyzer_params=BM25_TERMS_ANALYZER,
            )
            schema.add_field(stored.sparse_vector, DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(
                Function(
                    name="bm25",
                    function_type=FunctionType.BM25,
                    input_field_names=[BM25_TERMS_FIELD],
                    output_field_names=[stored.sparse_vector],
                )
            )
            index_params.add_index(
                field_name=stored.sparse_vector, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25"
            )
        self._call(
            "collection creation",
            self.client.create_collection,
            self.collection,
            schema=schema,
            index_params=index_params,
            consistency_level="Strong",
            properties={_MANIFEST_PROPERTY: stored.model_dump_json()},
        )
        self._loaded = True
        return stored

    # -- adopting a collection vllm-embed did not create ------------------------------------------------

    def _adopt(self, manifest: Manifest) -> Manifest:
        layout = self.layout
        info = self._call("collection lookup", self.client.describe_collection, self.collection)
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
        storage: dict[str, Any] = {
            "index": index,
            "index_params": read_back,
            "search_params": self.index_settings.search_params,
            "index_fields": [],
        }
        adopted = adopted.model_copy(update={"storage": storage, "adopted": True})
        self.check_storage(adopted)
        present = self._ensure_doc_id_index()
        targets = self._index_targets(layout, self.index_fields)
        self._add_indexes([target for target in targets.values() if target[1] not in present])
        storage = {**storage, "index_fields": [field.to_spec() for field in targets]}
        adopted = adopted.model_copy(update={"storage": storage})
        self._store_manifest(adopted)
        self._layout = layout
        self._call("collection load", self.client.load_collection, self.collection)
        self._loaded = True
        return adopted

    def _check_adopted_fields(
        self, layout: Layout, fields: Mapping[str, Mapping[str, Any]], dynamic: bool, dimensions: int
    ) -> None:
        """Refuses a collection that lacks one of the layout's fields, or has it with another type."""
        problems = []
        for name, type_name, kwargs in layout.milvus_fields(dimensions, self.text_max_bytes):
            field = fields.get(name)
            if field is None:
                problems.append(
                    f"field {name!r}: collection has none, the {layout.name} layout needs {type_name}"
                )
                continue
            stored_type = getattr(field.get("type"), "name", str(field.get("type")))
            if stored_type != type_name:
                problems.append(
                    f"field {name!r}: collection has {stored_type}, the {layout.name} layout needs "
                    f"{type_name}"
                )
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
        if problems:
            raise ManifestMismatchError(
                f"collection {self.collection!r} cannot be adopted ({'; '.join(problems)}): adopt it with "
                "the layout its fields follow (--layout), or ingest into a new collection"
            )

    # -- what the store reports -----------------------------------------------------------------------

    def info(self) -> CollectionInfo:
        """Reads back the collection's schema, indexes and row count from the store.

        Raises:
            CollectionNotFoundError: If the collection does not exist.
        """
        state = self.state()
        if state.missing:
            raise self._not_found()
        manifest = state.manifest
        layout = self._described_layout(manifest)
        described = self._call("collection lookup", self.client.describe_collection, self.collection)
        vectors = [
            f for f in described.get("fields", []) if getattr(f.get("type"), "name", "") == "FLOAT_VECTOR"
        ]
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
        payload_indexes = {}
        for index in self._scalar_indexes().values():
            params = _index_params(index)
            payload_indexes[str(params.get("json_path") or index.get("field_name"))] = str(
                index.get("index_type")
            )
        stats = self._call("count", self.client.get_collection_stats, self.collection)
        return CollectionInfo(
            name=self.collection,
            store=repr(self),
            manifest=manifest,
            points=int(stats.get("row_count", 0)),
            dimensions=dimensions,
            distance=distance,
            storage=storage,
            payload_indexes=payload_indexes,
            disk_bytes=self._disk_bytes(),
        )

    def _disk_bytes(self) -> int | None:
        """Size of the collection's directory in a Milvus Lite store (`None` for a server)."""
        if "://" in self._target or self._target == "client":
            return None
        directory = Path(self._target) / "collections" / self.collection
        if not directory.is_dir():
            return None
        return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())

    def collection_names(self) -> list[str]:
        """Returns the names of every collection in the store (the client's database)."""
        if self._store_absent():
            return []
        return sorted(str(name) for name in self._call("collection list", self.client.list_collections))

    def _options(self) -> dict[str, Any]:
        settings = {"text_max_bytes": self.text_max_bytes, **self.index_settings.model_dump()}
        return {**super()._options(), **settings}

    def _sibling_options(self) -> dict[str, Any]:
        return {"client": self.client, **self._options()}

    def for_collection(self, name: str) -> Self:
        """Returns a sink on collection `name` of the same store, sharing this sink's client.

        The new sink leaves the client open on `close()`, has this sink's index settings, and follows that
        collection's layout, hybrid choice and index fields.
        """
        sink = super().for_collection(name)
        sink._target = self._target
        if "_lite" in self.__dict__:
            sink._lite = self._lite
        return sink

    def _shared(self) -> bool:
        return "://" in self._target

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._call("collection load", self.client.load_collection, self.collection)
            self._loaded = True

    def _get(self, ids: Sequence[str], fields: list[str]) -> list[dict[str, Any]]:
        """The rows of `ids` that exist, with `fields`."""
        if not ids:
            return []
        self._ensure_loaded()
        rows: list[dict[str, Any]] = self._call(
            "point lookup", self.client.get, self.collection, ids=list(ids), output_fields=fields
        )
        return rows

    def fetch_chunks(self, ids: Sequence[str]) -> dict[str, Hit]:
        """Returns the stored text and metadata of each of `ids` that exists (as hits, score 0)."""
        layout = self.layout
        rows = self._get(ids, layout.milvus_output_fields())
        return {
            str(row[layout.milvus_id]): layout.milvus_hit(row[layout.milvus_id], 0.0, row) for row in rows
        }

    def fetch_vectors(self, ids: Sequence[str]) -> dict[str, NDArray[np.float32]]:
        """Returns the stored dense vector of each of `ids` that exists."""
        layout = self.layout
        vectors = {
            str(row[layout.milvus_id]): _as_vector(row.get(layout.milvus_vector))
            for row in self._get(ids, [layout.milvus_vector])
        }
        return {point: vector for point, vector in vectors.items() if vector is not None}

    def stored_text(self, text: str) -> str:
        """Returns `text` cut to the `text` field's size."""
        return truncate_utf8(text, self.text_max_bytes)

    def upsert(self, chunks: Sequence[Chunk], vectors: NDArray[np.float32]) -> None:
        """Inserts or replaces the points of `chunks`."""
        if not chunks:
            return
        rows = []
        sparse = self._sparse_state()
        terms = None if sparse is None else sparse.terms
        for chunk, vector in zip(chunks, np.asarray(vectors, dtype=np.float32).tolist(), strict=True):
            row = self.layout.milvus_row(chunk, self.stored_text(chunk.text))
            row[self.layout.milvus_id] = chunk.id
            row[self.layout.milvus_vector] = vector
            if terms is not None:
                row[BM25_TERMS_FIELD] = terms_text(terms, chunk.text)
            rows.append(row)
        self._call("upsert", self.client.upsert, self.collection, rows)

    def delete_chunks_from(self, doc_id: str, first_index: int) -> None:
        """Deletes the chunks of `doc_id` whose `chunk_index` is `first_index` or more."""
        layout = self.layout
        expression = (
            f"{self._field(layout.doc_id_path('milvus'))} == {milvus_literal(doc_id)} "
            f"and {self._field(layout.chunk_index_path('milvus'))} >= {int(first_index)}"
        )
        self._call("delete", self.client.delete, self.collection, filter=expression)

    def filter_expression(self, filter: MetadataFilter | None) -> str:
        """Returns the Milvus boolean expression for a metadata equality filter (`""` for none)."""
        return " and ".join(
            f"{self._field(self.layout.metadata_path('milvus', key))} == {milvus_literal(value)}"
            for key, value in check_filter(filter).items()
        )

    @functools.cached_property
    def _field_names(self) -> frozenset[str]:
        """Names of the layout's schema fields (any other top-level key is a dynamic field)."""
        return frozenset(name for name, _, _ in self.layout.milvus_fields(1, self.text_max_bytes))

    def _field(self, path: KeyPath) -> str:
        """Returns the Milvus expression for a stored value: a field, a JSON key, or a dynamic field."""
        if len(path) == 1:
            (name,) = path
            if name in self._field_names:
                return name
            return f"$meta[{milvus_literal(name)}]"
        head, *keys = path
        return head + "".join(f"[{milvus_literal(key)}]" for key in keys)

    def search(
        self, vector: NDArray[np.float32], top_k: int, filter: MetadataFilter | None = None
    ) -> list[Hit]:
        """Returns the `top_k` points closest to `vector` whose metadata matches `filter`."""
        self._ensure_loaded()
        results = self._call(
            "search",
            self.client.search,
            self.collection,
            data=[np.asarray(vector, dtype=np.float32).tolist()],
            anns_field=self.layout.milvus_vector,
            limit=top_k,
            filter=self.filter_expression(filter),
            output_fields=self.layout.milvus_output_fields(),
            search_params=self._dense_params(),
        )
        return self._hits(results[0], {"dense": None})

    def sparse_search(self, query: str, top_k: int, filter: MetadataFilter | None = None) -> list[Hit]:
        """Returns the `top_k` points with the highest BM25 score for the text `query` (Milvus's BM25).

        The query is analysed as the collection's documents were (`BM25Terms`, or the server's analyzer
        for a collection made before); a query of stop words alone finds nothing.

        Raises:
            ValueError: If the collection is dense-only.
        """
        sparse: MilvusSparse = self._require_sparse()
        text = query if sparse.terms is None else sparse.terms.query_text(query)
        if not text.strip():
            return []
        self._ensure_loaded()
        results = self._call(
            "search",
            self.client.search,
            self.collection,
            data=[text],
            anns_field=sparse.field,
            limit=top_k,
            filter=self.filter_expression(filter),
            output_fields=self.layout.milvus_output_fields(),
            search_params={"metric_type": "BM25"},
        )
        # Milvus Lite reports BM25 scores negated; a BM25 score is never negative.
        return [dataclasses.replace(h, score=abs(h.score)) for h in self._hits(results[0], {"sparse": None})]

    def _hit_id(self, result: Mapping[str, Any]) -> str:
        return str(result.get(self.layout.milvus_id, result.get("id")))

    def _hits(self, results: Sequence[Any], found: Mapping[str, set[str] | None]) -> list[Hit]:
        """Builds hits; `found` maps each search to the ids it found (`None`: every hit)."""
        hits = []
        for result in results:
            hit = self.layout.milvus_hit(self._hit_id(result), result["distance"], result.get("entity", {}))
            by = tuple(branch for branch, ids in found.items() if ids is None or hit.id in ids)
            hits.append(dataclasses.replace(hit, found_by=by))
        return hits

    def count(self) -> int:
        """Returns the number of points in the collection."""
        self._ensure_loaded()
        rows = self._call("count", self.client.query, self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def iter_vectors(self, batch_size: int) -> Iterator[StoredVectors]:
        """Yields every stored point's id and vector, `batch_size` points at a time (a query iterator)."""
        self._ensure_loaded()
        layout = self.layout
        with _muted(_QUERY_ITERATOR_LOGGER, "failed to get mvccTs"):
            iterator = self._call(
                "scan",
                self.client.query_iterator,
                self.collection,
                batch_size=batch_size,
                filter="",
                output_fields=[layout.milvus_id, layout.milvus_vector],
            )
        try:
            while rows := self._call("scan", iterator.next):
                yield [
                    (str(row[layout.milvus_id]), _as_vector(row.get(layout.milvus_vector))) for row in rows
                ]
        finally:
            iterator.close()

    def replace_vectors(self, ids: Sequence[str], vectors: NDArray[np.float32]) -> None:
        """Replaces the vectors of existing points; every other field is written back as it was."""
        if not ids:
            return
        layout = self.layout
        rows = self._get(ids, ["*"])
        replacement = dict(zip(ids, np.asarray(vectors, dtype=np.float32).tolist(), strict=True))
        sparse = self._sparse_state()  # a function's output: the server computes it again
        function_output = None if sparse is None else sparse.field
        updated = []
        for row in rows:
            point_id = str(row[layout.milvus_id])
            if point_id in replacement:
                kept = {k: v for k, v in row.items() if k != function_output}
                updated.append({**kept, layout.milvus_vector: replacement[point_id]})
        if updated:
            self._call("vector update", self.client.upsert, self.collection, updated)

    def close(self) -> None:
        """Closes the client if this sink created it."""
        super().close()


_LEGACY_ANALYZER: dict[str, Any] = {"function": "BM25", "analyzer_params": BM25_ANALYZER}
"""What the manifest of a hybrid collection made before `bm25_terms` records: the text field's analyzer."""

_QUERY_ITERATOR_LOGGER = "pymilvus.client.iterator.query_iterator"

_JSON_CAST = {"keyword": "VARCHAR", "integer": "DOUBLE", "float": "DOUBLE", "bool": "BOOL"}
"""`json_cast_type` of a JSON-path index per `IndexField.type` (Milvus keeps JSON numbers as doubles)."""

_INDEX_KEYS = frozenset(
    {"index_type", "metric_type", "field_name", "index_name", "total_rows", "indexed_rows"}
    | {"pending_index_rows", "state", "index_state_fail_reason", "mmap.enabled"}
)


def _index_params(described: Mapping[str, Any]) -> dict[str, Any]:
    """The build parameters in a `describe_index` answer (a server lists them beside its own keys)."""
    nested = described.get("params")
    if isinstance(nested, Mapping):
        return dict(nested)
    return {k: v for k, v in described.items() if k not in _INDEX_KEYS}


@contextlib.contextmanager
def _muted(logger_name: str, message_start: str) -> Iterator[None]:
    """Drops the log records of `logger_name` that start with `message_start` (Milvus Lite's noise)."""

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(message_start)

    logger = logging.getLogger(logger_name)
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _as_vector(value: Any) -> NDArray[np.float32] | None:
    return None if value is None else np.asarray(value, dtype=np.float32)
