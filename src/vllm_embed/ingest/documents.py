"""`Document`, and turning the things users pass to `ingest` (documents, strings, dicts) into documents."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vllm_embed.ingest.ids import content_id


@dataclass(frozen=True, slots=True)
class Document:
    """A text to ingest, with an optional id and metadata.

    Attributes:
        text: The document text.
        id: Stable id of the document; when `None`, a hash of the text is used, so re-ingesting the same
            text finds the same points.
        metadata: JSON-serialisable fields stored with every chunk and matched by search filters.
    """

    text: str
    id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TypeError(f"Document.text must be a string, got {type(self.text).__name__}")
        if self.id is not None and not isinstance(self.id, str):
            object.__setattr__(self, "id", str(self.id))
        if not isinstance(self.metadata, Mapping):
            raise TypeError(f"Document.metadata must be a mapping, got {type(self.metadata).__name__}")

    @property
    def doc_id(self) -> str:
        """The id chunks are stored under: `id`, or a content hash when there is none."""
        return self.id if self.id is not None else content_id(self.text)


def as_document(
    item: Document | str | Mapping[str, Any], text_field: str = "text", id_field: str | None = None
) -> Document:
    """Turns one input item into a `Document`.

    A dict gives its `text_field` as the text, its `id_field` (or `"id"` when `id_field` is `None`) as the
    id, and every other field as metadata; a dict holding only a `"metadata"` mapping besides text and id
    uses that mapping.

    Args:
        item: A `Document`, a string, or a mapping.
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
        if text_field not in item:
            raise ValueError(f"record has no {text_field!r} field (fields: {sorted(map(str, item))})")
        text = item[text_field]
        if not isinstance(text, str):
            raise ValueError(f"field {text_field!r} must hold a string, got {type(text).__name__}")
        key = id_field or "id"
        if id_field is not None and item.get(id_field) is None:
            raise ValueError(f"record has no {id_field!r} id field (fields: {sorted(map(str, item))})")
        raw_id = item.get(key)
        metadata = {str(k): v for k, v in item.items() if k not in (text_field, key)}
        if set(metadata) == {"metadata"} and isinstance(metadata["metadata"], Mapping):
            metadata = dict(metadata["metadata"])
        return Document(text, id=None if raw_id is None else str(raw_id), metadata=metadata)
    raise TypeError(f"cannot ingest a {type(item).__name__}: pass Document, str or dict items")
