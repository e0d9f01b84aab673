"""The ingest pipeline: read → chunk → skip what is stored → embed → write, as three overlapped stages.

A reader thread reads documents, chunks them and asks the store which chunks it already holds; the
calling thread hands the rest to the embedder, keeping the next batch queued at the engine so it never
waits between batches; a writer thread upserts the vectors. Bounded queues between the stages keep memory
flat in the corpus size and let the store work while the engine embeds.

Resumption needs no bookkeeping of its own: point ids are derived from `doc_id` and `chunk_index`, a chunk
whose stored text is unchanged is skipped, and an upsert is idempotent, so a re-run after any crash
converges to what an uninterrupted run leaves.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sized
from typing import Literal

from vllm_embed._utils import one_line
from vllm_embed.ingest.chunk_settings import make_chunker
from vllm_embed.ingest.core import (
    ChunkBatch,
    ExtraEmbedders,
    InputScan,
    check_collection,
    open_collection,
    planned_manifest,
    scan_input,
    select_unstored,
)
from vllm_embed.ingest.documents import (
    DEFAULT_MAX_METADATA_BYTES,
    Document,
    DocumentLike,
    as_document,
    unstorable_reason,
)
from vllm_embed.ingest.duplicates import DuplicateCheck, OnDuplicate, duplicate_error
from vllm_embed.ingest.embedder_api import (
    SupportsEmbedding,
    SupportsMultiVectorEmbedding,
    SupportsSparseEmbedding,
)
from vllm_embed.ingest.ids import point_id
from vllm_embed.ingest.loaders import DEFAULT_MAX_DOCUMENT_BYTES
from vllm_embed.ingest.options import IngestOptions
from vllm_embed.ingest.progress import IngestProgress
from vllm_embed.ingest.report import IngestReport
from vllm_embed.ingest.splitters import DocumentChunker, SplitterLike
from vllm_embed.ingest.stages import QUEUE_BATCHES, EmbedStage, Reader, Writer
from vllm_embed.sinks.base import Chunk, Sink

DOCS_PER_TOKENIZER_CALL = 64
"""Documents chunked together (one batched tokenizer call); the Ray ingest chunks its blocks alike."""


def _batches(
    documents: Iterable[DocumentLike],
    *,
    chunker: DocumentChunker,
    sink: Sink,
    batch_size: int,
    text_field: str,
    id_field: str | None,
    max_document_bytes: int | None,
    superseded: frozenset[int] | None,
    max_metadata_bytes: int | None = DEFAULT_MAX_METADATA_BYTES,
) -> Iterator[ChunkBatch]:
    """Reads, checks and chunks the documents; cuts batches between documents, never inside one.

    `superseded` holds the positions to drop when the ids were read ahead (`None` when they were not:
    then repeated ids are found here, while reading).
    """
    pending: list[Chunk] = []
    token_ids: dict[str, list[int]] = {}  # point id -> the chunk's prompted token ids, when known
    pending_documents: list[tuple[str, int]] = []  # (doc_id, chunk count) of the documents in `pending`
    rejected: list[tuple[str, str]] = []
    dropped = 0  # superseded documents since the last batch
    layout = sink.layout
    seen = DuplicateCheck() if superseded is None else None

    def accepted(position: int, doc: Document) -> bool:
        doc_id = doc.doc_id
        earlier = None if seen is None else seen.see(doc_id, position)
        if earlier is not None:
            raise duplicate_error(doc_id, earlier, position)
        reason = unstorable_reason(doc, max_document_bytes, max_metadata_bytes)
        if reason is not None:
            rejected.append((doc_id, reason))
            return False
        try:
            sink.check_document_id(doc_id)
        except ValueError as exc:
            rejected.append((doc_id, one_line(exc)))
            return False
        layout.check_metadata(doc_id, doc.metadata)
        return True

    def docs_in_groups() -> Iterator[list[Document]]:
        nonlocal dropped
        group: list[Document] = []
        for position, item in enumerate(documents):
            if superseded is not None and position in superseded:
                dropped += 1
                continue
            doc = as_document(item, text_field, id_field)
            if accepted(position, doc):
                group.append(doc)
            if len(group) == DOCS_PER_TOKENIZER_CALL:
                yield group
                group = []
        if group:
            yield group

    def cut() -> ChunkBatch:
        nonlocal pending, pending_documents, rejected, dropped, token_ids
        batch = select_unstored(sink, pending, pending_documents)
        if token_ids:
            batch.token_ids = [token_ids[chunk.id] for chunk in batch.to_embed]
        batch.rejected, batch.superseded = rejected, dropped
        pending, pending_documents, rejected, dropped, token_ids = [], [], [], 0, {}
        return batch

    for group in docs_in_groups():
        split = chunker.split([d.text for d in group], [d.splitter for d in group])
        for doc, pieces in zip(group, split, strict=True):
            doc_id = doc.doc_id
            for i, piece in enumerate(pieces):
                chunk = Chunk(point_id(doc_id, i), doc_id, i, piece.text, doc.metadata)
                pending.append(chunk)
                if piece.token_ids is not None:
                    token_ids[chunk.id] = piece.token_ids
            pending_documents.append((doc_id, len(pieces)))
            if len(pending) >= batch_size:
                yield cut()
    if pending or pending_documents or rejected or dropped:
        yield cut()


def ingest(
    documents: Iterable[DocumentLike],
    *,
    embedder: SupportsEmbedding,
    sink: Sink,
    chunk_tokens: int | None = None,
    chunk_overlap: int = 0,
    batch_size: int = 256,
    progress: bool = True,
    text_field: str = "text",
    id_field: str | None = None,
    total: int | None = None,
    on_duplicate: OnDuplicate = "error",
    max_document_bytes: int | None = DEFAULT_MAX_DOCUMENT_BYTES,
    splitter: SplitterLike | None = None,
    rechunk: bool = False,
    max_metadata_bytes: int | None = DEFAULT_MAX_METADATA_BYTES,
    sparse: SupportsSparseEmbedding | Literal["bm25"] | None = None,
    multivector: SupportsMultiVectorEmbedding | None = None,
) -> IngestReport:
    """Chunks, embeds and stores documents; idempotent and resumable.

    Chunks already stored with the same text are skipped before embedding, so re-running an ingest (after
    a crash, or on a grown corpus) embeds only what is missing or changed. The collection is created with
    a manifest of the embedding and chunking settings on first use; a run with another model or size, or
    other chunking (splitter, chunk size or overlap), is refused before anything is written — unless
    `rechunk=True`, which replaces the chunks of every document of this run and records the new chunking.

    A document id may occur once per run (see `on_duplicate`). When `documents` can be read twice (a list,
    a loader from `load_path`: anything but an iterator) its ids are read ahead, so a repeated id is found
    before anything is written; an iterator is checked as it is read, and the error comes before anything
    of the repeated document's second version is written (earlier documents may be stored, as with any
    error mid-run, and the store stays consistent document by document). Either way every id of the run
    is remembered: memory grows with the number of documents.

    A document refused by the store (`sink.check_document_id`, e.g. an id too long for Milvus), larger
    than `max_document_bytes`, or whose metadata is larger than `max_metadata_bytes` or nested deeper than
    `MAX_METADATA_DEPTH` is not written; the others are, and the report lists it in `rejected`.

    Args:
        documents: `Document`s, strings, dicts, or LangChain / LlamaIndex documents (see `as_document`),
            e.g. a loader from `load_path`.
        embedder: The `Embedder` (anything with its document-embedding API).
        sink: Where vectors go, e.g. `QdrantSink` or `MilvusSink`.
        chunk_tokens: Longest chunk in tokens of the model's input, with the document prompt and special
            tokens; `None` uses `DEFAULT_CHUNK_TOKENS` (512), or the model's longest input when smaller.
        chunk_overlap: Tokens shared by consecutive chunks of a document.
        batch_size: Chunks per embedding call and per write.
        progress: Show a progress bar on stderr.
        text_field: Key of the text in dict documents.
        id_field: Key of the id in dict documents; `None` uses `"id"` when present.
        total: Number of documents, for the progress ETA; `None` uses `len(documents)` when it has one.
        on_duplicate: For a document id that occurs twice: `"error"` raises `DuplicateDocumentError`
            naming both positions; `"last"` ingests the last version only (the input is then read twice,
            so it cannot be an iterator).
        max_document_bytes: Largest document text in bytes (UTF-8); a larger one is rejected. `None`
            accepts any size.
        splitter: `"text"` (chunks end at paragraphs, then sentences, then words), `"markdown"` (along
            headings and blocks first), `"tokens"` (fixed token windows), or a function `str -> list[str]`
            (a chunk it returns that is too long is cut into token windows). `None`: each document's own
            `Document.splitter` (the loaders set `"markdown"` for `.md` files), else `"text"`; recorded as
            `"text"`.
        rechunk: Accept chunking that differs from the collection's: each document of this run gets its
            chunks replaced (its old chunks past the new last one are deleted), and the manifest records
            the new chunking. Documents not in this run keep their old chunks.
        max_metadata_bytes: Largest document metadata in bytes (as JSON, UTF-8; every chunk stores a
            copy); a document with larger metadata is rejected. `None` accepts any size.
        sparse: The collection's sparse half for hybrid and sparse search: a `SparseEmbedder` (SPLADE,
            BGE-M3: its vectors are stored, inner product, no IDF) or `"bm25"` (as `hybrid=True` on the
            sink). A collection made with a sparse model needs it on every run.
        multivector: A `MultiVectorEmbedder` (ColBERT, BGE-M3) whose per-token vectors are stored for a
            late-interaction (MaxSim) stage of `search` (Qdrant; Milvus refuses them). A collection made
            with one needs it on every run.

    Returns:
        The counts of the run.

    Raises:
        DuplicateDocumentError: For a document id that occurs twice, with `on_duplicate="error"`.
        ManifestMismatchError: If the collection was embedded with another model, size or layout, or
            chunked otherwise (without `rechunk=True`).
        SinkError: If the store fails for good; everything written before stays valid.
        ValueError: For invalid arguments or documents.
    """
    options = IngestOptions.pick(locals())
    if sparse == "bm25":
        sink.use_bm25()
    extra = ExtraEmbedders(None if sparse == "bm25" else sparse, multivector)
    return run_ingest(
        documents,
        extra=extra,
        embedder=embedder,
        sink=sink,
        options=options,
        text_field=text_field,
        id_field=id_field,
        total=total,
    )


def run_ingest(
    documents: Iterable[DocumentLike],
    *,
    embedder: SupportsEmbedding,
    sink: Sink,
    options: IngestOptions,
    text_field: str = "text",
    id_field: str | None = None,
    total: int | None = None,
    scan: InputScan | None = None,
    extra: ExtraEmbedders | None = None,
) -> IngestReport:
    """`ingest` with its settings as one `IngestOptions` (the CLI calls this).

    Everything that needs no engine comes first: the chunker (the tokenizer only), the input read ahead
    (`scan`, unless the caller did that already), the collection's manifest checked and prepared. The
    engine is asked for vectors only when a batch has chunks to embed, so an `Embedder` whose engine has
    not started yet (see `Embedder`) starts it only then, and a re-run with everything stored never does.
    """
    started = time.perf_counter()
    chunker = make_chunker(
        embedder,
        chunk_tokens=options.chunk_tokens,
        chunk_overlap=options.chunk_overlap,
        splitter=options.splitter,
    )
    if scan is None:
        scan = scan_input(documents, options, text_field, id_field)
    manifest = planned_manifest(embedder.describe(), sink.layout.name, chunker, extra)
    check_collection(sink, manifest, rechunk=options.rechunk)
    open_collection(sink, manifest, rechunk=options.rechunk)
    if total is None and isinstance(documents, Sized):
        total = len(documents)

    with IngestProgress(enabled=options.progress, total=total) as bar:
        writer = Writer(sink, bar)
        reader = Reader(
            _batches(
                documents,
                chunker=chunker,
                sink=sink,
                batch_size=options.batch_size,
                text_field=text_field,
                id_field=id_field,
                max_document_bytes=options.max_document_bytes,
                superseded=scan.superseded,
                max_metadata_bytes=options.max_metadata_bytes,
            ),
            maxsize=QUEUE_BATCHES,
        )
        embedding = EmbedStage(embedder, extra)
        try:
            for batch in reader:
                embedding.submit(batch)
                for done in embedding.completed():
                    writer.put(done)
            for done in embedding.completed(wait_all=True):
                writer.put(done)
        except BaseException:
            reader.stop()
            embedding.close()
            # What was embedded before the failure is still written: it is valid and saves a re-run work.
            with contextlib.suppress(BaseException):
                writer.finish()
            raise
        embedding.close()
        writer.finish()
    return writer.counters.report(time.perf_counter() - started)
