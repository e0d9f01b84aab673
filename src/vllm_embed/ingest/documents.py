"""`Document`, and turning the things users pass to `ingest` into documents.

Besides our own `Document`, strings and dicts, `ingest` takes the documents of LangChain and LlamaIndex
loaders (PDF, HTML, web pages, ...) by their shape, without importing either framework.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vllm_embed.ingest.ids import content_id


@runtime_checkable
class LangChainDocumentLike(Protocol):
    """A LangChain `Document`: `page_content`, `metadata` and an optional `id`."""

    @property
    def page_content(self) -> str:
        """The text."""
        ...

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The metadata."""
        ...


@runtime_checkable
class LlamaIndexNodeLike(Protocol):
    """A LlamaIndex `Document` or `TextNode`: `id_`, `metadata` and `get_content()` (or `text`)."""

    @property
    def id_(self) -> str:
        """The node id (a `Document`'s `doc_id`)."""
        ...

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The metadata."""
        ...

    def get_content(self) -> str:
        """The text (without metadata)."""
        ...


MAX_METADATA_DEPTH = 32
"""Deepest nesting of dicts and lists in a document's metadata (the metadata mapping itself is level 1).

Far beyond what real metadata needs, and well inside every store: Qdrant's engine accepts about 120 levels
in an upsert but cannot replay them from its write-ahead log, which makes the whole collection unloadable.
"""

DEFAULT_MAX_METADATA_BYTES = 65_536
"""Largest metadata of a document, as JSON in UTF-8: it is copied into every chunk of the document.

