"""What a sink is to its callers: the `Sink` protocols, metadata filters, and the stored-vector batches."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from vllm_embed.sinks.chunks import Chunk, Hit
from vllm_embed.sinks.fusion import FusionSettings
from vllm_embed.sinks.layouts import Layout
from vllm_embed.sinks.manifest import CollectionState, Manifest
from vllm_embed.sinks.spec import SinkSpec

MetadataValue = str | int | float | bool
"""A value a metadata filter can match by equality."""

MetadataFilter = Mapping[str, MetadataValue]
"""`{"field": value, ...}`: every metadata field must equal its value."""


@runtime_checkable
class Sink(Protocol):
    """A vector store collection that the ingest pipeline writes to and `search` reads from.

    Implementations must be safe to call from two threads (the pipeline checks existing points while its
    writer thread upserts). `vllm_embed.sinks.BaseSink` implements it (and `HybridSink`, `VerifiableSink`)
    over a store's hooks; every sink vllm-embed ships is one.
    """

    collection: str
    adopt: bool
    """Whether `prepare` takes over a collection vllm-embed did not create."""

    def state(self) -> CollectionState:
        """Reads the collection's state once: missing, unmanaged (no manifest) or managed."""
        ...

    def spec(self) -> SinkSpec:
        """A picklable value that opens this collection again (`spec.open()`), in another process too."""
        ...

    def check_hybrid(self, stored: Manifest) -> None:
        """Refuses a `hybrid` choice the existing collection (`stored`) cannot follow."""
        ...

    def check_storage(self, stored: Manifest) -> None:
        """Refuses creation settings or index-field types that differ from the existing collection's."""
        ...

    def check_creation(self) -> None:
        """Refuses creation settings this store cannot apply to a new collection."""
        ...

    @property
    def layout(self) -> Layout:
        """The payload layout of the collection."""
        ...

    def read_manifest(self) -> Manifest | None:
        """Returns the collection's manifest, or `None` when the collection does not exist."""
        ...

    def prepare(self, manifest: Manifest) -> None:
        """Creates the collection (with `manifest`) when missing, or checks the stored manifest matches."""
        ...

    def fetch_texts(self, ids: Sequence[str]) -> dict[str, str]:
        """Returns the stored text of each of `ids` that exists."""
        ...

    def stored_text(self, text: str) -> str:
        """Returns what the store keeps of `text` (some stores limit its length)."""
        ...

    def check_document_id(self, doc_id: str) -> None:
        """Raises `ValueError` naming the limit when the store cannot keep `doc_id` (length, characters)."""
        ...

    def upsert(self, chunks: Sequence[Chunk], vectors: NDArray[np.float32]) -> None:
        """Inserts or replaces the points of `chunks`."""
        ...

    def delete_chunks_from(self, doc_id: str, first_index: int) -> None:
        """Deletes the chunks of `doc_id` whose `chunk_index` is `first_index` or more."""
        ...

    def search(
        self, vector: NDArray[np.float32], top_k: int, filter: MetadataFilter | None = None
    ) -> list[Hit]:
        """Returns the `top_k` points closest to `vector` whose metadata matches `filter`."""
        ...

    def count(self) -> int:
        """Returns the number of points in the collection."""
        ...

    def close(self) -> None:
        """Releases the client (and a local store's lock)."""
        ...


@runtime_checkable
class HybridSink(Sink, Protocol):
    """A sink that can also store BM25 sparse vectors and search them alone or fused with the dense ones."""

    def sparse_search(self, query: str, top_k: int, filter: MetadataFilter | None = None) -> list[Hit]:
        """Returns the `top_k` points with the highest BM25 score for the text `query`."""
        ...

    def hybrid_search(
        self,
        query: str,
        vector: NDArray[np.float32],
        top_k: int,
        filter: MetadataFilter | None = None,
        candidates: int | None = None,
        fusion: FusionSettings | None = None,
    ) -> list[Hit]:
        """Returns the `top_k` points of the fusion (`fusion`, RRF by default) of a dense and a BM25 search.

        Each search keeps its best `candidates` points (4 × `top_k` when `None`); each hit's `found_by`
        names the searches that held it.
        """
        ...


StoredVectors = list[tuple[str, NDArray[np.float32] | None]]
"""A batch of stored points: (point id, vector as stored, or `None` when the point has none)."""


@runtime_checkable
class VerifiableSink(Sink, Protocol):
    """A sink that can list its stored vectors and replace some of them (what `verify_collection` needs)."""

    def iter_vectors(self, batch_size: int) -> Iterator[StoredVectors]:
        """Yields every stored point's id and vector, `batch_size` points at a time."""
        ...

    def replace_vectors(self, ids: Sequence[str], vectors: NDArray[np.float32]) -> None:
        """Replaces the vectors of existing points, leaving their payloads as they are."""
        ...

    def write_manifest(self, manifest: Manifest) -> None:
        """Replaces the stored manifest of an existing collection."""
        ...


def check_filter(filter: MetadataFilter | None) -> dict[str, MetadataValue]:
    """Validates a metadata filter and returns it as a dict.

    Raises:
        ValueError: If a key is empty or a value is not a string, number or boolean.
    """
    if not filter:
        return {}
    checked: dict[str, MetadataValue] = {}
    for key, value in filter.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"filter keys must be non-empty strings, got {key!r}")
        if not isinstance(value, str | int | float | bool):
            raise ValueError(
                f"filter value for {key!r} must be a string, number or boolean, got {type(value).__name__}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"filter value for {key!r} must be finite, got {value!r}")
        checked[key] = value
    return checked
