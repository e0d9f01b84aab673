"""What the Qdrant sinks share, whichever client they drive: settings, payload index keys, filter conditions.

`QdrantSink` (qdrant-client) and `QdrantEdgeSink` (the embedded engine, qdrant-edge-py) build their
requests from different classes; the decisions behind them (which payload paths are indexed and with what
type, how a metadata filter becomes conditions, what the manifest records) are made once here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vllm_embed.errors import StorageSettingsError as StorageSettingsError
from vllm_embed.sinks.base import BaseSink, Hit, Manifest, MetadataFilter, MetadataValue, check_filter
from vllm_embed.sinks.layouts import Layout
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


class QdrantBaseSink(BaseSink):
    """What `QdrantSink` and `QdrantEdgeSink` do alike: Qdrant payloads, BM25 sparse vectors, settings.

    Subclasses set `settings` in their constructor. Collection names follow the Qdrant server's rules.
    """

    settings: QdrantCollectionSettings
    store_label = "Qdrant collection"

    def _name_problem(self, name: str) -> str | None:
        return qdrant_name_problem(name)

    def _storage_requested(self) -> dict[str, Any]:
        return self.settings.model_dump()

    def _storage_defaults(self) -> dict[str, Any]:
        return QdrantCollectionSettings().model_dump()

    def _sparse_name(self, layout: Layout) -> str:
        if not layout.qdrant_sparse_vector:
            raise ValueError(
                f"the {layout.name} layout stores no sparse vector on Qdrant, so it cannot be hybrid: use "
                "layout 'vllm-embed' or 'langchain' for a hybrid collection, or leave out --hybrid"
            )
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
            hit = self.layout.qdrant_hit(str(point.id), point.score, point.payload or {})
            by = tuple(branch for branch, ids in found.items() if ids is None or hit.id in ids)
            hits.append(dataclasses.replace(hit, found_by=by))
        return hits
