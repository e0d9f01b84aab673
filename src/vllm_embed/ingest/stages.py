"""The stages of the ingest pipeline: a reader thread, the embedding stage and a writer thread.

`pipeline.ingest` connects them; each hands batches of whole documents on, in order, through bounded
queues, so memory stays flat in the corpus size.
"""

from __future__ import annotations

import collections
import concurrent.futures
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

import numpy as np
from numpy.typing import NDArray

from vllm_embed.ingest.core import ChunkBatch, Counters, ExtraEmbedders
from vllm_embed.ingest.embedder_api import SupportsEmbedding, SupportsLazyStart, SupportsTokenInput
from vllm_embed.ingest.progress import IngestProgress
from vllm_embed.sinks.base import Chunk, MultiVector, Sink

if TYPE_CHECKING:
    from vllm_embed.learned_sparse import SparseVector

T = TypeVar("T")

QUEUE_BATCHES = 2
_EMBED_DEPTH = 2
_POLL_SECONDS = 0.1


@dataclass
class _Failure:
    error: BaseException


_END = object()


class Reader(Generic[T]):
    """Runs an iterator in a thread and hands its items over through a bounded queue."""

    def __init__(self, items: Iterator[T], maxsize: int) -> None:
        self._items = items
        self._queue: queue.Queue[object] = queue.Queue(maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vllm-embed-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread, which raises it
            self._put(_Failure(exc))

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]

    def stop(self) -> None:
        """Stops reading ahead and waits for the thread."""
        self._stop.set()
        self._thread.join()


@dataclass
class Writer:
    """Writes batches in a thread, in order; the first error stops writing and is raised to the caller."""

    sink: Sink
    progress: IngestProgress
    counters: Counters = field(default_factory=Counters)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._queue: queue.Queue[object] = queue.Queue(QUEUE_BATCHES)
        self._thread = threading.Thread(target=self._run, name="vllm-embed-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is _END:
                return
            if self.error is not None or not isinstance(batch, ChunkBatch):
                continue  # keep draining so the caller never blocks on a full queue
            try:
                self._write(batch)
            except BaseException as exc:  # noqa: BLE001 - raised in the calling thread by put()/finish()
                self.error = exc

    def _write(self, batch: ChunkBatch) -> None:
        for doc_id, first_index in batch.stale:
            self.sink.delete_chunks_from(doc_id, first_index)
        if batch.to_embed:
            assert batch.vectors is not None
            extras: dict[str, Any] = {"sparse": batch.sparse, "multivectors": batch.multivectors}
            self.sink.upsert(
                batch.to_embed, batch.vectors, **{k: v for k, v in extras.items() if v is not None}
            )
        self.sink.update_metadata(batch.to_update)
        self.counters.add_batch(batch)
        self.progress.advance(batch.documents + len(batch.rejected) + batch.superseded, batch.chunks)

    def put(self, batch: ChunkBatch) -> None:
        """Queues `batch` for writing; raises the first write error."""
        while True:
            if self.error is not None:
                raise self.error
            try:
                self._queue.put(batch, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Waits for every queued batch to be written; raises the first write error."""
        self._queue.put(_END)
        self._thread.join()
        if self.error is not None:
            raise self.error


class EmbedStage:
    """Keeps the next batch queued at the engine while the current one is embedded.

    With one call at a time the engine idles between batches while results are handed on and the next
    batch is tokenised; with `_EMBED_DEPTH` calls in flight the shared engine starts the next one as soon
    as it is free. Batches come out in the order they went in.
    """

    def __init__(self, embedder: SupportsEmbedding, extra: ExtraEmbedders | None = None) -> None:
        self._embedder = embedder
        self._extra = extra or ExtraEmbedders()
        self._started = False
        self._pool = concurrent.futures.ThreadPoolExecutor(
            _EMBED_DEPTH, thread_name_prefix="vllm-embed-embed"
        )
        self._in_flight: collections.deque[tuple[ChunkBatch, concurrent.futures.Future[Any] | None]] = (
            collections.deque()
        )

    def submit(self, batch: ChunkBatch) -> None:
        """Starts embedding `batch` (at once if it has nothing to embed).

        The first batch with chunks to embed starts the embedder's engine here, in the calling thread, if it
        has not started yet.
        """
        if batch.to_embed and not self._started:
            if isinstance(self._embedder, SupportsLazyStart):
                self._embedder._live_backend()
            self._started = True
        future = (
            self._pool.submit(_embed, self._embedder, batch.to_embed, batch.token_ids, self._extra)
            if batch.to_embed
            else None
        )
        self._in_flight.append((batch, future))

    def completed(self, *, wait_all: bool = False) -> Iterator[ChunkBatch]:
        """Yields finished batches, oldest first, waiting while `_EMBED_DEPTH` are in flight (or for all).

        Raises:
            Exception: The first embedding error, after the batches finished before it were yielded.
        """
        while self._in_flight and (wait_all or len(self._in_flight) >= _EMBED_DEPTH or self._ready()):
            batch, future = self._in_flight.popleft()
            if future is not None:
                batch.vectors, batch.sparse, batch.multivectors = future.result()
            yield batch

    def close(self) -> None:
        """Drops what is not finished (a running engine call still completes) and frees the threads."""
        for _, future in self._in_flight:
            if future is not None:
                future.cancel()
        self._in_flight.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _ready(self) -> bool:
        future = self._in_flight[0][1]
        return future is None or future.done()


Embedded: TypeAlias = "tuple[NDArray[np.float32], list[SparseVector] | None, list[MultiVector] | None]"
"""A batch's dense vectors, and its learned sparse and per-token vectors when the run makes them."""


def _embed(
    embedder: SupportsEmbedding,
    chunks: list[Chunk],
    token_ids: list[list[int]] | None = None,
    extra: ExtraEmbedders | None = None,
) -> Embedded:
    """Embeds the chunks' texts with every model of the run: dense, learned sparse, per-token.

    Dense vectors go through the Embedder's pre-tokenised path when the token ids are known.
    """
    texts = [c.text for c in chunks]
    extra = extra or ExtraEmbedders()
    sparse = None if extra.sparse is None else extra.sparse.embed_documents(texts)
    multivectors = None if extra.multivector is None else extra.multivector.embed_documents(texts)
    for name, made in (("sparse", sparse), ("multi-vector", multivectors)):
        if made is not None and len(made) != len(chunks):
            raise RuntimeError(f"the {name} embedder returned {len(made)} results for {len(chunks)} texts")
    return _embed_dense(embedder, texts, token_ids, len(chunks)), sparse, multivectors


def _embed_dense(
    embedder: SupportsEmbedding, texts: list[str], token_ids: list[list[int]] | None, count: int
) -> NDArray[np.float32]:
    if token_ids is not None and isinstance(embedder, SupportsTokenInput):
        result = embedder._embed_document_tokens(texts, token_ids)
    else:
        result = embedder.embed_documents(texts)
    vectors = np.asarray(result, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != count:
        raise RuntimeError(f"the embedder returned shape {vectors.shape} for {count} texts")
    return vectors
