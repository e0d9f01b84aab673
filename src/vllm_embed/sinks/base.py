"""The `Sink` protocol, the collection manifest, and the behaviour the sinks share.

What a point stores next to its vector is a `Layout` (see `vllm_embed.sinks.layouts`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import threading
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, ValidationError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from vllm_embed._utils import one_line
from vllm_embed.errors import ManifestError, UnmanagedCollectionError, VllmEmbedError
from vllm_embed.sinks.chunks import Chunk as Chunk
from vllm_embed.sinks.chunks import Hit as Hit
from vllm_embed.sinks.layouts import Layout as Layout
from vllm_embed.sinks.layouts import get_layout
from vllm_embed.sinks.storage import IndexField, storage_mismatches
from vllm_embed.sinks.storage import index_fields as index_fields_of

logger = logging.getLogger(__name__)

T = TypeVar("T")

MetadataValue = str | int | float | bool
"""A value a metadata filter can match by equality."""

MetadataFilter = Mapping[str, MetadataValue]
"""`{"field": value, ...}`: every metadata field must equal its value."""


class SinkError(VllmEmbedError, RuntimeError):
    """A store operation failed for good (a permanent error, or a transient one that outlived its retries)."""


class ManifestMismatchError(VllmEmbedError, ValueError):
    """The collection was embedded differently (another model, size or layout) from this run."""


class CollectionNotFoundError(VllmEmbedError, LookupError):
    """The collection does not exist (or was not created by vllm-embed)."""


@dataclass(frozen=True)
class CollectionInfo:
    """What a store reports about one collection (`vllm-embed collections info`).

    The vector, storage and payload-index settings are read back from the store, not from the manifest.
    """

    name: str
    """Collection name."""
    store: str
    """The sink that read it, e.g. `QdrantEdgeSink(path='./qdrant')`."""
    manifest: Manifest | None
    """The vllm-embed manifest, or `None` for a collection vllm-embed did not create (adoptable)."""
    points: int
    """Number of points (rows)."""
    dimensions: int | None
    """Size of the dense vector (`None` when the store has no dense vector under the layout's name)."""
    distance: str | None
    """Similarity of the dense vector, lower case (`cosine`, `dot`, `euclid`, `l2`, `ip`, …)."""
    storage: dict[str, Any] = field(default_factory=dict)
    """Vector storage as the store reports it: quantization, HNSW settings, on-disk (Qdrant), index type
    and parameters (Milvus)."""
    payload_indexes: dict[str, str] = field(default_factory=dict)
    """Indexed payload fields and their index type, as the store reports them."""
    disk_bytes: int | None = None
    """Size on disk when the store reports it (local directories and files)."""

    def to_dict(self) -> dict[str, Any]:
        """The info as JSON-ready data."""
        data = dataclasses.asdict(self)
        data["manifest"] = None if self.manifest is None else self.manifest.model_dump()
        return data


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
    # -- chunking (vllm_embed.ingest.splitters); `None` in collections made before it was recorded --
    splitter: str | None = None
    """How documents were split: `text`, `markdown`, `tokens`, or a callable's qualified name."""
    chunk_tokens: int | None = None
    """Longest chunk in tokens of the model's input (document prompt and special tokens included)."""
    chunk_overlap: int | None = None
    """Tokens shared by consecutive chunks."""

    _CHUNKING: ClassVar[tuple[str, ...]] = ("splitter", "chunk_tokens", "chunk_overlap")

    def chunking_mismatches(self, other: Manifest) -> list[str]:
        """Describes each chunking setting that differs from `other` (this one is the stored one).

        A collection from before chunking was recorded counts as `tokens` (fixed token windows, the only
        splitter then) of any size.
        """
        if self.splitter is None:
            splitter = other.splitter or "tokens"
            if splitter == "tokens":
                return []
            return [
                "splitter: collection has 'tokens' (fixed token windows: its manifest, from an older "
                f"version or written without chunking settings, records none), this run has {splitter!r}"
            ]
        return [
            f"{name}: collection has {getattr(self, name)!r}, this run has {getattr(other, name)!r}"
            for name in self._CHUNKING
            if getattr(other, name) is not None and getattr(self, name) != getattr(other, name)
        ]

    # -- end of chunking --
    layout: str = "vllm-embed"
    """Payload layout (see `Layout`)."""
    distance: str = "cosine"
    """Similarity metric of the collection."""
    vllm_embed_version: str = ""
    """vllm-embed version that created the collection."""
    sparse: str | None = None
    """Sparse representation stored beside the dense vector (`"bm25"` in a hybrid collection), or `None`."""
    sparse_vector: str | None = None
    """Name of the sparse vector (Qdrant) or sparse field (Milvus) of a hybrid collection."""
    sparse_analyzer: dict[str, Any] | None = None
    """How the sparse vectors are made: the encoder package, version and settings (Qdrant, computed
    client-side), or the text field's analyzer parameters (Milvus, computed by the server)."""
    storage: dict[str, Any] | None = None
    """Creation settings of the collection (`vllm_embed.sinks.storage`): quantization, HNSW and on-disk
    (Qdrant) or index type and parameters (Milvus), and `index_fields` (the payload-indexed metadata fields
    as `NAME:TYPE`); `None` in collections made before they were recorded (the store's defaults)."""
    adopted: bool = False
    """Whether vllm-embed adopted a collection someone else created (`adopt=True`, `--adopt`)."""

    _COMPARED: ClassVar[tuple[str, ...]] = ("model", "dimensions", "normalized", "layout", "distance")

    @classmethod
    def from_description(cls, description: Mapping[str, Any], layout: str = "vllm-embed") -> Manifest:
        """Builds the manifest of an embedder from its `describe()` output (other keys are ignored)."""
        return cls.model_validate({**description, "layout": layout})

    @classmethod
    def from_stored(cls, stored: object, *, collection: str, location: str, repair: str) -> Manifest:
        """Reads a manifest as a store kept it: a dict, or its JSON text.

        Args:
            stored: What the store returned.
            collection: Collection name, for the message.
            location: Where the store keeps the manifest (e.g. "Qdrant collection metadata key 'vllm_embed'").
            repair: How to rewrite it, for the message.

        Raises:
            ManifestError: Saying the manifest is damaged, what is wrong and how to repair it.
        """
        try:
            fields = json.loads(stored) if isinstance(stored, str | bytes) else stored
            if not isinstance(fields, dict):
                raise ValueError(f"expected a JSON object, got {type(fields).__name__}")
            return cls.model_validate(fields)
        except (ValueError, ValidationError) as exc:
            problem = one_line(exc)
        raise ManifestError(
            f"the vllm-embed manifest of collection {collection!r} is damaged ({location}: {problem}); "
            f"{repair}"
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
    ) -> list[Hit]:
        """Returns the `top_k` points of the reciprocal-rank fusion of a dense and a BM25 search.

        Each search keeps its best `candidates` points (4 × `top_k` when `None`).
        """
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


def is_transient_grpc_error(exc: BaseException, codes: Collection[str]) -> bool:
    """Whether `exc` is a gRPC error whose status code (by name, e.g. `"UNAVAILABLE"`) is one of `codes`."""
    try:
        import grpc
    except ImportError:  # pragma: no cover - grpc ships with both store clients
        return False
    if not isinstance(exc, grpc.RpcError):
        return False
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    return getattr(code, "name", None) in codes


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


class BaseSink:
    """Shared behaviour of the sinks: one lock around the client, retries with backoff, clear errors.

    A client the sink created is closed by `close()`, when the sink is garbage-collected, or at interpreter
    exit, whichever comes first (so an unclosed local store still releases its lock cleanly).

    Args:
        collection: Collection name.
        layout: Payload layout name (`"vllm-embed"`, `"langchain"`, `"llama-index"`), or `None` for the
            existing collection's layout (`"vllm-embed"` for a new one).
        max_attempts: Attempts per operation when the store reports a transient error.
        retry_wait: First backoff wait in seconds (doubles each attempt, with jitter, up to 30 s).
        hybrid: Whether the collection stores BM25 sparse vectors beside the dense ones; `None` for the
            existing collection's choice (dense only for a new one).
        index_fields: Metadata fields to index for filtering, as `NAME` (keyword) or `NAME:TYPE`
            (`vllm_embed.sinks.storage.IndexField`); `doc_id` is always indexed. Fields missing from an
            existing collection are indexed on `prepare`.
        adopt: Take over an existing collection that vllm-embed did not create (it has no manifest) when
            its dense vector's size and distance fit the run: `prepare` checks them and writes the manifest.
    """

    construction: tuple[tuple[Any, ...], dict[str, Any]]
    """The constructor's arguments: another process (a Ray worker) opens the same collection with them."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:  # noqa: D102 - records `construction`
        sink = super().__new__(cls)
        sink.construction = (args, dict(kwargs))
        return sink

    def __init__(
        self,
        collection: str,
        *,
        layout: str | None,
        max_attempts: int,
        retry_wait: float,
        hybrid: bool | None = None,
        index_fields: Iterable[str | IndexField] = (),
        adopt: bool = False,
    ) -> None:
        if not collection:
            raise ValueError("collection must be a non-empty name")
        if max_attempts < 1:
            raise ValueError(f"max_attempts={max_attempts} must be at least 1")
        self.collection = collection
        self._layout = None if layout is None else get_layout(layout)
        self._max_attempts = max_attempts
        self._retry_wait = retry_wait
        self._lock = threading.RLock()
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._hybrid = hybrid
        if hybrid and self._layout is not None:
            self._sparse_name(self._layout)
        self.index_fields: tuple[IndexField, ...] = index_fields_of(index_fields)
        self.adopt = adopt

    def _close_at_exit(self, close: Callable[[], object]) -> None:
        """Registers `close` (of a client this sink created) to run once: on `close()`, collection or exit."""
        self._finalizer = weakref.finalize(self, _close_quietly, close, repr(self))

    @property
    def layout(self) -> Layout:
        """The payload layout: the one asked for, else the collection's, else `"vllm-embed"`.

        A collection to adopt (`adopt=True`; it has no manifest to say) gets `"vllm-embed"` too.

        Raises:
            UnmanagedCollectionError: If the collection has no manifest and the sink does not adopt it.
        """
        if self._layout is None:
            try:
                manifest = self.read_manifest()
            except UnmanagedCollectionError:
                if not self.adopt:
                    raise
                manifest = None
            self._layout = get_layout(manifest.layout if manifest is not None else Layout.name)
        return self._layout

    def read_manifest(self) -> Manifest | None:
        """Returns the collection's manifest, or `None` when the collection does not exist."""
        raise NotImplementedError

    def _sparse_name(self, layout: Layout) -> str:
        """Returns the layout's sparse vector name in this store.

        Raises:
            ValueError: If the layout stores no sparse vector here.
        """
        raise NotImplementedError

    def _new_manifest(self, manifest: Manifest) -> Manifest:
        """Returns the manifest a new collection gets: `manifest`, with the sparse settings when hybrid."""
        if not self._hybrid:
            return manifest
        return manifest.model_copy(
            update={
                "sparse": "bm25",
                "sparse_vector": self._sparse_name(self.layout),
                "sparse_analyzer": self._sparse_analyzer(),
            }
        )

    def _sparse_analyzer(self) -> dict[str, Any]:
        """Returns what the manifest records of how sparse vectors are made in this store."""
        raise NotImplementedError

    def check_hybrid(self, stored: Manifest) -> None:
        """Refuses `hybrid=True` on a dense-only collection (`stored`) and `hybrid=False` on a hybrid one.

        Raises:
            ManifestMismatchError: Naming the fix.
        """
        if self._hybrid and stored.sparse is None:
            raise ManifestMismatchError(
                f"collection {self.collection!r} is dense-only and a sparse vector cannot be added to an "
                "existing collection: ingest with --hybrid (hybrid=True) into a new collection"
            )
        if self._hybrid is False and stored.sparse is not None:
            raise ManifestMismatchError(
                f"collection {self.collection!r} is hybrid (it stores {stored.sparse} sparse vectors); "
                "leave out --no-hybrid (hybrid=False) to keep filling them, or use another collection"
            )

    def _storage_requested(self) -> dict[str, Any]:
        """This sink's creation settings (what `Manifest.storage` records), `index_fields` left out."""
        return {}

    def _storage_defaults(self) -> dict[str, Any]:
        """The creation settings a sink has when none are given."""
        return {}

    def check_storage(self, stored: Manifest) -> None:
        """Refuses creation settings that differ from the existing collection's (`stored`).

        Settings left at their defaults follow the collection.

        Raises:
            ManifestMismatchError: Naming each differing setting, both sides, and the fix.
        """
        differences = storage_mismatches(stored.storage, self._storage_requested(), self._storage_defaults())
        if differences:
            raise ManifestMismatchError(
                f"collection {self.collection!r} was created with other storage settings "
                f"({'; '.join(differences)}): storage settings apply when a collection is created; leave "
                "them out to use the collection's, or ingest into a new collection"
            )

    def check_creation(self) -> None:
        """Refuses creation settings this store cannot apply to a new collection, before any model is known.

        Raises:
            StorageSettingsError: Naming the setting and the fix (none by default).
        """

    def check_adoptable(self, dimensions: int | None, distance: str | None, manifest: Manifest) -> None:
        """Refuses to adopt a collection whose dense vector does not fit `manifest`.

        Args:
            dimensions: Size of the collection's dense vector under the layout's name (`None`: it has none).
            distance: Its distance, lower case as in `Manifest.distance`.
            manifest: What this run would record.

        Raises:
            ManifestMismatchError: Naming both sides of each difference.
        """
        problems = []
        if dimensions is None:
            problems.append(f"it has no dense vector where the {self.layout.name} layout keeps it")
        elif dimensions != manifest.dimensions:
            problems.append(f"vector size: collection has {dimensions}, this run has {manifest.dimensions}")
        if dimensions is not None and distance != manifest.distance:
            problems.append(f"distance: collection has {distance!r}, this run has {manifest.distance!r}")
        if problems:
            raise ManifestMismatchError(
                f"collection {self.collection!r} cannot be adopted ({'; '.join(problems)}): ingest with the "
                "model and --dimensions the collection was made for, or into a new collection"
            )

    def info(self) -> CollectionInfo:
        """Reads back what the store reports about this collection.

        Raises:
            CollectionNotFoundError: If the collection does not exist.
        """
        raise NotImplementedError

    def collection_names(self) -> list[str]:
        """Returns the names of every collection in this sink's store (database, directory or server)."""
        raise NotImplementedError

    def for_collection(self, name: str) -> Self:
        """Returns a sink on another collection of the same store, sharing this sink's client where it can."""
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
            raise SinkError(f"{self}: {action} failed: {one_line(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def __enter__(self) -> BaseSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def check_document_id(self, doc_id: str) -> None:
        """Raises `ValueError` naming the limit when the store cannot keep `doc_id`; any id by default."""

    def write_manifest(self, manifest: Manifest) -> None:
        """Replaces the stored manifest of an existing collection: the repair for a damaged manifest.

        Give the settings the collection was embedded with, e.g.
        `Manifest.from_description(embedder.describe(), layout="vllm-embed")`. A hybrid collection's sparse
        settings are read from the collection itself when `manifest` has none (on Qdrant, the installed
        BM25 analyzer's).

        Raises:
            CollectionNotFoundError: If the collection does not exist.
            ManifestMismatchError: If `manifest.dimensions` is not the collection's vector size.
        """
        dimensions = self._stored_dimensions(get_layout(manifest.layout))
        if dimensions is None:
            raise CollectionNotFoundError(f"collection {self.collection!r} does not exist in {self!r}")
        if dimensions != manifest.dimensions:
            raise ManifestMismatchError(
                f"collection {self.collection!r} holds {dimensions}-dimensional vectors, the manifest says "
                f"{manifest.dimensions}: give the model the collection was embedded with"
            )
        if manifest.sparse is None:
            manifest = self._with_stored_sparse(manifest)
        self._store_manifest(manifest)
        self._layout = get_layout(manifest.layout)

    def _stored_dimensions(self, layout: Layout) -> int | None:
        """Returns the size of `layout`'s vector in the collection (`None` if the collection is missing)."""
        raise NotImplementedError

    def _store_manifest(self, manifest: Manifest) -> None:
        """Writes `manifest` over the existing collection's stored one."""
        raise NotImplementedError

    def _with_stored_sparse(self, manifest: Manifest) -> Manifest:
        """Returns `manifest` with the sparse settings of a hybrid collection (`manifest` if it is dense)."""
        return manifest

    def _repair_hint(self, constructor: str) -> str:
        """How to rewrite this collection's manifest, for `ManifestError` messages."""
        return (
            "rewrite it with the settings the collection was embedded with: "
            f"`{constructor}.write_manifest(Manifest.from_description(embedder.describe(), layout=...))` "
            "(vllm_embed.sinks), or delete the collection and ingest again"
        )

    def close(self) -> None:
        """Releases the client if this sink created it (a client passed in is left open)."""
        if self._finalizer is not None:
            self._finalizer()


RetryingSink = BaseSink
"""The former name of `BaseSink`."""


def _close_quietly(close: Callable[[], object], owner: str) -> None:
    try:
        close()
    except Exception:  # a failing close must not mask the program's own outcome
        logger.debug("%s: closing the client failed", owner, exc_info=True)
