"""Payload layouts as data: where each store keeps a chunk's text, document id, chunk number and metadata.

One code path (`Layout.record`, `Layout.hit`) writes and reads every layout in every store. The framework
layouts (`langchain`, `llama-index`) write exactly what that framework's own vector store writes by default,
so it reads (and can keep writing to) the collection. In every layout the document id is readable as
metadata `doc_id` and the chunk number as `chunk_index`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vllm_embed.sinks.chunks import Chunk, Hit

DEFAULT_LAYOUT = "vllm-embed"
"""The layout of a new collection when none is asked for."""

DOC_ID = "doc_id"
CHUNK_INDEX = "chunk_index"
NODE = "_node_content"
"""LlamaIndex's serialised `TextNode` (its text and metadata) in a stored point."""

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

KeyPath = tuple[str, ...]
"""Where a value sits in a stored point: one segment for a top-level field, two for a key of an object."""

Schema = tuple[tuple[str, str, dict[str, Any]], ...]
"""Milvus fields as `(name, DataType name, add_field kwargs)`, primary key first; a `dim` or `max_length`
of `"dimensions"` / `"text_max_bytes"` is filled in when the collection is made."""


@dataclass(frozen=True)
class StoreFields:
    """Where one layout keeps a chunk's values in one store's points (key paths).

    Attributes:
        text: The text's key path; `(NODE, "text")` for the text inside LlamaIndex's node JSON.
        metadata: Where the metadata keys go: inside an object (`("metadata",)`) or at the top level (`()`).
        node: Whether each point also carries LlamaIndex's node JSON (`NODE`), the metadata's source on read.
    """

    text: KeyPath
    doc_id: KeyPath = (DOC_ID,)
    chunk_index: KeyPath = (CHUNK_INDEX,)
    metadata: KeyPath = ("metadata",)
    node: bool = False


