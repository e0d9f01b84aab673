"""`MilvusSink`: a Milvus Lite file or a Milvus server; points and searches over `MilvusCollection`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from vllm_embed._optional import require
from vllm_embed.errors import StoreBusyError
from vllm_embed.sinks.base import (
    Chunk,
    Hit,
    MetadataFilter,
    MultiVector,
    SparseQuery,
    StoredVectors,
    check_filter,
    is_transient_grpc_error,
)
from vllm_embed.sinks.busy import held_elsewhere, holders_text
from vllm_embed.sinks.milvus.collection import MilvusCollection
from vllm_embed.sinks.milvus.values import BM25_TERMS_FIELD, VARCHAR_MAX_BYTES, MilvusSparse, milvus_literal
from vllm_embed.sinks.milvus_index import DEFAULT_INDEX, MilvusIndexError
from vllm_embed.sinks.storage import IndexField, MilvusIndexSettings, validated
from vllm_embed.sparse import BM25Terms

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from vllm_embed.learned_sparse import SparseVector

_TRANSIENT_GRPC_CODES = {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
_QUERY_ITERATOR_LOGGER = "pymilvus.client.iterator.query_iterator"
_TERMS_SEPARATOR = " "
# pymilvus pings its server every 10 s, even when idle; Milvus Lite's in-process gRPC server keeps gRPC's
# default policy (one ping per 5 minutes without calls) and, after about 80 s of idling, answers with a
# GOAWAY ("too_many_pings") that gRPC logs on stderr before pymilvus reconnects. Pings over loopback to our
# own process find nothing, so they are switched off for Milvus Lite files.
_LITE_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 2**31 - 1, "grpc.keepalive_permit_without_calls": False}


class MilvusSink(MilvusCollection):
    """A Milvus collection with cosine metric, created (with its manifest and indexes) on first ingest.

    Every collection gets a scalar (`INVERTED`) index on `doc_id`, which the resume check filters on.

    Args:
        collection: Collection name (letters, digits and underscores).
        uri: A Milvus Lite file (`./milvus.db`) or a server URI (`http://localhost:19530`).
        token: Server token (`user:password` or an API key).
        client: An existing `MilvusClient`; it is not closed by `close()`.
        layout: `"vllm-embed"`, `"langchain"` or `"llama-index"` (those frameworks' Milvus stores).
        text_max_bytes: Size of the `text` VARCHAR field; longer chunk texts are stored cut to this size.
        max_attempts: Attempts per operation when the server reports a transient error.
        retry_wait: First backoff wait in seconds.
        hybrid: Store a BM25 sparse field, computed from `bm25_terms` analysed as on Qdrant (`BM25Terms`).
        index: Dense index type of a new collection (`MilvusIndexSettings.index`); an existing one's is kept.
        index_params: Build parameters of the index (e.g. `{"M": 32}` for HNSW, `{"nlist": 256}` for IVF).
        search_params: Parameters of every dense search (e.g. `{"ef": 128}`); `None`: the recorded ones.
        index_fields: Metadata fields to index (`NAME` or `NAME:TYPE`) on a server; Milvus Lite refuses them.
        adopt: Take over a collection vllm-embed did not create when its fields and distance fit.
        **client_kwargs: Passed to `MilvusClient` (e.g. `db_name`, `timeout`).

    Raises:
        ValueError: If neither or both of `uri` and `client` are given; `hybrid=True` with a framework layout.
        MilvusIndexError: For an unknown index type or parameter, or one Milvus Lite does not build.
        StoreBusyError: If the Milvus Lite file `uri` is open in another process.
    """

    _sibling_attributes = ("_target", "_lite")

    def __init__(
        self,
        collection: str,
        *,
        uri: str | None = None,
        token: str | None = None,
        client: MilvusClient | None = None,
        layout: str | None = None,
        text_max_bytes: int = VARCHAR_MAX_BYTES,
        max_attempts: int = 6,
        retry_wait: float = 0.5,
        hybrid: bool | None = None,
        index: str = DEFAULT_INDEX,
        index_params: Mapping[str, Any] | None = None,
        search_params: Mapping[str, Any] | None = None,
        index_fields: Iterable[str | IndexField] = (),
        adopt: bool = False,
        **client_kwargs: Any,
    ) -> None:
        super().__init__(collection, layout, max_attempts, retry_wait, hybrid, index_fields, adopt)
        settings = {"index": index, "index_params": dict(index_params or {})}
        settings["search_params"] = dict(search_params or {})
        self.index_settings = validated(
            MilvusIndexSettings, "MilvusSink", error=MilvusIndexError, what="index settings", **settings
        )
        self._search_params: dict[str, Any] | None = None
        if (uri is None) == (client is None):
            raise ValueError(
                "MilvusSink needs exactly one of uri= (a Milvus Lite file or server URI) or client="
            )
        if not 1 <= text_max_bytes <= VARCHAR_MAX_BYTES:
            raise ValueError(f"text_max_bytes={text_max_bytes} must be between 1 and {VARCHAR_MAX_BYTES}")
        self.text_max_bytes = text_max_bytes
        self._target = uri or "client"
        if uri is not None:
            self._connection = {"uri": uri, **({} if token is None else {"token": token}), **client_kwargs}
        self._loaded = False
        pymilvus = require("pymilvus", "MilvusSink")
        lite = uri is not None and "://" not in uri
        if lite:
            self._lite = True  # a server's kind is asked when the collection is prepared
            self._check_index(self.index_settings.index, None)

        def connect() -> MilvusClient:
            if lite:
                self._refuse_busy_lite_file()
                Path(str(uri)).parent.mkdir(parents=True, exist_ok=True)  # Milvus Lite does not create it
                grpc_options = client_kwargs.get("grpc_options", {})
                client_kwargs["grpc_options"] = {**_LITE_GRPC_OPTIONS, **grpc_options}
            if token is not None:
                client_kwargs["token"] = token
            try:
                created: MilvusClient = pymilvus.MilvusClient(uri=uri, **client_kwargs)
            except pymilvus.exceptions.ConnectionConfigException:
                if lite:
                    self._refuse_busy_lite_file(retried=True)
                raise
            self._close_at_exit(created.close)
            return created

        self._lazy_client(client, connect, Path(str(uri)) if lite else None)

    def _refuse_busy_lite_file(self, *, retried: bool = False) -> None:
        """Raises `StoreBusyError` if another process holds the Lite file (any process if `retried`)."""
        path = Path(self._target)
        locks = [path / "LOCK", path.parent / f".{path.name}.lock"]  # Milvus Lite 3.x; beside a file
        if held_elsewhere(locks) or (retried and holders_text(locks) != "another process"):
            raise StoreBusyError(
                f"the Milvus Lite file {self._target!r} is open elsewhere ({holders_text(locks)}); "
                "Milvus Lite allows one process at a time: close the other MilvusClient (or stop that "
                "process), or run a Milvus server and pass its uri="
            )

    def __repr__(self) -> str:
        return f"MilvusSink(collection={self.collection!r}, uri={self._target!r})"

    def _is_transient(self, exc: BaseException) -> bool:
        from pymilvus.exceptions import ConnectError, MilvusUnavailableException

        if isinstance(exc, ConnectError | MilvusUnavailableException):
            return True
        return is_transient_grpc_error(exc, _TRANSIENT_GRPC_CODES) or super()._is_transient(exc)

    def _options(self) -> dict[str, Any]:
        settings = {"text_max_bytes": self.text_max_bytes, **self.index_settings.model_dump()}
        return {**super()._options(), **settings}

    def _shared(self) -> bool:
        return "://" in self._target

    def _get(self, ids: Sequence[str], fields: list[str]) -> list[dict[str, Any]]:
        """The rows of `ids` that exist, with `fields`."""
        if not ids:
            return []
        self._ensure_loaded()
        rows: list[dict[str, Any]] = self._on(
            "point lookup", self.client.get, ids=list(ids), output_fields=fields
        )
        return rows

    def fetch_chunks(self, ids: Sequence[str]) -> dict[str, Hit]:
        """Returns the stored text and metadata of each of `ids` that exists (as hits, score 0)."""
        layout = self.layout
        key, rows = layout.milvus_id, self._get(ids, layout.milvus_output_fields())
        return {str(row[key]): layout.hit("milvus", row[key], 0.0, row) for row in rows}

    def fetch_vectors(self, ids: Sequence[str]) -> dict[str, NDArray[np.float32]]:
        """Returns the stored dense vector of each of `ids` that exists."""
        layout = self.layout
        rows = self._get(ids, [layout.milvus_vector])
        vectors = {str(row[layout.milvus_id]): _as_vector(row.get(layout.milvus_vector)) for row in rows}
        return {point: vector for point, vector in vectors.items() if vector is not None}

    def _stored_extras(
        self, ids: Sequence[str]
    ) -> tuple[dict[str, SparseVector] | None, dict[str, MultiVector] | None]:
        state = self._sparse_state()
        if state is None or not state.learned:
            return None, None
        from vllm_embed.learned_sparse import SparseVector

        key, found = self.layout.milvus_id, {}
        for row in self._get(ids, [state.field]):
            terms = row.get(state.field) or {}
            found[str(row[key])] = SparseVector.from_terms(terms.keys(), terms.values())
        return found, None

    def stored_text(self, text: str) -> str:
        """Returns `text` cut to the `text` field's size."""
        return truncate_utf8(text, self.text_max_bytes)

    def _upsert_points(
        self,
        chunks: Sequence[Chunk],
        vectors: NDArray[np.float32],
        sparse: list[SparseVector] | None,
        multivectors: list[MultiVector] | None,
    ) -> None:
        rows, layout, state = [], self.layout, self._sparse_state()
        terms = None if state is None else state.terms
        for i, (chunk, vector) in enumerate(
            zip(chunks, np.asarray(vectors, dtype=np.float32).tolist(), strict=True)
        ):
            row = layout.record("milvus", chunk, self.stored_text(chunk.text))
            row[layout.milvus_id], row[layout.milvus_vector] = chunk.id, vector
            if terms is not None:
                row[BM25_TERMS_FIELD] = terms_text(terms, chunk.text)
            if sparse is not None:
                row[state.field] = sparse[i].to_dict()
            rows.append(row)
        self._on("upsert", self.client.upsert, rows)

    def delete_chunks_from(self, doc_id: str, first_index: int) -> None:
        """Deletes the chunks of `doc_id` whose `chunk_index` is `first_index` or more."""
        layout = self.layout
        expression = (
            f"{self._field(layout.doc_id_path('milvus'))} == {milvus_literal(doc_id)} "
            f"and {self._field(layout.chunk_index_path('milvus'))} >= {int(first_index)}"
        )
        self._on("delete", self.client.delete, filter=expression)

    def filter_expression(self, filter: MetadataFilter | None) -> str:
        """Returns the Milvus boolean expression for a metadata equality filter (`""` for none)."""
        return " and ".join(
            f"{self._field(self.layout.metadata_path('milvus', key))} == {milvus_literal(value)}"
            for key, value in check_filter(filter).items()
        )

    def _search(
        self,
        branch: str,
        data: Any,
        field: str,
        top_k: int,
        filter: MetadataFilter | None,
        params: dict[str, Any],
    ) -> list[Hit]:
        """The hits of one search of `data` on `field` (BM25 scores as abs: Milvus Lite negates them)."""
        self._ensure_loaded()
        results = self._on(
            "search", self.client.search, data=[data], anns_field=field, limit=top_k,
            filter=self.filter_expression(filter), output_fields=self.layout.milvus_output_fields(),
            search_params=params,
        )  # fmt: skip
        key, score = self.layout.milvus_id, abs if branch == "sparse" else float
        rows = ((r.get(key, r.get("id")), score(r["distance"]), r.get("entity", {})) for r in results[0])
        return self._hits("milvus", rows, branch)

    def search(
        self, vector: NDArray[np.float32], top_k: int, filter: MetadataFilter | None = None
    ) -> list[Hit]:
        """Returns the `top_k` points closest to `vector` whose metadata matches `filter`."""
        data = np.asarray(vector, dtype=np.float32).tolist()
        return self._search("dense", data, self.layout.milvus_vector, top_k, filter, self._dense_params())

    def sparse_search(
        self, query: SparseQuery, top_k: int, filter: MetadataFilter | None = None
    ) -> list[Hit]:
        """As `BaseSink.sparse_search`; a BM25 query is analysed as the documents were (stop words: none)."""
        sparse: MilvusSparse = self._require_sparse(query)
        if not isinstance(query, str):  # a learned collection's query vector
            if not len(query):
                return []
            return self._search("sparse", query.to_dict(), sparse.field, top_k, filter, {"metric_type": "IP"})
        text = query if sparse.terms is None else sparse.terms.query_text(query)
        if not text.strip():
            return []
        return self._search("sparse", text, sparse.field, top_k, filter, {"metric_type": "BM25"})

    def count(self) -> int:
        """Returns the number of points in the collection."""
        self._ensure_loaded()
        rows = self._on("count", self.client.query, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def iter_vectors(self, batch_size: int) -> Iterator[StoredVectors]:
        """Yields every stored point's id and vector, `batch_size` points at a time."""
        self._ensure_loaded()
        key, vector = self.layout.milvus_id, self.layout.milvus_vector
        with _muted(_QUERY_ITERATOR_LOGGER, "failed to get mvccTs"):
            query = self.client.query_iterator
            iterator = self._on("scan", query, batch_size=batch_size, filter="", output_fields=[key, vector])
        try:
            while rows := self._call("scan", iterator.next):
                yield [(str(row[key]), _as_vector(row.get(vector))) for row in rows]
        finally:
            iterator.close()

    def replace_vectors(self, ids: Sequence[str], vectors: NDArray[np.float32]) -> None:
        """As `BaseSink.replace_vectors`: every other field is written back as it was."""
        if not ids:
            return
        layout = self.layout
        rows = self._get(ids, ["*"])
        replacement = dict(zip(ids, np.asarray(vectors, dtype=np.float32).tolist(), strict=True))
        sparse = self._sparse_state()  # a function's output: the server computes it again
        function_output = None if sparse is None or sparse.learned else sparse.field
        updated = []
        for row in rows:
            point_id = str(row[layout.milvus_id])
            if point_id in replacement:
                kept = {k: v for k, v in row.items() if k != function_output}
                updated.append({**kept, layout.milvus_vector: replacement[point_id]})
        if updated:
            self._on("vector update", self.client.upsert, updated)


@contextlib.contextmanager
def _muted(logger_name: str, message_start: str) -> Iterator[None]:
    """Drops the log records of `logger_name` that start with `message_start` (Milvus Lite's noise)."""

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(message_start)

    logger = logging.getLogger(logger_name)
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _as_vector(value: Any) -> NDArray[np.float32] | None:
    """A stored vector as an array (`None`: none)."""
    return None if value is None else np.asarray(value, dtype=np.float32)


def terms_text(terms: BM25Terms, text: str) -> str:
    """`terms.document_text(text)` cut at a word to fit the `bm25_terms` VARCHAR (~8,000 tokens)."""
    words = terms.document_text(text)
    if len(words) <= VARCHAR_MAX_BYTES:  # base-36 words are ASCII: one byte a character
        return words
    return words[: VARCHAR_MAX_BYTES + 1].rsplit(_TERMS_SEPARATOR, 1)[0]


def truncate_utf8(text: str, max_bytes: int) -> str:
    """Returns the longest prefix of `text` whose UTF-8 encoding fits in `max_bytes`."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")
