"""Qdrant sink: local mode (a directory or `:memory:`) or a server, through the same client calls."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from vllm_embed._optional import require
from vllm_embed.errors import ManifestError, StoreBusyError
from vllm_embed.sinks.base import (
    BaseSink,
    Chunk,
    Hit,
    Layout,
    Manifest,
    MetadataFilter,
    StoredVectors,
    check_filter,
    is_transient_grpc_error,
)
from vllm_embed.sinks.busy import holders_text
from vllm_embed.sinks.layouts import get_layout
from vllm_embed.sparse import BM25Encoder

if TYPE_CHECKING:
    from qdrant_client import QdrantClient
    from qdrant_client.http import models

logger = logging.getLogger(__name__)

_MANIFEST_KEY = "vllm_embed"
_TRANSIENT_HTTP_STATUS = {408, 429, 500, 502, 503, 504}
_TRANSIENT_GRPC_CODES = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"}
_UNKNOWN: Any = object()


def _tune_local_storage(client: QdrantClient, collection: str) -> None:
    """Puts a local-mode collection's SQLite file in WAL mode with `synchronous=NORMAL`.

    Local mode commits every point in its own transaction; in SQLite's default rollback-journal mode each
    commit rewrites and syncs a journal file, which costs more CPU than the rest of the upsert and competes
    with the engine for cores (2,048 points: 1.8 s CPU → 0.6 s). A WAL commit survives a crash of the
    process (what resumable ingest relies on); only a power cut may undo the last commits, which a re-run
    embeds again. Servers and `:memory:` stores have no such file; an unknown client layout is left alone.
    """
    collections = getattr(getattr(client, "_client", None), "collections", None)
    local = collections.get(collection) if isinstance(collections, dict) else None
    connection = getattr(getattr(local, "storage", None), "storage", None)
    if not isinstance(connection, sqlite3.Connection):
        return
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error:
        logger.debug("could not switch the Qdrant local store to WAL mode", exc_info=True)


class QdrantSink(BaseSink):
    """A Qdrant collection with cosine distance, created (with its manifest) on first ingest.

    Give exactly one of `path`, `location`, `url` or `client`. Any string is a valid document id: Qdrant keeps
    payload values whole, so `check_document_id` accepts every id.

    Args:
        collection: Collection name.
        path: Directory of an embedded (local mode) store; only one client may open it at a time.
        location: `":memory:"` for a throw-away in-process store, or a server URL.
        url: Qdrant server URL, e.g. `http://localhost:6333`.
        api_key: API key for a server.
        client: An existing `QdrantClient`; it is not closed by `close()`.
        layout: Payload layout: `"vllm-embed"`, `"langchain"` (readable by langchain-qdrant's
            `QdrantVectorStore`) or `"llama-index"` (LlamaIndex's `QdrantVectorStore`); `None` uses the
            existing collection's (`"vllm-embed"` for a new one).
        max_attempts: Attempts per operation when the server reports a transient error.
        retry_wait: First backoff wait in seconds.
        hybrid: Store a BM25 sparse vector beside the dense one (a named sparse vector with Qdrant's IDF
            modifier; term weights from `vllm_embed.sparse.BM25Encoder`), for `sparse_search` and
            `hybrid_search`. `None` follows the existing collection (dense only for a new one).
        **client_kwargs: Passed to `QdrantClient` (e.g. `timeout`, `prefer_grpc`).

    Raises:
        ValueError: If not exactly one of `path`, `location`, `url`, `client` is given, or `hybrid=True`
            with the llama-index layout.
        StoreBusyError: If the local store at `path` is open in another client or process.
    """

    def __init__(
        self,
        collection: str,
        *,
        path: str | None = None,
        location: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        client: QdrantClient | None = None,
        layout: str | None = None,
        max_attempts: int = 6,
        retry_wait: float = 0.5,
        hybrid: bool | None = None,
        **client_kwargs: Any,
    ) -> None:
        super().__init__(
            collection, layout=layout, max_attempts=max_attempts, retry_wait=retry_wait, hybrid=hybrid
        )
        self._sparse: tuple[str, BM25Encoder] | None = _UNKNOWN
        given = [name for name, value in (("path", path), ("location", location), ("url", url)) if value]
        if client is not None:
            given.append("client")
        if len(given) != 1:
            raise ValueError(
                "QdrantSink needs exactly one of path=, location=, url= or client=, "
                f"got {', '.join(given) or 'none'}"
            )
        self._target = path or location or url or "client"
        self._target_argument = "client=client" if client is not None else f"{given[0]}={self._target!r}"
        qdrant_client = require("qdrant_client", "QdrantSink")
        if client is None:
            try:
                client = qdrant_client.QdrantClient(
                    path=path, location=location, url=url, api_key=api_key, **client_kwargs
                )
            except RuntimeError as exc:
                if path is None or "already accessed" not in str(exc):
                    raise
                holders = holders_text([Path(path, ".lock")])
                raise StoreBusyError(
                    f"the Qdrant local store {path!r} is open elsewhere ({holders}); "
                    "a local store allows one client at a time: close the other client (or stop that "
                    "process), or run a Qdrant server and pass url="
                ) from None
            self._close_at_exit(client.close)
        self.client: QdrantClient = client
        self._models = require("qdrant_client.http.models", "QdrantSink")

    def __repr__(self) -> str:
        return f"QdrantSink(collection={self.collection!r}, target={self._target!r})"

    def _is_transient(self, exc: BaseException) -> bool:
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        if isinstance(exc, ResponseHandlingException):
            return True
        if isinstance(exc, UnexpectedResponse):
            return exc.status_code in _TRANSIENT_HTTP_STATUS
        return is_transient_grpc_error(exc, _TRANSIENT_GRPC_CODES) or super()._is_transient(exc)

    def read_manifest(self) -> Manifest | None:
        """Returns the collection's manifest, or `None` when the collection does not exist.

        Raises:
            ManifestError: If the collection has no vllm-embed manifest, or a damaged one.
        """
        if not self._call("collection lookup", self.client.collection_exists, self.collection):
            return None
        info = self._call("collection lookup", self.client.get_collection, self.collection)
        stored = (info.config.metadata or {}).get(_MANIFEST_KEY)
        if stored is None:
            raise ManifestError(
                f"Qdrant collection {self.collection!r} exists but has no vllm-embed manifest; "
                "ingest into a new collection"
            )
        return Manifest.from_stored(
            stored,
            collection=self.collection,
            location=f"Qdrant collection metadata key {_MANIFEST_KEY!r}",
            repair=self._repair_hint(f"QdrantSink({self.collection!r}, {self._target_argument})"),
        )

    def _stored_dimensions(self, layout: Layout) -> int | None:
        if not self._call("collection lookup", self.client.collection_exists, self.collection):
            return None
        info = self._call("collection lookup", self.client.get_collection, self.collection)
        vectors = info.config.params.vectors
        params = vectors.get(layout.qdrant_vector) if isinstance(vectors, dict) else vectors
        return None if params is None else int(params.size)

    def _store_manifest(self, manifest: Manifest) -> None:
        self._call(
            "manifest update",
            self.client.update_collection,
            self.collection,
            metadata={_MANIFEST_KEY: manifest.model_dump()},
        )

    def _with_stored_sparse(self, manifest: Manifest) -> Manifest:
        layout = get_layout(manifest.layout)
        info = self._call("collection lookup", self.client.get_collection, self.collection)
        if layout.qdrant_sparse_vector not in (info.config.params.sparse_vectors or {}):
            return manifest
        self._hybrid, self._layout, self._sparse = True, layout, _UNKNOWN
        return self._new_manifest(manifest)

    def _sparse_name(self, layout: Layout) -> str:
        if not layout.qdrant_sparse_vector:
            raise ValueError(
                f"the {layout.name} layout stores no sparse vector on Qdrant, so it cannot be hybrid: use "
                "layout 'vllm-embed' or 'langchain' for a hybrid collection, or leave out --hybrid"
            )
        return layout.qdrant_sparse_vector

    def _sparse_analyzer(self) -> dict[str, Any]:
        return BM25Encoder().describe()

    def prepare(self, manifest: Manifest) -> None:
        """Creates the collection with `manifest` when missing, or checks the stored manifest matches.

        Raises:
            ManifestMismatchError: If the collection was embedded differently, or `hybrid` differs from it.
            SparseAnalyzerError: If the collection's BM25 analyzer is not the installed one.
        """
        stored = self.read_manifest()
        if stored is not None:
            stored.require_compatible(manifest, self.collection)
            self.check_hybrid(stored)
        else:
            stored = self._new_manifest(manifest)
            models = self._models
            params = models.VectorParams(size=manifest.dimensions, distance=models.Distance.COSINE)
            vector_name = self.layout.qdrant_vector
            sparse = (
                {stored.sparse_vector: models.SparseVectorParams(modifier=models.Modifier.IDF)}
                if stored.sparse_vector
                else None
            )
            self._call(
                "collection creation",
                self.client.create_collection,
                self.collection,
                vectors_config={vector_name: params} if vector_name else params,
                sparse_vectors_config=sparse,
                metadata={_MANIFEST_KEY: stored.model_dump()},
            )
        self._sparse = self._sparse_of(stored)
        _tune_local_storage(self.client, self.collection)

    def _sparse_of(self, manifest: Manifest | None) -> tuple[str, BM25Encoder] | None:
        if manifest is None or not manifest.sparse_vector:
            return None
        encoder = BM25Encoder.from_manifest(manifest.sparse_analyzer or {}, self.collection)
        return manifest.sparse_vector, encoder

    def _sparse_state(self) -> tuple[str, BM25Encoder] | None:
        """The collection's sparse vector name and encoder (`None` for a dense-only collection)."""
        if self._sparse is _UNKNOWN:
            self._sparse = self._sparse_of(self.read_manifest())
        return self._sparse

    def fetch_texts(self, ids: Sequence[str]) -> dict[str, str]:
        """Returns the stored text of each of `ids` that exists."""
        if not ids:
            return {}
        records = self._call(
            "point lookup",
            self.client.retrieve,
            self.collection,
            ids=list(ids),
            with_payload=self.layout.qdrant_text_keys(),
            with_vectors=False,
        )
        return {str(r.id): self.layout.qdrant_text(r.payload or {}) for r in records}

    def stored_text(self, text: str) -> str:
        """Returns `text`: Qdrant keeps payloads whole."""
        return text

    def upsert(self, chunks: Sequence[Chunk], vectors: NDArray[np.float32]) -> None:
        """Inserts or replaces the points of `chunks`."""
        if not chunks:
            return
        rows = np.asarray(vectors, dtype=np.float32).tolist()
        vector_name = self.layout.qdrant_vector
        named: Any = {vector_name: rows} if vector_name else rows
        sparse = self._sparse_state()
        if sparse is not None:
            sparse_name, encoder = sparse
            named = {
                vector_name: rows,
                sparse_name: [
                    self._models.SparseVector(indices=v.indices, values=v.values)
                    for v in encoder.embed_documents([c.text for c in chunks])
                ],
            }
        batch = self._models.Batch(
            ids=[c.id for c in chunks],
            vectors=named,
            payloads=[self.layout.qdrant_payload(c) for c in chunks],
        )
        self._call("upsert", self.client.upsert, self.collection, points=batch, wait=True)

    def delete_chunks_from(self, doc_id: str, first_index: int) -> None:
        """Deletes the chunks of `doc_id` whose `chunk_index` is `first_index` or more."""
        models = self._models
        selector = models.FilterSelector(
            filter=models.Filter(
                must=[
                    models.FieldCondition(
                        key=self.layout.qdrant_key(self.layout.doc_id_path("qdrant")),
                        match=models.MatchValue(value=doc_id),
                    ),
                    models.FieldCondition(
                        key=self.layout.qdrant_key(self.layout.chunk_index_path("qdrant")),
                        range=models.Range(gte=first_index),
                    ),
                ]
            )
        )
        self._call("delete", self.client.delete, self.collection, points_selector=selector, wait=True)

    def search(
        self, vector: NDArray[np.float32], top_k: int, filter: MetadataFilter | None = None
    ) -> list[Hit]:
        """Returns the `top_k` points closest to `vector` whose metadata matches `filter`."""
        response = self._call(
            "search",
            self.client.query_points,
            self.collection,
            query=np.asarray(vector, dtype=np.float32).tolist(),
            using=self.layout.qdrant_vector or None,
            limit=top_k,
            query_filter=self._filter(filter),
            with_payload=True,
        )
        return self._hits(response.points, {"dense": None})

    def _require_sparse(self) -> tuple[str, BM25Encoder]:
        sparse = self._sparse_state()
        if sparse is None:
            raise ValueError(
                f"collection {self.collection!r} is dense-only (no BM25 vectors): search it with "
                "mode='dense', or ingest with --hybrid into a new collection"
            )
        return sparse

    def sparse_search(self, query: str, top_k: int, filter: MetadataFilter | None = None) -> list[Hit]:
        """Returns the `top_k` points with the highest BM25 score for the text `query`.

        Raises:
            ValueError: If the collection is dense-only.
        """
        name, encoder = self._require_sparse()
        response = self._call(
            "search",
            self.client.query_points,
            self.collection,
            query=self._sparse_query(encoder, query),
            using=name,
            limit=top_k,
            query_filter=self._filter(filter),
            with_payload=True,
        )
        return self._hits(response.points, {"sparse": None})

    def hybrid_search(
        self,
        query: str,
        vector: NDArray[np.float32],
        top_k: int,
        filter: MetadataFilter | None = None,
        candidates: int | None = None,
    ) -> list[Hit]:
        """Returns the `top_k` points of Qdrant's reciprocal-rank fusion of a dense and a BM25 search.

        One batch of three queries: the fusion (Query API `prefetch` + `FusionQuery(RRF)`) and, to tell
        which search found each hit, the ids of each prefetch alone.

        Args:
            query: The search text (its BM25 query vector).
            vector: The embedded query.
            top_k: Number of hits.
            filter: Metadata fields the hits must equal (applied in both searches).
            candidates: Points each search passes to the fusion (4 × `top_k` when `None`).

        Raises:
            ValueError: If the collection is dense-only.
        """
        name, encoder = self._require_sparse()
        models = self._models
        limit = candidates or 4 * top_k
        query_filter = self._filter(filter)
        branches = {
            "dense": models.Prefetch(
                query=np.asarray(vector, dtype=np.float32).tolist(),
                using=self.layout.qdrant_vector or None,
                filter=query_filter,
                limit=limit,
            ),
            "sparse": models.Prefetch(
                query=self._sparse_query(encoder, query), using=name, filter=query_filter, limit=limit
            ),
        }
        requests = [
            models.QueryRequest(
                prefetch=list(branches.values()),
                query=models.FusionQuery(fusion=models.Fusion.RRF),
                filter=query_filter,
                limit=top_k,
                with_payload=True,
            ),
            *(
                models.QueryRequest(
                    query=p.query, using=p.using, filter=query_filter, limit=limit, with_payload=False
                )
                for p in branches.values()
            ),
        ]
        fused, *alone = self._call(
            "search", self.client.query_batch_points, self.collection, requests=requests
        )
        found = {branch: {str(p.id) for p in r.points} for branch, r in zip(branches, alone, strict=True)}
        return self._hits(fused.points, found)

    def _sparse_query(self, encoder: BM25Encoder, query: str) -> models.SparseVector:
        vector = encoder.embed_query(query)
        sparse: models.SparseVector = self._models.SparseVector(indices=vector.indices, values=vector.values)
        return sparse

    def _hits(self, points: Sequence[Any], found: Mapping[str, set[str] | None]) -> list[Hit]:
        """Builds hits; `found` maps each search to the ids it found (`None`: every hit)."""
        hits = []
        for point in points:
            hit = self.layout.qdrant_hit(str(point.id), point.score, point.payload or {})
            by = tuple(branch for branch, ids in found.items() if ids is None or hit.id in ids)
            hits.append(dataclasses.replace(hit, found_by=by))
        return hits

    def _filter(self, filter: MetadataFilter | None) -> models.Filter | None:
        checked = check_filter(filter)
        if not checked:
            return None
        qm = self._models
        conditions: list[Any] = []
        for key, value in checked.items():
            path = self.layout.qdrant_key(self.layout.metadata_path("qdrant", key))
            if isinstance(value, float):
                conditions.append(qm.FieldCondition(key=path, range=qm.Range(gte=value, lte=value)))
            else:
                conditions.append(qm.FieldCondition(key=path, match=qm.MatchValue(value=value)))
        query_filter: models.Filter = qm.Filter(must=conditions)
        return query_filter

    def count(self) -> int:
        """Returns the number of points in the collection."""
        result = self._call("count", self.client.count, self.collection, exact=True)
        return int(result.count)

    def iter_vectors(self, batch_size: int) -> Iterator[StoredVectors]:
        """Yields every stored point's id and vector, `batch_size` points at a time (a scroll)."""
        vector_name = self.layout.qdrant_vector
        offset = None
        while True:
            records, offset = self._call(
                "scroll",
                self.client.scroll,
                self.collection,
                limit=batch_size,
                offset=offset,
                with_payload=False,
                with_vectors=[vector_name] if vector_name else True,
            )
            batch: StoredVectors = []
            for record in records:
                vector = record.vector.get(vector_name) if isinstance(record.vector, dict) else record.vector
                batch.append((str(record.id), None if vector is None else np.asarray(vector, np.float32)))
            if batch:
                yield batch
            if offset is None:
                return

    def replace_vectors(self, ids: Sequence[str], vectors: NDArray[np.float32]) -> None:
        """Replaces the vectors of existing points, leaving their payloads as they are."""
        if not ids:
            return
        vector_name = self.layout.qdrant_vector
        points = [
            self._models.PointVectors(id=point_id, vector={vector_name: row} if vector_name else row)
            for point_id, row in zip(ids, np.asarray(vectors, dtype=np.float32).tolist(), strict=True)
        ]
        self._call("vector update", self.client.update_vectors, self.collection, points=points, wait=True)

    def close(self) -> None:
        """Closes the client if this sink created it (releasing a local store's lock)."""
        super().close()