@dataclass(frozen=True, eq=False)
class Layout:
    """One payload layout: names, reserved metadata keys and, per store, where each value is kept.

    Attributes:
        name: `"vllm-embed"`, `"langchain"` or `"llama-index"`.
        qdrant: Where values sit in a Qdrant payload.
        milvus: Where values sit in a Milvus row.
        reserved_metadata: Metadata keys this layout writes itself (a document may not use them).
        qdrant_vector: Qdrant vector name (`""` for the unnamed default vector).
        qdrant_sparse_vector: Qdrant sparse vector of a hybrid collection, BM25 or learned (`""`: the layout
            stores none).
        qdrant_multivector: Qdrant multivector of per-token vectors (an unnamed dense vector is then the
            vector named `""` beside it).
        milvus_schema: The Milvus fields (`Schema`).
        milvus_dynamic: Whether the Milvus schema keeps metadata as dynamic fields.
        milvus_sparse: Milvus sparse field of a hybrid collection (`""`: the layout stores none).
    """

    name: str
    qdrant: StoreFields
    milvus: StoreFields
    milvus_schema: Schema
    reserved_metadata: frozenset[str] = frozenset()
    qdrant_vector: str = ""
    qdrant_sparse_vector: str = "bm25"
    qdrant_multivector: str = "colbert"
    milvus_dynamic: bool = False
    milvus_sparse: str = "sparse"
    _fields: dict[str, StoreFields] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_fields", {"qdrant": self.qdrant, "milvus": self.milvus})

    @property
    def milvus_id(self) -> str:
        """The Milvus primary key field."""
        return self.milvus_schema[0][0]

    @property
    def milvus_vector(self) -> str:
        """The Milvus dense vector field."""
        return next(name for name, kind, _ in self.milvus_schema if kind == "FLOAT_VECTOR")

    @property
    def milvus_text(self) -> str:
        """The Milvus text field."""
        return self.milvus.text[0]

    def check_metadata(self, doc_id: str, metadata: Mapping[str, Any]) -> None:
        """Refuses (`ValueError`) a document whose metadata uses a key this layout writes itself."""
        clashes = sorted(self.reserved_metadata.intersection(metadata))
        if clashes:
            raise ValueError(
                f"document {doc_id!r}: metadata key {clashes[0]!r} is reserved by the {self.name} layout "
                f"(reserved: {', '.join(sorted(self.reserved_metadata))}); rename it in your data"
            )

    # -- where values are ---------------------------------------------------------------------------

    def doc_id_path(self, store: str) -> KeyPath:
        """Returns where the document id is stored in `store` (`"qdrant"` or `"milvus"`)."""
        return self._fields[store].doc_id

    def chunk_index_path(self, store: str) -> KeyPath:
        """Returns where the chunk number is stored in `store`."""
        return self._fields[store].chunk_index

    def metadata_path(self, store: str, key: str) -> KeyPath:
        """Returns where metadata `key` is stored in `store`."""
        return (*self._fields[store].metadata, key)

    def qdrant_key(self, path: KeyPath) -> str:
        """Returns a Qdrant filter key for `path`; segments other than plain names are quoted."""
        for segment in path:
            if '"' in segment:
                raise ValueError(f"Qdrant cannot filter on a key containing '\"': {segment!r}")
        return ".".join(segment if _PLAIN_NAME.fullmatch(segment) else f'"{segment}"' for segment in path)

    def milvus_fields(self, dimensions: int, text_max_bytes: int) -> list[tuple[str, str, dict[str, Any]]]:
        """Returns the Milvus schema as `(name, DataType name, add_field kwargs)`, primary key first."""
        sizes = {"dimensions": dimensions, "text_max_bytes": text_max_bytes}
        return [
            (name, kind, {k: sizes.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()})
            for name, kind, kwargs in self.milvus_schema
        ]

    def milvus_output_fields(self) -> list[str]:
        """Returns the fields a Milvus search must return for `hit`."""
        fields = self.milvus
        last = NODE if fields.node else fields.metadata[0] if fields.metadata else "$meta"
        paths = (fields.text, fields.doc_id) + (() if fields.node else (fields.chunk_index,))
        return list(dict.fromkeys([*(path[0] for path in paths), last]))

    # -- the one code path that writes and reads every layout ----------------------------------------

    def record(self, store: str, chunk: Chunk, text: str) -> dict[str, Any]:
        """Returns what `store` keeps of `chunk` besides its id and vectors; `text` is the text to store."""
        fields = self._fields[store]
        metadata = dict(chunk.metadata)
        record: dict[str, Any] = {}
        if fields.node:
            metadata = {**metadata, DOC_ID: chunk.doc_id, CHUNK_INDEX: chunk.chunk_index}
            in_node = fields.text[0] == NODE
            record.update(_node_fields(chunk, metadata, text if in_node else ""))
            metadata = {}  # written at the top level by the node's fields
        _put(record, fields.metadata, metadata, merge=True)
        if fields.text[0] != NODE:
            _put(record, fields.text, text)
        _put(record, fields.doc_id, chunk.doc_id)
        _put(record, fields.chunk_index, chunk.chunk_index)
        return record

    def hit(
        self,
        store: str,
        point_id: str,
        score: float,
        record: Mapping[str, Any],
        found_by: tuple[str, ...] = (),
    ) -> Hit:
        """Builds a `Hit` from what `store` returned for a point (`record` as `record` writes it)."""
        fields = self._fields[store]
        node = _node(record) if fields.node else {}
        text = node.get("text", "") if fields.text[0] == NODE else _get(record, fields.text, "")
        if fields.node:
            metadata = dict(node.get("metadata") or {})
        elif fields.metadata:
            metadata = dict(_get(record, fields.metadata, None) or {})
        else:
            skip = {*self.reserved_metadata, self.milvus_id, self.milvus_vector, "$meta"}
            metadata = {k: v for k, v in record.items() if k not in skip}
        doc_id, chunk_index = _get(record, fields.doc_id, ""), _get(record, fields.chunk_index, 0)
        if fields.node or fields.doc_id[:-1] == fields.metadata:  # kept among the metadata: not metadata
            doc_id = metadata.pop(DOC_ID, doc_id)
            chunk_index = metadata.pop(CHUNK_INDEX, chunk_index)
        return Hit(str(point_id), str(doc_id), int(chunk_index), float(score), str(text), metadata, found_by)


def _put(record: dict[str, Any], path: KeyPath, value: Any, *, merge: bool = False) -> None:
    """Sets `value` at `path` (creating the objects on the way); `merge` updates the object there."""
    *parents, last = path if path else ("",)
    for segment in parents:
        record = record.setdefault(segment, {})
    if not path:
        record.update(value)
    elif merge:
        record.setdefault(last, {}).update(value)
    else:
        record[last] = value


