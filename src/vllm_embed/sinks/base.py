"""The `Sink` protocol, the collection manifest, and the one place that maps chunks to stored fields.

Every sink stores the same four payload fields (`text`, `doc_id`, `chunk_index`, `metadata`) next to the
vector; `Layout` is that mapping, so a framework layout (LangChain, LlamaIndex) is one more `Layout`.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

logger = logging.getLogger(__name__)

T = TypeVar("T")

MetadataValue = str | int | float | bool
"""A value a metadata filter can match by equality."""

MetadataFilter = Mapping[str, MetadataValue]
"""`{"field": value, ...}`: every metadata field must equal its value."""


class SinkError(RuntimeError):
    """A store operation failed for good (a permanent error, or a transient one that outlived its retries)."""


class ManifestMismatchError(ValueError):
    """The collection was embedded differently (another model, size or layout) from this run."""


class CollectionNotFoundError(LookupError):
    """The collection does not exist (or was not created by vllm-embed)."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document, ready to be embedded and stored.

    Attributes:
        id: Deterministic point id (UUID string) derived from `doc_id` and `chunk_index`.
        doc_id: Id of the source document.
        chunk_index: Position of this chunk in its document, from 0.
        text: The chunk's text.
        metadata: The source document's metadata.
    """

    id: str
    doc_id: str
    chunk_index: int
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result.

    Attributes:
        id: Point id.
        doc_id: Id of the source document.
        chunk_index: Position of the chunk in its document.
        score: Cosine similarity with the query (higher is closer).
        text: The stored chunk text.
        metadata: The source document's metadata.
    """

    id: str
    doc_id: str
    chunk_index: int
    score: float
    text: str
    metadata: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Returns the hit as a JSON-serialisable dict."""
        return {
            "id": self.id,
            "doc_id": self.doc_id,
            "chunk_index": self.chunk_index,
            "score": self.score,
            "text": self.text,
            "metadata": self.metadata,
        }


class Layout:
    """How chunks map to stored fields; the only place that knows the field names."""

    name: ClassVar[str] = "vllm-embed"
    id_field: ClassVar[str] = "id"
    vector_field: ClassVar[str] = "vector"
    text_field: ClassVar[str] = "text"
    doc_id_field: ClassVar[str] = "doc_id"
    chunk_index_field: ClassVar[str] = "chunk_index"
    metadata_field: ClassVar[str] = "metadata"

    def payload(self, chunk: Chunk, text: str | None = None) -> dict[str, Any]:
        """Returns the fields stored next to the vector.

        Args:
            chunk: The chunk.
            text: Text to store instead of `chunk.text` (a store that limits text length passes a cut one).
        """
        return {
            self.text_field: chunk.text if text is None else text,
            self.doc_id_field: chunk.doc_id,
            self.chunk_index_field: chunk.chunk_index,
            self.metadata_field: dict(chunk.metadata),
        }

    def hit(self, point_id: str, score: float, payload: Mapping[str, Any]) -> Hit:
        """Builds a `Hit` from a stored payload."""
        return Hit(
            id=str(point_id),
            doc_id=str(payload.get(self.doc_id_field, "")),
            chunk_index=int(payload.get(self.chunk_index_field, 0)),
            score=float(score),
            text=str(payload.get(self.text_field, "")),
            metadata=dict(payload.get(self.metadata_field) or {}),
        )

    def output_fields(self) -> list[str]:
        """Returns the payload fields a search must fetch."""
        return [self.text_field, self.doc_id_field, self.chunk_index_field, self.metadata_field]


_LAYOUTS: dict[str, Layout] = {Layout.name: Layout()}


def get_layout(name: str) -> Layout:
    """Returns the layout called `name`.

    Raises:
        ValueError: If no such layout exists.
    """
    try:
        return _LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown layout {name!r}; choose one of {sorted(_LAYOUTS)}") from None


class Manifest(BaseModel):
    """How a collection was embedded, stored with the collection itself."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    model: str
    """Model id or path the vectors come from."""
    profile: str | None = None
    """Model family (`ModelProfile.family`)."""
    dimensions: int
    """Vector size."""
    normalized: bool = True
    """Whether vectors are L2-normalised."""
    pooling: str | None = None
    """Pooling of the model (`mean`, `last`, `cls`)."""
    layout: str = Layout.name
    """Payload layout (see `Layout`)."""
    distance: str = "cosine"
    """Similarity metric of the collection."""
    vllm_embed_version: str = ""
    """vllm-embed version that created the collection."""

    _COMPARED: ClassVar[tuple[str, ...]] = ("model", "dimensions", "normalized", "layout", "distance")

    @classmethod
    def from_description(cls, description: Mapping[str, Any], layout: str = Layout.name) -> Manifest:
        """Builds the manifest of an embedder from its `describe()` output."""
        return cls(
            model=str(description["model"]),
            profile=None if description.get("profile") is None else str(description["profile"]),
            dimensions=int(description["dimensions"]),
            normalized=bool(description.get("normalized", True)),
            pooling=None if description.get("pooling") is None else str(description["pooling"]),
            layout=layout,
            vllm_embed_version=str(description.get("vllm_embed_version", "")),
        )

    def mismatches(self, other: Manifest) -> list[str]:
        """Returns a description of each setting that differs from `other` (this one is the stored one)."""
        return [
            f"{name}: collection has {getattr(self, name)!r}, this run has {getattr(other, name)!r}"
            for name in self._COMPARED
            if getattr(self, name) != getattr(other, name)
        ]

    def require_compatible(self, other: Manifest, collection: str) -> None:
        """Refuses a run whose embedding settings differ from the collection's.

        Raises:
            ManifestMismatchError: Naming every differing setting.
        """
        differences = self.mismatches(other)
        if differences:
            raise ManifestMismatchError(
                f"collection {collection!r} was embedded differently ({'; '.join(differences)}): "
                "use the collection's model and dimensions, or another collection"
            )


