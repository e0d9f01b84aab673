"""The `Sink` protocol, the collection manifest, and the behaviour the sinks share.

What a point stores next to its vector is a `Layout` (see `vllm_embed.sinks.layouts`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from vllm_embed.sinks.chunks import Chunk as Chunk
from vllm_embed.sinks.chunks import Hit as Hit
from vllm_embed.sinks.layouts import Layout as Layout
from vllm_embed.sinks.layouts import get_layout

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
    layout: str = "vllm-embed"
    """Payload layout (see `Layout`)."""
    distance: str = "cosine"
    """Similarity metric of the collection."""
    vllm_embed_version: str = ""
    """vllm-embed version that created the collection."""

    _COMPARED: ClassVar[tuple[str, ...]] = ("model", "dimensions", "normalized", "layout", "distance")

    @classmethod
    def from_description(cls, description: Mapping[str, Any], layout: str = "vllm-embed") -> Manifest:
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
        layout: Payload layout name (`"vllm-embed"`, `"langchain"`, `"llama-index"`), or `None` for the
            existing collection's layout (`"vllm-embed"` for a new one).
        max_attempts: Attempts per operation when the store reports a transient error.
        retry_wait: First backoff wait in seconds (doubles each attempt, with jitter, up to 30 s).
    """

    def __init__(self, collection: str, *, layout: str | None, max_attempts: int, retry_wait: float) -> None:
        if not collection:
            raise ValueError("collection must be a non-empty name")
        if max_attempts < 1:
            raise ValueError(f"max_attempts={max_attempts} must be at least 1")
        self.collection = collection
        self._layout = None if layout is None else get_layout(layout)
        self._max_attempts = max_attempts
        self._retry_wait = retry_wait
        self._lock = threading.RLock()

    @property
    def layout(self) -> Layout:
        """The payload layout: the one asked for, else the collection's, else `"vllm-embed"`."""
        if self._layout is None:
            manifest = self.read_manifest()
            self._layout = get_layout(manifest.layout if manifest is not None else Layout.name)
        return self._layout

    def read_manifest(self) -> Manifest | None:
        """Returns the collection's manifest, or `None` when the collection does not exist."""
        raise NotImplementedError

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

    def check_document_id(self, doc_id: str) -> None:
        """Raises `ValueError` naming the limit when the store cannot keep `doc_id`; any id by default."""

    def close(self) -> None:
        """Releases the client."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