def _get(record: Mapping[str, Any], path: KeyPath, default: Any) -> Any:
    """The value at `path`, else `default`."""
    value: Any = record
    for segment in path:
        if not isinstance(value, Mapping) or segment not in value:
            return default
        value = value[segment]
    return value


def _node(payload: Mapping[str, Any]) -> dict[str, Any]:
    raw = payload.get(NODE)
    if not isinstance(raw, str):
        return {}
    node = json.loads(raw)
    return node if isinstance(node, dict) else {}


def _node_fields(chunk: Chunk, metadata: dict[str, Any], text: str) -> dict[str, Any]:
    """LlamaIndex's `node_to_metadata_dict` of the chunk's `TextNode` (embedded without its metadata)."""
    node: dict[str, Any] = {
        "id_": chunk.id,
        "embedding": None,
        "metadata": metadata,
        "excluded_embed_metadata_keys": sorted(metadata),
        "excluded_llm_metadata_keys": [],
        "relationships": {  # NodeRelationship.SOURCE → the document (ObjectType.DOCUMENT is "4")
            "1": {
                "node_id": chunk.doc_id,
                "node_type": "4",
                "metadata": {},
                "hash": None,
                "class_name": "RelatedNodeInfo",
            }
        },
        "metadata_template": "{key}: {value}",
        "metadata_separator": "\n",
        "text": text,
        "mimetype": "text/plain",
        "start_char_idx": None,
        "end_char_idx": None,
        "text_template": "{metadata_str}\n\n{content}",
        "class_name": "TextNode",
    }
    return {
        **metadata,
        NODE: json.dumps(node, ensure_ascii=False),
        "_node_type": "TextNode",
        "document_id": chunk.doc_id,
        DOC_ID: chunk.doc_id,
        "ref_doc_id": chunk.doc_id,
    }


_ID = ("VARCHAR", {"is_primary": True, "max_length": 65535})
_TEXT = ("VARCHAR", {"max_length": "text_max_bytes"})
_NODE_KEYS = frozenset({DOC_ID, CHUNK_INDEX, "document_id", "ref_doc_id", NODE, "_node_type"})
_VECTOR, _KEYWORD = ("FLOAT_VECTOR", {"dim": "dimensions"}), ("VARCHAR", {"max_length": 65535})
_FIELDS: Schema = (("vector", *_VECTOR), ("text", *_TEXT), (DOC_ID, *_KEYWORD), (CHUNK_INDEX, "INT64", {}))

LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            name="vllm-embed",
            qdrant=StoreFields(text=("text",)),
            milvus=StoreFields(text=("text",)),
            milvus_schema=(
                ("id", "VARCHAR", {"is_primary": True, "max_length": 64}),
                *_FIELDS,
                ("metadata", "JSON", {}),
            ),
        ),
        Layout(  # langchain-qdrant's SPARSE_VECTOR_NAME; langchain-milvus keeps no sparse field here
            name="langchain",
            qdrant=StoreFields(("page_content",), ("metadata", DOC_ID), ("metadata", CHUNK_INDEX)),
            milvus=StoreFields(text=("text",), metadata=()),
            milvus_schema=(("pk", *_ID), *_FIELDS),
            reserved_metadata=frozenset({DOC_ID, CHUNK_INDEX, "pk", "text", "vector"}),
            qdrant_sparse_vector="langchain-sparse",
            milvus_dynamic=True,
            milvus_sparse="",
        ),
        Layout(
            name="llama-index",
            qdrant=StoreFields(text=(NODE, "text"), metadata=(), node=True),
            milvus=StoreFields(text=("text",), metadata=(), node=True),
            milvus_schema=(("id", *_ID), (DOC_ID, *_KEYWORD), ("text", *_TEXT), ("embedding", *_VECTOR)),
            reserved_metadata=_NODE_KEYS | {"id", "text", "embedding"},
            qdrant_vector="text-dense",
            qdrant_sparse_vector="",
            milvus_dynamic=True,
            milvus_sparse="",
        ),
    )
}


def get_layout(name: str) -> Layout:
    """Returns the layout called `name` (`ValueError` listing the layouts if there is none)."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown layout {name!r}; choose one of {', '.join(LAYOUTS)}") from None