@runtime_checkable
class Sink(Protocol):
    """A vector store collection that the ingest pipeline writes to and `search` reads from.

    Implementations must be safe to call from two threads (the pipeline checks existing points while its
    writer thread upserts).
    """

    collection: str
    layout: Layout

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


class RetryingSink:
    """Shared behaviour of the sinks: one lock around the client, retries with backoff, clear errors.

    Args:
        collection: Collection name.
        layout: Payload layout name.
        max_attempts: Attempts per operation when the store reports a transient error.
        retry_wait: First backoff wait in seconds (doubles each attempt, with jitter, up to 30 s).
    """

    def __init__(self, collection: str, *, layout: str, max_attempts: int, retry_wait: float) -> None:
        if not collection:
            raise ValueError("collection must be a non-empty name")
        if max_attempts < 1:
            raise ValueError(f"max_attempts={max_attempts} must be at least 1")
        self.collection = collection
        self.layout = get_layout(layout)
        self._max_attempts = max_attempts
        self._retry_wait = retry_wait
        self._lock = threading.RLock()

    def _is_transient(self, exc: BaseException) -> bool:
        """Whether `exc` may go away when the operation is retried."""
        return isinstance(exc, ConnectionError | TimeoutError)

    def _call(self, action: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Runs one client operation under the lock, retrying transient errors.

        Raises:
            SinkError: When the operation fails for good.
        """
        retrying = Retrying(
            retry=retry_if_exception(self._is_transient),
            stop=stop_after_attempt(self._max_attempts),
            wait=wait_exponential_jitter(initial=self._retry_wait, max=30.0),
            before_sleep=lambda state: logger.warning(
                "%s: %s failed (attempt %d), retrying: %s",
                self,
                action,
                state.attempt_number,
                state.outcome.exception() if state.outcome else "",
            ),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt, self._lock:
                    return fn(*args, **kwargs)
        except Exception as exc:
            raise SinkError(f"{self}: {action} failed: {_one_line(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def __enter__(self) -> RetryingSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Releases the client."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