The largest JSON value a Milvus server accepts, so a collection can move between stores.
"""


def _finite_or_none(value: Any) -> Any:
    """Returns `value` with NaN and ±inf floats, at any depth of dicts and lists, replaced by `None`."""
    if isinstance(value, float | np.floating):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(item) for item in value]
    return value


def _depth_and_non_finite(metadata: Mapping[str, Any]) -> tuple[int, bool]:
    """Returns the nesting depth of `metadata` (up to `MAX_METADATA_DEPTH + 1`) and whether it holds NaN/inf.

    Iterative, so metadata nested thousands of levels deep cannot exhaust the stack.
    """
    deepest, non_finite = 0, False
    stack: list[tuple[Any, int]] = [(metadata, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, float | np.floating):
            non_finite = non_finite or not math.isfinite(value)
            continue
        if not isinstance(value, Mapping | list | tuple):
            continue
        deepest = max(deepest, depth)
        if depth <= MAX_METADATA_DEPTH:
            items = value.values() if isinstance(value, Mapping) else value
            stack.extend((item, depth + 1) for item in items)
    return deepest, non_finite


def _kind_of_id(value: Any) -> str | None:
    """What is wrong with `value` as a document id, or `None` for a string or an integer."""
    if isinstance(value, str) or (isinstance(value, int | np.integer) and not isinstance(value, bool)):
        return None
    if isinstance(value, bool | np.bool_):
        return f"a boolean ({value})"
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "infinity"
        return None if float(value).is_integer() else f"the fraction {float(value)!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def document_id(value: Any, where: str = "Document.id") -> str:
    """Returns the document id `value` names: a string as it is, an integer in decimal.

    A float that is a whole number is that integer (`7.0` is document `"7"`, like `7`: JSON does not tell
    them apart, and pandas writes integer ids with missing values as floats).

    Raises:
        ValueError: For anything else (a boolean, NaN, a fraction, a list, an object), naming `where`.
    """
    kind = _kind_of_id(value)
    if kind is not None:
        raise ValueError(f"{where} holds {kind}: document ids are strings or integers")
    if isinstance(value, str):
        return value
    return str(int(value))


def utf8_size_above(text: str, limit: int) -> bool:
    """Returns whether `text` takes more than `limit` bytes in UTF-8, encoding it only when unsure."""
    if len(text) > limit:
        return True  # every character takes at least one byte
    if 4 * len(text) <= limit:
        return False  # and at most four
    return len(text.encode("utf-8", errors="surrogatepass")) > limit


@dataclass(frozen=True, slots=True)
class Document:
    """A text to ingest, with an optional id and metadata.

    NaN and ±infinity metadata values (at any depth) become `None`, so every store keeps them as null
    (Qdrant would keep NaN, Milvus would turn it into null).

    Attributes:
        text: The document text.
        id: Stable id of the document (a string; an integer is turned into one, see `document_id`); when
            `None`, a hash of the text is used, so re-ingesting the same text finds the same points.
        metadata: JSON-serialisable fields stored with every chunk and matched by search filters (`ingest`
            refuses metadata nested deeper than `MAX_METADATA_DEPTH` or larger than `max_metadata_bytes`).
        splitter: How to split this document when `ingest` is given no splitter (the loaders set
            `"markdown"` for Markdown files); `None` for the default, `"text"`.
    """

    text: str
    id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    splitter: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TypeError(f"Document.text must be a string, got {type(self.text).__name__}")
        if self.id is not None and not isinstance(self.id, str):
            object.__setattr__(self, "id", document_id(self.id))
        if not isinstance(self.metadata, Mapping):
            raise TypeError(f"Document.metadata must be a mapping, got {type(self.metadata).__name__}")
        depth, non_finite = _depth_and_non_finite(self.metadata)
        if non_finite and depth <= MAX_METADATA_DEPTH:  # deeper metadata is refused by `unstorable_reason`
            object.__setattr__(self, "metadata", _finite_or_none(self.metadata))

    @property
    def doc_id(self) -> str:
        """The id chunks are stored under: `id`, or a content hash when there is none."""
        return self.id if self.id is not None else content_id(self.text)


def unstorable_reason(
    doc: Document, max_document_bytes: int | None, max_metadata_bytes: int | None = DEFAULT_MAX_METADATA_BYTES
) -> str | None:
    """Why `ingest` refuses `doc` whatever the store, or `None` when it may be stored.

    Its text may take at most `max_document_bytes`; its metadata at most `max_metadata_bytes` as JSON
    (copied into every chunk) and `MAX_METADATA_DEPTH` levels of nesting. `None` limits accept any size.
    """
    if max_document_bytes is not None and utf8_size_above(doc.text, max_document_bytes):
        return f"text larger than max_document_bytes={max_document_bytes}"
    if not doc.metadata:
        return None
    if _depth_and_non_finite(doc.metadata)[0] > MAX_METADATA_DEPTH:
        return f"metadata nested deeper than {MAX_METADATA_DEPTH} levels; flatten it"
    if max_metadata_bytes is not None:
        size = len(json.dumps(doc.metadata, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass"))
        if size > max_metadata_bytes:
            return (
                f"metadata of {size} bytes (as JSON; stored with every chunk) is larger than "
                f"max_metadata_bytes={max_metadata_bytes}; keep large values out of the metadata, or raise "
                "the limit (max_metadata_bytes=, CLI --max-metadata-bytes)"
            )
    return None


DocumentLike = Document | str | Mapping[str, Any] | LangChainDocumentLike | LlamaIndexNodeLike
"""What `ingest` accepts as one document."""


def as_document(item: DocumentLike, text_field: str = "text", id_field: str | None = None) -> Document:
    """Turns one input item into a `Document`.

    A dict gives its `text_field` as the text, its `id_field` (or `"id"` when `id_field` is `None`) as the
    id, and every other field as metadata; a dict holding only a `"metadata"` mapping besides text and id
    uses that mapping.

    A LangChain `Document` gives its `page_content`, `metadata` and `id` (a content hash when `None`).

    A LlamaIndex `Document` gives its `text`, `metadata` and `doc_id` (its `id_`); a `TextNode` its own
    `id_`, not its `ref_doc_id`: `ingest` chunks every item itself and numbers the chunks under the item's
    id, so nodes of one document sharing the document's id would overwrite each other. Pass the loader's
    `Document`s rather than pre-split nodes; LlamaIndex gives documents a random `id_` unless told
    otherwise (`SimpleDirectoryReader(filename_as_id=True)`), and a random id is a new document on every run.

    Args:
        item: A `Document`, a string, a mapping, or a LangChain or LlamaIndex document.
        text_field: Key of the text in a mapping.
        id_field: Key of the id in a mapping; `None` uses `"id"` when present.

    Raises:
        ValueError: If a mapping lacks the text field, or an explicit id field.
        TypeError: For any other kind of item.
    """
    if isinstance(item, Document):
        return item
    if isinstance(item, str):
        return Document(item)
    if isinstance(item, Mapping):
        return _from_mapping(item, text_field, id_field)
    metadata = getattr(item, "metadata", None)
    if isinstance(metadata, Mapping):
        page_content = getattr(item, "page_content", None)
        if isinstance(page_content, str):  # LangChain
            raw_id = getattr(item, "id", None)
            return Document(page_content, id=None if raw_id is None else str(raw_id), metadata=dict(metadata))
        node_id = getattr(item, "id_", None)
        if node_id is not None:  # LlamaIndex
            text = getattr(item, "text", None)
            get_content = getattr(item, "get_content", None)
            if not isinstance(text, str) and callable(get_content):
                text = get_content()
            if isinstance(text, str):
                return Document(text, id=str(node_id), metadata=dict(metadata))
    raise TypeError(
        f"cannot ingest a {type(item).__name__}: pass Document, str or dict items, or LangChain or "
        "LlamaIndex documents"
    )


def _from_mapping(item: Mapping[str, Any], text_field: str, id_field: str | None) -> Document:
    if text_field not in item:
        raise ValueError(f"record has no {text_field!r} field (fields: {sorted(map(str, item))})")
    text = item[text_field]
    if not isinstance(text, str):
        raise ValueError(f"field {text_field!r} must hold a string, got {type(text).__name__}")
    key = id_field or "id"
    if id_field is not None and item.get(id_field) is None:
        raise ValueError(f"record has no {id_field!r} id field (fields: {sorted(map(str, item))})")
    raw_id = item.get(key)
    doc_id = None if raw_id is None else document_id(raw_id, f"id field {key!r}")
    metadata = {str(k): v for k, v in item.items() if k not in (text_field, key)}
    if set(metadata) == {"metadata"} and isinstance(metadata["metadata"], Mapping):
        metadata = dict(metadata["metadata"])
    return Document(text, id=doc_id, metadata=metadata)
