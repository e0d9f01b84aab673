"""The one sink API and the collection lifecycle, written once for every store: `BaseSink` over store hooks.

(Over ~500 lines: the API every caller uses, the lifecycle and every store hook's declaration live together.)
State, create / adopt, run checks, index fields, retries under one lock, sparse state, spec and close are
here; a store only implements the hooks marked "store hook". What a point stores is a `Layout`; the learned
sparse and per-token vectors a collection may keep beside the dense one are `vector_kinds.VectorKinds`.
"""

from __future__ import annotations

import inspect
import logging
import threading
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

import numpy as np
from numpy.typing import NDArray
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from vllm_embed._utils import one_line
from vllm_embed.errors import ManifestError, UnmanagedCollectionError
from vllm_embed.sinks.chunks import Chunk as Chunk
from vllm_embed.sinks.chunks import Hit as Hit
from vllm_embed.sinks.chunks import MultiVector as MultiVector
from vllm_embed.sinks.chunks import SparseQuery as SparseQuery
from vllm_embed.sinks.filters import MetadataFilter as MetadataFilter
from vllm_embed.sinks.filters import MetadataValue as MetadataValue
from vllm_embed.sinks.filters import StoredVectors as StoredVectors
from vllm_embed.sinks.filters import check_filter as check_filter
from vllm_embed.sinks.fusion import FusionSettings, fuse
from vllm_embed.sinks.layouts import DEFAULT_LAYOUT, LAYOUTS, get_layout
from vllm_embed.sinks.layouts import Layout as Layout
from vllm_embed.sinks.manifest import MISSING, UNMANAGED, CollectionState
from vllm_embed.sinks.manifest import CollectionInfo as CollectionInfo
from vllm_embed.sinks.manifest import CollectionNotFoundError as CollectionNotFoundError
from vllm_embed.sinks.manifest import Manifest as Manifest
from vllm_embed.sinks.manifest import ManifestMismatchError as ManifestMismatchError
from vllm_embed.sinks.manifest import SinkError as SinkError
from vllm_embed.sinks.names import check_name
from vllm_embed.sinks.spec import SinkSpec
from vllm_embed.sinks.storage import IndexField, storage_mismatches
from vllm_embed.sinks.storage import index_fields as index_fields_of
from vllm_embed.sinks.vector_kinds import UNKNOWN as UNKNOWN
from vllm_embed.sinks.vector_kinds import VectorKinds

if TYPE_CHECKING:
    from vllm_embed.learned_sparse import SparseVector

logger = logging.getLogger(__name__)

T = TypeVar("T")
ClientT = TypeVar("ClientT")


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


