"""Payload layouts: how a chunk becomes stored fields, in vllm-embed's own shape or a framework's.

A layout is the only place that knows field names. `"vllm-embed"` keeps the document's metadata in one
`metadata` object next to `text`, `doc_id` and `chunk_index`. The framework layouts write exactly what the
framework's own vector store writes with its default settings, so that store reads (and can keep writing
to) the collection:

- `langchain`: on Qdrant, the unnamed vector with `page_content` and a `metadata` object (langchain-qdrant
  `QdrantVectorStore`); on Milvus, `pk`, `vector`, `text`, `doc_id` and `chunk_index` fields with the other
  metadata as dynamic fields (langchain-milvus `Milvus`).
- `llama-index`: on Qdrant, the vector `text-dense` with the metadata at the top level and the node as
  `_node_content` JSON; on Milvus, `id`, `embedding`, `text` and `doc_id` fields with the rest as dynamic
  fields (LlamaIndex `QdrantVectorStore` / `MilvusVectorStore`).

In every layout the document id is readable as metadata `doc_id` and the chunk number as `chunk_index`.
A hybrid collection adds a BM25 sparse vector: `bm25` on Qdrant and `sparse` on Milvus in the vllm-embed
layout, `langchain-sparse` (langchain-qdrant's default name) in the langchain layout on Qdrant; the other
framework layouts stay dense only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from vllm_embed.sinks.chunks import Chunk, Hit

DOC_ID = "doc_id"
CHUNK_INDEX = "chunk_index"

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

KeyPath = tuple[str, ...]
"""Where a value sits in a stored point: one segment for a top-level field, two for a key of an object."""


class Layout:
    """vllm-embed's own layout: `text`, `doc_id`, `chunk_index` and a `metadata` object.

    Subclasses override the store-specific pieces; the sinks only call these methods.
    """

    name: ClassVar[str] = "vllm-embed"
    reserved_metadata: ClassVar[frozenset[str]] = frozenset()
    """Metadata keys this layout writes itself (a document may not use them)."""

    qdrant_vector: ClassVar[str] = ""
    """Qdrant vector name (`""` for the unnamed default vector)."""
    qdrant_sparse_vector: ClassVar[str] = "bm25"
    """Qdrant sparse vector name of a hybrid collection (`""`: the layout stores no sparse vector)."""
    milvus_id: ClassVar[str] = "id"
    milvus_vector: ClassVar[str] = "vector"
    milvus_text: ClassVar[str] = "text"
    milvus_dynamic: ClassVar[bool] = False
    """Whether the Milvus schema keeps metadata as dynamic fields (else in a JSON `metadata` field)."""
    milvus_sparse: ClassVar[str] = "sparse"
    """Milvus sparse field of a hybrid collection (`""`: the layout stores no sparse field)."""

    def check_metadata(self, doc_id: str, metadata: Mapping[str, Any]) -> None:
        """Refuses a document whose metadata uses a key this layout writes itself.

        Raises:
            ValueError: Naming the document, the key and the fix.
        """
        clashes = sorted(self.reserved_metadata.intersection(metadata))
        if clashes:
            raise ValueError(
                f"document {doc_id!r}: metadata key {clashes[0]!r} is reserved by the {self.name} layout "
                f"(reserved: {', '.join(sorted(self.reserved_metadata))}); rename it in your data"
            )

    # -- Qdrant -------------------------------------------------------------------------------------

    def qdrant_payload(self, chunk: Chunk) -> dict[str, Any]:
        """Returns the Qdrant payload of `chunk`."""
        return {
            "text": chunk.text,
            DOC_ID: chunk.doc_id,
            CHUNK_INDEX: chunk.chunk_index,
            "metadata": dict(chunk.metadata),
        }

    def qdrant_text_keys(self) -> list[str]:
        """Returns the payload keys `qdrant_text` reads."""
        return ["text"]

    def qdrant_text(self, payload: Mapping[str, Any]) -> str:
        """Returns the chunk text stored in a Qdrant payload."""
        return str(payload.get("text", ""))

    def qdrant_key(self, path: KeyPath) -> str:
        """Returns a Qdrant filter key for `path`; segments other than plain names are quoted."""
        for segment in path:
            if '"' in segment:
                raise ValueError(f"Qdrant cannot filter on a key containing '\"': {segment!r}")
        return ".".join(segment if _PLAIN_NAME.fullmatch(segment) else f'"{segment}"' for segment in path)

    def doc_id_path(self, store: str) -> KeyPath:
        """Returns where the document id is stored in `store` (`"qdrant"` or `"milvus"`)."""
        return (DOC_ID,)

    def chunk_index_path(self, store: str) -> KeyPath:
        """Returns where the chunk number is stored in `store`."""
        return (CHUNK_INDEX,)

    def metadata_path(self, store: str, key: str) -> KeyPath:
        """Returns where metadata `key` is stored in `store`."""
        return ("metadata", key)

    def qdrant_hit(self, point_id: str, score: float, payload: Mapping[str, Any]) -> Hit:
        """Builds a `Hit` from a Qdrant payload."""
        return Hit(
            id=str(point_id),
            doc_id=str(payload.get(DOC_ID, "")),
            chunk_index=int(payload.get(CHUNK_INDEX, 0)),
            score=float(score),
            text=self.qdrant_text(payload),
            metadata=dict(payload.get("metadata") or {}),
        )

    # -- Milvus -------------------------------------------------------------------------------------

    def milvus_fields(self, dimensions: int, text_max_bytes: int) -> list[tuple[str, str, dict[str, Any]]]:
        """Returns the Milvus schema as `(name, DataType name, add_field kwargs)`, primary key first."""
        return [
            (self.milvus_id, "VARCHAR", {"is_primary": True, "max_length": 64}),
            (self.milvus_vector, "FLOAT_VECTOR", {"dim": dimensions}),
            (self.milvus_text, "VARCHAR", {"max_length": text_max_bytes}),
            (DOC_ID, "VARCHAR", {"max_length": 65535}),
            (CHUNK_INDEX, "INT64", {}),
            ("metadata", "JSON", {}),
        ]

    def milvus_row(self, chunk: Chunk, text: str) -> dict[str, Any]:
        """Returns the Milvus row of `chunk` without its id and vector; `text` is the (cut) text to store."""
        return {
            self.milvus_text: text,
            DOC_ID: chunk.doc_id,
            CHUNK_INDEX: chunk.chunk_index,
            "metadata": dict(chunk.metadata),
        }

    def milvus_output_fields(self) -> list[str]:
        """Returns the fields a Milvus search must return for `milvus_hit`."""
        return [self.milvus_text, DOC_ID, CHUNK_INDEX, "metadata"]

    def milvus_hit(self, point_id: str, score: float, entity: Mapping[str, Any]) -> Hit:
        """Builds a `Hit` from a Milvus search result entity."""
        return Hit(
            id=str(point_id),
            doc_id=str(entity.get(DOC_ID, "")),
            chunk_index=int(entity.get(CHUNK_INDEX, 0)),
            score=float(score),
            text=str(entity.get(self.milvus_text, "")),
            metadata=dict(entity.get("metadata") or {}),
        )


class LangChainLayout(Layout):
    """What langchain-qdrant `QdrantVectorStore` and langchain-milvus `Milvus` write with their defaults.

    Qdrant: `{"page_content": text, "metadata": {...metadata, "doc_id", "chunk_index"}}` on the unnamed
    vector. Milvus: primary key `pk`, `vector`, `text`, `doc_id` and `chunk_index` as schema fields (so
    LangChain's default settings return them as metadata), other metadata as dynamic fields (returned when
    LangChain's `Milvus` is built with `enable_dynamic_field=True`).
    """

    name: ClassVar[str] = "langchain"
    reserved_metadata: ClassVar[frozenset[str]] = frozenset({DOC_ID, CHUNK_INDEX, "pk", "text", "vector"})
    milvus_id: ClassVar[str] = "pk"
    milvus_dynamic: ClassVar[bool] = True
    qdrant_sparse_vector: ClassVar[str] = "langchain-sparse"  # langchain-qdrant's SPARSE_VECTOR_NAME
    milvus_sparse: ClassVar[str] = ""

    def qdrant_payload(self, chunk: Chunk) -> dict[str, Any]:
        """Returns langchain-qdrant's payload for `chunk`."""
        return {"page_content": chunk.text, "metadata": _framework_metadata(chunk)}

    def qdrant_text_keys(self) -> list[str]:
        """Returns the payload keys `qdrant_text` reads."""
        return ["page_content"]

    def qdrant_text(self, payload: Mapping[str, Any]) -> str:
        """Returns the chunk text of a langchain-qdrant payload."""
        return str(payload.get("page_content", ""))

    def doc_id_path(self, store: str) -> KeyPath:
        """Returns where the document id is stored in `store`."""
        return ("metadata", DOC_ID) if store == "qdrant" else (DOC_ID,)

    def chunk_index_path(self, store: str) -> KeyPath:
        """Returns where the chunk number is stored in `store`."""
        return ("metadata", CHUNK_INDEX) if store == "qdrant" else (CHUNK_INDEX,)

    def metadata_path(self, store: str, key: str) -> KeyPath:
        """Returns where metadata `key` is stored in `store`."""
        return ("metadata", key) if store == "qdrant" else (key,)

    def qdrant_hit(self, point_id: str, score: float, payload: Mapping[str, Any]) -> Hit:
        """Builds a `Hit` from a langchain-qdrant payload."""
        return _framework_hit(point_id, score, self.qdrant_text(payload), payload.get("metadata") or {})

    def milvus_fields(self, dimensions: int, text_max_bytes: int) -> list[tuple[str, str, dict[str, Any]]]:
        """Returns langchain-milvus's schema plus `doc_id` and `chunk_index`."""
        return [
            (self.milvus_id, "VARCHAR", {"is_primary": True, "max_length": 65535}),
            (self.milvus_vector, "FLOAT_VECTOR", {"dim": dimensions}),
            (self.milvus_text, "VARCHAR", {"max_length": text_max_bytes}),
            (DOC_ID, "VARCHAR", {"max_length": 65535}),
            (CHUNK_INDEX, "INT64", {}),
        ]

    def milvus_row(self, chunk: Chunk, text: str) -> dict[str, Any]:
        """Returns langchain-milvus's row for `chunk` (metadata keys as dynamic fields)."""
        return {**_framework_metadata(chunk), self.milvus_text: text}

    def milvus_output_fields(self) -> list[str]:
        """Returns the fields a Milvus search must return for `milvus_hit`."""
        return [self.milvus_text, DOC_ID, CHUNK_INDEX, "$meta"]

    def milvus_hit(self, point_id: str, score: float, entity: Mapping[str, Any]) -> Hit:
        """Builds a `Hit` from a Milvus entity in langchain-milvus's shape."""
        skip = {self.milvus_id, self.milvus_text, self.milvus_vector, "$meta"}
        metadata = {k: v for k, v in entity.items() if k not in skip}
        return _framework_hit(point_id, score, str(entity.get(self.milvus_text, "")), metadata)


class LlamaIndexLayout(Layout):
    """What LlamaIndex's `QdrantVectorStore` and `MilvusVectorStore` write with their defaults.

    Each chunk is a `TextNode` (id = the point id, `SOURCE` relationship = the document) serialised as
    `_node_content`, with its metadata (plus `doc_id`, `chunk_index`) at the top level next to
    `_node_type`, `document_id` and `ref_doc_id`, as `node_to_metadata_dict` writes it. Qdrant uses the named
    vector `text-dense` and keeps the text inside `_node_content`; Milvus uses `id`, `embedding`, `text` and
    `doc_id` fields (the node JSON without its text) and dynamic fields for the rest. The nodes exclude all
    metadata from their embedding text, because the vector is of the chunk text alone.
    """

    name: ClassVar[str] = "llama-index"
    reserved_metadata: ClassVar[frozenset[str]] = frozenset(
        {
            DOC_ID,
            CHUNK_INDEX,
            "document_id",
            "ref_doc_id",
            "_node_content",
            "_node_type",
            "id",
            "text",
            "embedding",
        }
    )
    qdrant_vector: ClassVar[str] = "text-dense"
    qdrant_sparse_vector: ClassVar[str] = ""
    milvus_vector: ClassVar[str] = "embedding"
    milvus_dynamic: ClassVar[bool] = True
    milvus_sparse: ClassVar[str] = ""

    def _node_fields(self, chunk: Chunk, text: str) -> dict[str, Any]:
        metadata = _framework_metadata(chunk)
        node: dict[str, Any] = {
            "id_": chunk.id,
            "embedding": None,
            "metadata": metadata,
            "excluded_embed_metadata_keys": sorted(metadata),
            "excluded_llm_metadata_keys": [],
            "relationships": {
                "1": {  # NodeRelationship.SOURCE → the document (ObjectType.DOCUMENT is "4")
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
            "_node_content": json.dumps(node, ensure_ascii=False),
            "_node_type": "TextNode",
            "document_id": chunk.doc_id,
            DOC_ID: chunk.doc_id,
            "ref_doc_id": chunk.doc_id,
        }

    def qdrant_payload(self, chunk: Chunk) -> dict[str, Any]:
        """Returns LlamaIndex's Qdrant payload for `chunk` (text inside `_node_content`)."""
        return self._node_fields(chunk, chunk.text)

    def qdrant_text_keys(self) -> list[str]:
        """Returns the payload keys `qdrant_text` reads."""
        return ["_node_content"]

    def qdrant_text(self, payload: Mapping[str, Any]) -> str:
        """Returns the chunk text of a LlamaIndex Qdrant payload."""
        return str(_node(payload).get("text", ""))

    def metadata_path(self, store: str, key: str) -> KeyPath:
        """Returns where metadata `key` is stored in `store` (the top level in both)."""
        return (key,)

    def qdrant_hit(self, point_id: str, score: float, payload: Mapping[str, Any]) -> Hit:
        """Builds a `Hit` from a LlamaIndex Qdrant payload."""
        node = _node(payload)
        return _framework_hit(point_id, score, str(node.get("text", "")), node.get("metadata") or {})

    def milvus_fields(self, dimensions: int, text_max_bytes: int) -> list[tuple[str, str, dict[str, Any]]]:
        """Returns LlamaIndex `MilvusVectorStore`'s schema."""
        return [
            (self.milvus_id, "VARCHAR", {"is_primary": True, "max_length": 65535}),
            (DOC_ID, "VARCHAR", {"max_length": 65535}),
            (self.milvus_text, "VARCHAR", {"max_length": text_max_bytes}),
            (self.milvus_vector, "FLOAT_VECTOR", {"dim": dimensions}),
        ]

    def milvus_row(self, chunk: Chunk, text: str) -> dict[str, Any]:
        """Returns LlamaIndex's Milvus row for `chunk` (the node JSON without its text)."""
        return {**self._node_fields(chunk, ""), self.milvus_text: text}

    def milvus_output_fields(self) -> list[str]:
        """Returns the fields a Milvus search must return for `milvus_hit`."""
        return [self.milvus_text, DOC_ID, "_node_content"]

    def milvus_hit(self, point_id: str, score: float, entity: Mapping[str, Any]) -> Hit:
        """Builds a `Hit` from a LlamaIndex Milvus entity."""
        node = _node(entity)
        text = str(entity.get(self.milvus_text, ""))
        return _framework_hit(point_id, score, text, node.get("metadata") or {})


def _framework_metadata(chunk: Chunk) -> dict[str, Any]:
    return {**chunk.metadata, DOC_ID: chunk.doc_id, CHUNK_INDEX: chunk.chunk_index}


def _node(payload: Mapping[str, Any]) -> dict[str, Any]:
    raw = payload.get("_node_content")
    if not isinstance(raw, str):
        return {}
    node = json.loads(raw)
    return node if isinstance(node, dict) else {}


def _framework_hit(point_id: str, score: float, text: str, metadata: Mapping[str, Any]) -> Hit:
    """A hit whose `doc_id` and `chunk_index` are read from (and removed from) the metadata."""
    rest = dict(metadata)
    doc_id = rest.pop(DOC_ID, "")
    chunk_index = rest.pop(CHUNK_INDEX, 0)
    return Hit(
        id=str(point_id),
        doc_id=str(doc_id),
        chunk_index=int(chunk_index),
        score=float(score),
        text=text,
        metadata=rest,
    )


LAYOUTS: dict[str, Layout] = {
    layout.name: layout for layout in (Layout(), LangChainLayout(), LlamaIndexLayout())
}


def get_layout(name: str) -> Layout:
    """Returns the layout called `name`.

    Raises:
        ValueError: If no such layout exists.
    """
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown layout {name!r}; choose one of {', '.join(LAYOUTS)}") from None
