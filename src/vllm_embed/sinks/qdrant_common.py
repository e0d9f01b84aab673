"""What the Qdrant sinks share, whichever client they drive: settings, payload index keys, filter conditions.

`QdrantSink` (qdrant-client) and `QdrantEdgeSink` (the embedded engine, qdrant-edge-py) build their
requests from different classes; the decisions behind them (which payload paths are indexed and with what
type, how a metadata filter becomes conditions, what the manifest records) are made once here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vllm_embed.errors import StorageSettingsError as StorageSettingsError
from vllm_embed.sinks.base import MetadataFilter, MetadataValue, check_filter
from vllm_embed.sinks.layouts import Layout
from vllm_embed.sinks.storage import IndexField, QdrantCollectionSettings, QdrantSearchSettings, validated


def collection_settings(owner: str, **values: Any) -> QdrantCollectionSettings:
    """`validated(QdrantCollectionSettings, ...)`: the creation settings of a Qdrant collection."""
    return validated(QdrantCollectionSettings, owner, **values)


def search_settings(owner: str, **values: Any) -> QdrantSearchSettings:
    """`validated(QdrantSearchSettings, ...)`: the search settings of a Qdrant sink."""
    return validated(QdrantSearchSettings, owner, **values)


def recorded_storage(settings: Mapping[str, Any], fields: Iterable[IndexField]) -> dict[str, Any]:
    """What `Manifest.storage` records: the creation settings and the indexed metadata fields (NAME:TYPE)."""
    return {**settings, "index_fields": [field.to_spec() for field in fields]}


def recorded_index_fields(storage: Mapping[str, Any] | None) -> list[str]:
    """The `NAME:TYPE` specs a manifest's storage records (none for a manifest from before they were)."""
    return list((storage or {}).get("index_fields") or [])


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

    @property
    def is_range(self) -> bool:
        """Whether the condition is a range (a float value) rather than a match."""
        return isinstance(self.value, float)


def filter_conditions(layout: Layout, filter: MetadataFilter | None) -> list[Condition]:
    """The conditions (all must hold) of a metadata filter, keyed where the layout stores metadata.

    Raises:
        ValueError: If the filter is malformed (see `check_filter`) or a key cannot be addressed.
    """
    return [
        Condition(layout.qdrant_key(layout.metadata_path("qdrant", key)), value)
        for key, value in check_filter(filter).items()
    ]