class BaseSink(VectorKinds):
    """A vector store collection: what ingest writes to, `search` reads from and `verify` checks and repairs.

    The one sink API (`Sink` names it too), safe to call from two threads. A client the sink created is
    closed by `close()`, garbage collection or interpreter exit, whichever comes first.

    Args:
        collection: Collection name (checked against the store's naming rules here, before any I/O).
        layout: Payload layout (`"vllm-embed"`, `"langchain"`, `"llama-index"`); `None`: the collection's.
        max_attempts: Attempts per operation when the store reports a transient error.
        retry_wait: First backoff wait in seconds (doubles each attempt, with jitter, up to 30 s).
        hybrid: Store BM25 sparse vectors beside the dense ones; `None`: the collection's (new: dense only).
        index_fields: Metadata fields to index, as `NAME` (keyword) or `NAME:TYPE` (`doc_id` always is).
        adopt: Take over an existing collection without vllm-embed manifest when its dense vector fits.

    Raises:
        CollectionNameError: If the store would refuse the collection name (one line naming the rule).
    """

    store_label: ClassVar[str] = "store"
    """How messages name the store's collections, e.g. `"Qdrant collection"`."""
    _sibling_attributes: ClassVar[tuple[str, ...]] = ()
    """Attributes `for_collection` copies to the new sink (how the store was addressed)."""

    _connection: dict[str, Any] | None = None
    """The options that connect to the store again (`spec()`); `None` for a sink on a caller's client."""

    def __init__(
        self,
        collection: str,
        layout: str | None,
        max_attempts: int,
        retry_wait: float,
        hybrid: bool | None = None,
        index_fields: Iterable[str | IndexField] = (),
        adopt: bool = False,
    ) -> None:
        check_name(collection, self._name_problem(collection), type(self).__name__)
        if max_attempts < 1:
            raise ValueError(f"max_attempts={max_attempts} must be at least 1")
        self.collection = collection
        self._layout = None if layout is None else get_layout(layout)
        self._max_attempts, self._retry_wait = max_attempts, retry_wait
        self._lock = threading.RLock()
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._hybrid = hybrid
        if hybrid and self._layout is not None:
            self._sparse_name(self._layout)
        self.index_fields: tuple[IndexField, ...] = index_fields_of(index_fields)
        self.adopt = adopt
        specs = tuple(field.to_spec() for field in self.index_fields)
        self._choices = {"layout": layout, "hybrid": hybrid, "index_fields": specs, "adopt": adopt}  # spec()
        self._sparse: Any = UNKNOWN
        self._vectors: Any = UNKNOWN  # the manifest whose vector kinds writes and searches follow

    def _close_at_exit(self, close: Callable[[], object]) -> None:
        """Registers `close` (of a client this sink created) to run once: on `close()`, collection or exit."""
        self._finalizer = weakref.finalize(self, _close_quietly, close, repr(self))

    # -- store hooks ---------------------------------------------------------------------------------------

    def _name_problem(self, name: str) -> str | None:
        """Store hook: what the store's naming rules find wrong with `name` (`None`: nothing)."""
        return None if name else "must be a non-empty name"

    def _read_stored(self) -> tuple[bool, object]:
        """Store hook: whether the collection exists, and its stored manifest as kept (`None`: none)."""
        raise NotImplementedError

    def _manifest_location(self) -> str:
        """Store hook: where the store keeps the manifest, for messages."""
        raise NotImplementedError

    def _create(self, manifest: Manifest) -> Manifest:
        """Store hook: creates the collection with its indexes and `manifest`; returns the manifest it has."""
        raise NotImplementedError

    def _adopt(self, manifest: Manifest) -> Manifest:
        """Store hook: checks a collection without manifest fits, indexes it, writes its manifest."""
        raise NotImplementedError

    def _ensure_indexes(self, stored: Manifest, fields: Sequence[IndexField]) -> None:
        """Store hook: creates the payload indexes of `doc_id` and `fields` the collection lacks."""
        raise NotImplementedError

    def _prepared(self, stored: Manifest) -> None:
        """Store hook: takes note of the collection's manifest once `prepare` has checked it."""

    def _stored_dimensions(self, layout: Layout) -> int | None:
        """Store hook: the size of `layout`'s vector in the collection (`None`: the collection is missing)."""
        raise NotImplementedError

    def _store_manifest(self, manifest: Manifest) -> None:
        """Store hook: writes `manifest` over the existing collection's stored one."""
        raise NotImplementedError

    def _with_stored_sparse(self, manifest: Manifest) -> Manifest:
        """Store hook: `manifest` with the sparse settings of a hybrid collection (`manifest` if dense)."""
        return manifest

    def _layout_sparse(self, layout: Layout) -> str:
        """Store hook: the layout's sparse vector name in this store (`""`: it stores none here)."""
        raise NotImplementedError

    def _sparse_name(self, layout: Layout) -> str:
        """The layout's sparse vector name in this store; `ValueError` naming the layouts that have one."""
        name = self._layout_sparse(layout)
        if not name:
            hybrid = " or ".join(repr(name) for name, other in LAYOUTS.items() if self._layout_sparse(other))
            raise ValueError(
                f"the {layout.name} layout stores no sparse vector in a {self.store_label}, so it cannot be "
                f"hybrid: use layout {hybrid} for a hybrid collection, or leave out --hybrid"
            )
        return name

    def _sparse_analyzer(self) -> dict[str, Any]:
        """Store hook: what the manifest records of how sparse vectors are made in this store."""
        raise NotImplementedError

    def _sparse_of(self, manifest: Manifest | None) -> Any:
        """Store hook: the sparse state searches use (`None` for a dense-only collection)."""
        return None if manifest is None else manifest.sparse_vector

    def _storage_requested(self) -> dict[str, Any]:
        """Store hook: this sink's creation settings (as `Manifest.storage` records them), no index fields."""
        return {}

    def _storage_defaults(self) -> dict[str, Any]:
        """Store hook: the creation settings a sink has when none are given."""
        return {}

    def _options(self) -> dict[str, Any]:
        """Store hook: this sink's settings as constructor options (retries; the store adds its own)."""
        return {"max_attempts": self._max_attempts, "retry_wait": self._retry_wait}

    def _shared(self) -> bool:
        """Store hook: whether other processes may open the store while this sink has it open (a server)."""
        return False

    def _constructor_text(self) -> str:
        """How the sink was built, for messages (e.g. `QdrantSink('docs', url='http://…')`)."""
        return f"{type(self).__name__}({self.collection!r})"

    def _hits(self, store: str, rows: Iterable[tuple[Any, float, Any]], branch: str) -> list[Hit]:
        """Hits of (point id, score, stored record) rows found by the search `branch`."""
        return [self.layout.hit(store, str(i), score, record, (branch,)) for i, score, record in rows]

    def _collection_info(self, manifest: Manifest | None, **values: Any) -> CollectionInfo:
        """The `CollectionInfo` of this collection: its name and store, `manifest` and `values`."""
        return CollectionInfo(name=self.collection, store=repr(self), manifest=manifest, **values)

    # -- the collection's state --------------------------------------------------------------------------

    def state(self) -> CollectionState:
        """Reads the collection's state once: missing, unmanaged (no manifest) or managed (its manifest).

        Raises:
            ManifestError: If its manifest is damaged (saying how to repair it).
        """
        exists, stored = self._read_stored()
        if not exists:
            return MISSING
        if stored is None:
            return UNMANAGED
        location, repair = self._manifest_location(), self._repair_hint(self._constructor_text())
        manifest = Manifest.from_stored(stored, collection=self.collection, location=location, repair=repair)
        return CollectionState("managed", manifest)

    def read_manifest(self) -> Manifest | None:
        """Returns the collection's manifest, or `None` when the collection does not exist.

        Raises:
            UnmanagedCollectionError: If the collection has no vllm-embed manifest (it can be adopted).
            ManifestError: If its manifest is damaged.
        """
        state = self.state()
        if state.unmanaged:
            raise self._unmanaged_error()
        return state.manifest

    def _unmanaged_error(self) -> UnmanagedCollectionError:
        return UnmanagedCollectionError(
            f"{self.store_label} {self.collection!r} exists but has no vllm-embed manifest (vllm-embed did "
            "not create it): adopt it with --adopt (adopt=True) if its vectors fit this run, or ingest "
            "into a new collection"
        )

    def _known_manifest(self) -> Manifest | None:
        """The manifest when the collection has one (`None`: missing or unmanaged)."""
        return self.state().manifest

    @property
    def layout(self) -> Layout:
        """The payload layout: the one asked for, else the collection's, else (also to adopt) `"vllm-embed"`.

        Raises:
            UnmanagedCollectionError: If the collection has no manifest and the sink does not adopt it.
        """
        if self._layout is None:
            state = self.state()
            if state.unmanaged and not self.adopt:
                raise self._unmanaged_error()
            self._layout = get_layout(state.manifest.layout if state.manifest is not None else DEFAULT_LAYOUT)
        return self._layout

    def _described_layout(self, manifest: Manifest | None) -> Layout:
        """The layout to describe a collection with: its manifest's, else the one asked for, else default."""
        if manifest is not None:
            return get_layout(manifest.layout)
        return self._layout or get_layout(DEFAULT_LAYOUT)

    # -- prepare: create, adopt, or check --------------------------------------------------------------

    def prepare(self, manifest: Manifest) -> None:
        """Creates the collection with `manifest` when missing, checks it when it exists, adopts it if asked.

        Everything is checked before anything is written; the `index_fields` a collection lacks are indexed
        and added to its manifest; an adopted collection's manifest says `adopted=True`.

        Raises:
            ManifestMismatchError: If the collection was embedded differently, `hybrid`, the creation settings
                or an index field's type differ from it, or (adopting) its vectors do not fit.
            UnmanagedCollectionError: If the collection has no manifest and `adopt` is not set.
            SparseAnalyzerError: If the collection's BM25 analyzer is not the installed one.
        """
        state = self.state()
        if state.missing:
            self.check_creation()
            stored = self._create(self._new_manifest(manifest))
        elif state.manifest is None:
            if not self.adopt:
                raise self._unmanaged_error()
            stored = self._adopt(manifest)
        else:
            stored = self._check_existing(state.manifest, manifest)
        self._sparse, self._vectors = self._sparse_of(stored), stored
        self._prepared(stored)

    def _check_existing(self, stored: Manifest, manifest: Manifest) -> Manifest:
        """Runs the checks of this run (`manifest`) on a collection's, indexes the fields it lacks."""
        stored.require_compatible(manifest, self.collection)
        self.check_hybrid(stored)
        self.check_vector_kinds(stored, manifest)
        self.check_storage(stored)
        return self._add_index_fields(stored)

    def _new_manifest(self, manifest: Manifest) -> Manifest:
        """The manifest a new collection gets: `manifest` with storage settings, and sparse ones if hybrid."""
        storage = {**self._storage_requested(), "index_fields": [f.to_spec() for f in self.index_fields]}
        manifest = manifest.model_copy(update={"storage": storage})
        self.check_new_vectors(manifest.sparse, manifest.multivector is not None)
        if manifest.sparse == "learned":
            manifest = manifest.model_copy(update={"sparse_vector": self._sparse_name(self.layout)})
        elif self._hybrid:
            manifest = self._with_sparse(manifest)
        if manifest.multivector is not None:
            manifest = manifest.model_copy(update={"multivector_vector": self._multivector_name(self.layout)})
        return manifest

    def _with_sparse(self, manifest: Manifest) -> Manifest:
        """`manifest` recording the BM25 sparse vectors of the sink's layout in this store."""
        sparse = {"sparse_vector": self._sparse_name(self.layout), "sparse_analyzer": self._sparse_analyzer()}
        return manifest.model_copy(update={"sparse": "bm25", **sparse})

    def check_hybrid(self, stored: Manifest) -> None:
        """Refuses `hybrid=True` on a dense-only collection (`stored`) and `hybrid=False` on a hybrid one.

        Raises:
            ManifestMismatchError: Naming the fix.
        """
        if self._hybrid and stored.sparse is None:
            raise self._mismatch(
                "is dense-only and a sparse vector cannot be added to an existing collection: ingest with "
                "--hybrid (hybrid=True) into a new collection"
            )
        if self._hybrid and stored.sparse == "learned":
            raise self._mismatch(
                f"holds learned sparse vectors of {stored.sparse_label()}, not BM25: leave out --hybrid "
                "(hybrid=True) and pass its sparse model, or use another collection"
            )
        if self._hybrid is False and stored.sparse is not None:
            raise self._mismatch(
                f"is hybrid (it stores {stored.sparse} sparse vectors); leave out --no-hybrid (hybrid=False) "
                "to keep filling them, or use another collection"
            )

    def _mismatch(self, problem: str) -> ManifestMismatchError:
        """The `ManifestMismatchError` saying collection {name} `problem`."""
        return ManifestMismatchError(f"collection {self.collection!r} {problem}")

    def _refuse(self, what: str, problems: Sequence[str], fix: str) -> None:
        """Raises `_mismatch` "{what} ({problems}): {fix}" when there are `problems`."""
        if problems:
            raise self._mismatch(f"{what} ({'; '.join(problems)}): {fix}")

    def check_storage(self, stored: Manifest) -> None:
        """Refuses creation settings or index-field types that differ from the existing collection's.

        Raises:
            ManifestMismatchError: Naming each differing setting, both sides, and the fix.
        """
        differences = storage_mismatches(stored.storage, self._storage_requested(), self._storage_defaults())
        if differences:
            raise self._mismatch(
                f"was created with other storage settings ({'; '.join(differences)}): storage settings apply "
                "when a collection is created; leave them out to use the collection's, or ingest into a new "
                "collection"
            )
        self.check_index_fields(stored)

    def check_index_fields(self, stored: Manifest) -> None:
        """Refuses an index field the collection (`stored`) already indexes with another type.

        Raises:
            ManifestMismatchError: Naming each field, both types, and the fix.
        """
        by_name = {field.name: field for field in _recorded_fields(stored)}
        conflicts = [
            f"{f.name!r}: collection indexes it as {by_name[f.name].type}, this run asks for {f.type}"
            for f in self.index_fields
            if f.name in by_name and by_name[f.name] != f
        ]
        fix = "give the collection's type (--index-field NAME:TYPE), or leave the field out"
        self._refuse("indexes a metadata field with another type", conflicts, fix)

    def check_creation(self) -> None:
        """Refuses creation settings this store cannot apply to a new collection, before any model is known.

        Raises:
            StorageSettingsError: Naming the setting and the fix (none by default).
        """

    def _add_index_fields(self, stored: Manifest) -> Manifest:
        """Indexes `doc_id` and the `index_fields` the collection lacks; records new ones in its manifest."""
        recorded = _recorded_fields(stored)
        added = [field for field in self.index_fields if field not in recorded]
        self._ensure_indexes(stored, (*recorded, *added))
        if not added:
            return stored
        base = stored.storage if stored.storage is not None else self._storage_defaults()
        specs = [field.to_spec() for field in (*recorded, *added)]
        updated = stored.model_copy(update={"storage": {**base, "index_fields": specs}})
        self._store_manifest(updated)
        return updated

    def check_adoptable(self, dimensions: int | None, distance: str | None, manifest: Manifest) -> None:
        """Refuses to adopt a collection whose dense vector (size, lower-case distance) does not fit.

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
        if manifest.sparse == "learned" or manifest.multivector is not None:
            problems.append(
                "an adopted collection keeps the vectors it has, and this run brings a learned sparse or "
                "multi-vector model (adopt without it)"
            )
        fix = "ingest with the model and --dimensions the collection was made for, or into a new collection"
        self._refuse("cannot be adopted", problems, fix)

    # -- sparse state --------------------------------------------------------------------------------------

    def _sparse_state(self) -> Any:
        """The collection's sparse state (`_sparse_of` its manifest; `None` for a dense-only collection)."""
        if self._sparse is UNKNOWN:
            self._sparse = self._sparse_of(self.read_manifest())
        return self._sparse

    def _require_sparse(self, query: object = None) -> Any:
        """The sparse state; `ValueError` for a dense-only collection, or a query of the other kind.

        `query` (when given) is a text for a BM25 collection and a `SparseVector` for a learned one.
        """
        sparse = self._sparse_state()
        if sparse is None:
            raise ValueError(
                f"collection {self.collection!r} is dense-only (no sparse vectors): search it with "
                "mode='dense', or ingest with --hybrid or a sparse model into a new collection"
            )
        if query is not None:
            manifest = self._vector_manifest()
            learned = manifest is not None and manifest.sparse == "learned"
            if learned and isinstance(query, str):
                raise ValueError(
                    f"collection {self.collection!r} holds learned sparse vectors of "
                    f"{manifest.sparse_label() if manifest else '?'}: search it with that model's query "
                    "vector (search(..., sparse=SparseEmbedder(model=...)))"
                )
            if not learned and not isinstance(query, str):
                raise ValueError(
                    f"collection {self.collection!r} holds BM25 vectors: its sparse query is the query text"
                )
        return sparse

    # -- hybrid search: the store's two candidate lists, fused here --------------------------------------

    def hybrid_search(
        self,
        query: SparseQuery,
        vector: NDArray[np.float32],
        top_k: int,
        filter: MetadataFilter | None = None,
        candidates: int | None = None,
        fusion: FusionSettings | None = None,
    ) -> list[Hit]:
        """Returns the `top_k` points of the fusion of a dense and a sparse search (`sinks.fusion.fuse`).

        Each hit's `found_by` names the searches whose candidates held it (no extra search).

        Args:
            query: The search text (BM25), or the query's `SparseVector` (a learned sparse collection).
            vector: The embedded query.
            top_k: Number of hits.
            filter: Metadata fields the hits must equal (applied in both searches).
            candidates: Points each search passes to the fusion (4 × `top_k` when `None`).
            fusion: How the lists are fused (`FusionSettings()` when `None`).

        Raises:
            ValueError: If the collection is dense-only, or `query` is not its kind of sparse query.
        """
        self._require_sparse(query)
        limit = max(candidates or 4 * top_k, top_k)
        return fuse(self._hybrid_candidates(query, vector, limit, filter), top_k, fusion)

    def _hybrid_candidates(
        self, query: SparseQuery, vector: NDArray[np.float32], limit: int, filter: MetadataFilter | None
    ) -> dict[str, list[Hit]]:
        """Store hook: the `limit` best dense and BM25 hits (two searches unless the client batches them)."""
        return {
            "dense": self.search(vector, limit, filter),
            "sparse": self.sparse_search(query, limit, filter),
        }

    # -- points: store hooks, and what is built on them -----------------------------------------------

    def fetch_chunks(self, ids: Sequence[str]) -> dict[str, Hit]:
        """Store hook: the stored text and metadata of each of `ids` that exists (as hits, score 0)."""
        raise NotImplementedError

    def fetch_texts(self, ids: Sequence[str]) -> dict[str, str]:
        """Returns the stored text of each of `ids` that exists."""
        return {point: hit.text for point, hit in self.fetch_chunks(ids).items()}

    def fetch_vectors(self, ids: Sequence[str]) -> dict[str, NDArray[np.float32]]:
        """Store hook: the stored dense vector of each of `ids` that exists."""
        raise NotImplementedError

    def upsert(
        self,
        chunks: Sequence[Chunk],
        vectors: NDArray[np.float32],
        *,
        sparse: Sequence[SparseVector] | None = None,
        multivectors: Sequence[MultiVector] | None = None,
    ) -> None:
        """Inserts or replaces the points of `chunks`.

        Args:
            chunks: The chunks.
            vectors: Their dense vectors, one row each.
            sparse: Their learned sparse vectors, exactly when the collection keeps them (BM25 vectors are
                made here from the texts).
            multivectors: Their per-token vectors, exactly when the collection keeps them.

        Raises:
            ValueError: If `sparse` or `multivectors` is given for a collection that keeps none, missing for
                one that keeps them, or of another length than `chunks`.
        """
        if chunks:
            self._upsert_points(chunks, vectors, *self._extra_vectors(len(chunks), sparse, multivectors))

    def _upsert_points(
        self,
        chunks: Sequence[Chunk],
        vectors: NDArray[np.float32],
        sparse: list[SparseVector] | None,
        multivectors: list[MultiVector] | None,
    ) -> None:
        """Store hook: writes the points (the extra vectors checked against the collection)."""
        raise NotImplementedError

    def update_metadata(self, chunks: Sequence[Chunk]) -> None:
        """Rewrites the stored points of `chunks` (same ids and texts) with their metadata, embedding nothing.

        The stored vectors (dense, learned sparse, per-token) are read back and upserted again with the new
        payload.

        Raises:
            SinkError: If a point does not exist any more.
        """
        if not chunks:
            return
        ids = [chunk.id for chunk in chunks]
        vectors = self.fetch_vectors(ids)
        sparse, multivectors = self._stored_extras(ids)
        missing = [
            point
            for point in ids
            if point not in vectors
            or (sparse is not None and point not in sparse)
            or (multivectors is not None and point not in multivectors)
        ]
        if missing:
            raise SinkError(f"{self}: metadata update of points that do not exist: {', '.join(missing[:3])}")
        self.upsert(
            chunks,
            np.stack([vectors[point] for point in ids]).astype(np.float32),
            sparse=None if sparse is None else [sparse[point] for point in ids],
            multivectors=None if multivectors is None else [multivectors[point] for point in ids],
        )

    def delete_chunks_from(self, doc_id: str, first_index: int) -> None:
        """Store hook: deletes the chunks of `doc_id` whose `chunk_index` is `first_index` or more."""
        raise NotImplementedError

    def search(
        self, vector: NDArray[np.float32], top_k: int, filter: MetadataFilter | None = None
    ) -> list[Hit]:
        """Store hook: the `top_k` points closest to `vector` whose metadata matches `filter`."""
        raise NotImplementedError

    def sparse_search(
        self, query: SparseQuery, top_k: int, filter: MetadataFilter | None = None
    ) -> list[Hit]:
        """Store hook: the `top_k` points with the highest sparse score.

        BM25 for the text `query`, or the dot product with a learned `SparseVector`.

        Raises:
            ValueError: If the collection is dense-only, or `query` is not its kind of sparse query.
        """
        raise NotImplementedError

    def count(self) -> int:
        """Store hook: the number of points in the collection."""
        raise NotImplementedError

    def iter_vectors(self, batch_size: int) -> Iterator[StoredVectors]:
        """Store hook: every stored point's id and vector, `batch_size` points at a time."""
        raise NotImplementedError

    def replace_vectors(self, ids: Sequence[str], vectors: NDArray[np.float32]) -> None:
        """Store hook: replaces the vectors of existing points, leaving their payloads as they are."""
        raise NotImplementedError

    def optimize(self) -> bool:
        """Builds the indexes a store builds on demand (an embedded engine); whether anything changed."""
        return False

    # -- the store ---------------------------------------------------------------------------------------

    def spec(self) -> SinkSpec:
        """A small picklable value that opens this collection again (`spec.open()`), in another process too.

        Its options are the connection, this sink's settings and the collection choices asked for, less
        the constructor's defaults; `spec.shared` says whether other processes may open it meanwhile.
        """
        cls = type(self)
        defaults = {name: p.default for name, p in inspect.signature(cls).parameters.items()}
        given = {
            name: value
            for name, value in {**self._choices, **self._options()}.items()
            if not _is_default(value, defaults.get(name, inspect.Parameter.empty))
        }
        options, reopenable = {**given, **(self._connection or {})}, self._connection is not None
        sink = f"{cls.__module__}:{cls.__qualname__}"
        return SinkSpec(sink, self.collection, options, self._shared() and reopenable, reopenable)

    def for_collection(self, name: str) -> Self:
        """Returns a sink on collection `name` of the same store, with this sink's storage/search settings.

        It shares this sink's client where the store has one (leaving it open on `close()`), follows that
        collection's layout, hybrid choice and index fields, and reopens (`spec()`) as this sink does.
        """
        sibling = type(self)(name, **self._sibling_options())
        sibling._connection = self._connection
        for attribute in self._sibling_attributes:
            if attribute in self.__dict__:
                setattr(sibling, attribute, self.__dict__[attribute])
        return sibling

    def _sibling_options(self) -> dict[str, Any]:
        """Store hook: the constructor options of a sink on another collection of the same store."""
        raise NotImplementedError

    def info(self) -> CollectionInfo:
        """Reads back what the store reports about this collection.

        Raises:
            CollectionNotFoundError: If the collection does not exist.
        """
        raise NotImplementedError

    def collection_names(self) -> list[str]:
        """Returns the names of every collection in this sink's store (database, directory or server)."""
        raise NotImplementedError

    def _not_found(self) -> CollectionNotFoundError:
        return CollectionNotFoundError(f"collection {self.collection!r} does not exist in {self!r}")

    def _is_transient(self, exc: BaseException) -> bool:
        """Whether `exc` may go away when the operation is retried."""
        return isinstance(exc, ConnectionError | TimeoutError)

    def _call(self, action: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Runs one client operation under the lock, retrying transient errors; `SinkError` when it fails."""

        def log(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else ""
            logger.warning(
                "%s: %s failed (attempt %d), retrying: %s", self, action, state.attempt_number, error
            )

        retry, stop = retry_if_exception(self._is_transient), stop_after_attempt(self._max_attempts)
        wait = wait_exponential_jitter(initial=self._retry_wait, max=30.0)
        retrying = Retrying(retry=retry, stop=stop, wait=wait, before_sleep=log, reraise=True)
        try:
            for attempt in retrying:
                with attempt, self._lock:
                    return fn(*args, **kwargs)
        except Exception as exc:
            raise SinkError(f"{self}: {action} failed: {one_line(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _on(self, action: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`_call` of a client method whose first argument is the collection name."""
        return self._call(action, fn, self.collection, *args, **kwargs)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def stored_text(self, text: str) -> str:
        """Returns what the store keeps of `text`: all of it, unless the store limits its length."""
        return text

    def check_document_id(self, doc_id: str) -> None:
        """Raises `ValueError` naming the limit when the store cannot keep `doc_id`; any id by default."""

    def write_manifest(self, manifest: Manifest) -> None:
        """Replaces the stored manifest of an existing collection: the repair for a damaged manifest.

        Give the settings the collection was embedded with (`Manifest.from_description(embedder.describe(),
        layout=...)`); a hybrid collection's sparse settings are read from the collection when missing.

        Raises:
            CollectionNotFoundError: If the collection does not exist.
            ManifestMismatchError: If `manifest.dimensions` is not the collection's vector size.
        """
        dimensions = self._stored_dimensions(get_layout(manifest.layout))
        if dimensions is None:
            raise self._not_found()
        if dimensions != manifest.dimensions:
            raise self._mismatch(
                f"holds {dimensions}-dimensional vectors, the manifest says {manifest.dimensions}: give the "
                "model the collection was embedded with"
            )
        if manifest.sparse is None:
            manifest = self._with_stored_sparse(manifest)
        self._store_manifest(manifest)
        self._layout = get_layout(manifest.layout)
        self._sparse = self._vectors = UNKNOWN

    def _hybrid_from_store(self, manifest: Manifest, has_sparse: bool) -> Manifest:
        """`manifest` with the sparse settings when the collection stores a sparse vector (`has_sparse`)."""
        if not has_sparse:
            return manifest
        self._hybrid, self._layout = True, get_layout(manifest.layout)
        self._sparse = self._vectors = UNKNOWN
        return self._with_sparse(manifest)

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


class ClientSink(BaseSink, Generic[ClientT]):
    """A sink on a store client it is given or creates: now, or on first use if the local store is missing."""

    def _lazy_client(self, client: ClientT | None, connect: Callable[[], ClientT], path: Path | None) -> None:
        """Keeps `client`, else connects now, or on first use if the local store `path` is missing."""
        self._connect, self._client = connect, client
        self._absent = path if client is None and path is not None and not path.exists() else None
        if client is None and self._absent is None:
            self._client = connect()

    @property
    def client(self) -> ClientT:
        """The store's client (connected, and a missing local store created, on first use)."""
        if self._client is None:
            self._client, self._absent = self._connect(), None
        return self._client

    @client.setter
    def client(self, client: ClientT) -> None:
        self._client = client

    def _store_absent(self) -> bool:
        """Whether the local store does not exist (it is created by the first write)."""
        return self._absent is not None and not self._absent.exists()

    def _sibling_options(self) -> dict[str, Any]:
        return {"client": self.client, **self._options()}


Sink = BaseSink
"""The sink API (`BaseSink`): every caller is typed with it."""
HybridSink = BaseSink
"""Kept name: every sink has `sparse_search` and `hybrid_search` (a dense-only collection refuses them)."""
VerifiableSink = BaseSink
"""Kept name: every sink has `iter_vectors`, `replace_vectors` and `write_manifest`."""


def _recorded_fields(stored: Manifest) -> tuple[IndexField, ...]:
    """The index fields a manifest records (none for a manifest from before they were recorded)."""
    specs = (stored.storage or {}).get("index_fields") or ()
    try:
        return tuple(IndexField.parse(spec) for spec in specs)
    except (TypeError, ValueError) as exc:
        raise ManifestError(
            f"the vllm-embed manifest of collection {stored.model!r} records an unreadable index field "
            f"({one_line(exc)})"
        ) from None


def _is_default(value: object, default: object) -> bool:
    """Whether a constructor option's value is its default (an empty mapping or sequence counts as `None`)."""
    if default is inspect.Parameter.empty:
        return False
    return value == default or (default in (None, ()) and value in ({}, (), []))


def directory_size(directory: Path | None) -> int | None:
    """The size of the files under `directory` (`None`: no such directory)."""
    if directory is None or not directory.is_dir():
        return None
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def _close_quietly(close: Callable[[], object], owner: str) -> None:
    try:
        close()
    except Exception:  # a failing close must not mask the program's own outcome
        logger.debug("%s: closing the client failed", owner, exc_info=True)
