"""What every ingest runner shares: the checks before the engine, stored-chunk selection, counters, report.

`ingest` (one process, `pipeline.py`), the Ray ingest (`vllm_embed.ray_data`) and the CLI run the same
steps in the same order, each written here once:

1. `scan_input`: the input read ahead for repeated document ids (a file's broken record fails here too).
2. `check_collection`: the collection's manifest against this run, writing nothing.
3. `open_collection`: the collection created or checked, and this run's chunking recorded.
4. `select_unstored`: per batch, the chunks the store holds unchanged are dropped before embedding, and
   those it holds with the same text but other metadata are rewritten without embedding.
5. `Counters`: what the written batches add up to, and the `IngestReport` they make.

Steps 1–3 need no engine: a mistake is reported before the engine's minute of start-up, and a run with
nothing to embed never starts one.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from vllm_embed.errors import UnmanagedCollectionError
from vllm_embed.ingest.chunk_settings import check_chunking, chunking_fields, record_chunking
from vllm_embed.ingest.documents import DocumentLike
from vllm_embed.ingest.duplicates import can_read_twice, superseded_positions
from vllm_embed.ingest.embedder_api import SupportsMultiVectorEmbedding, SupportsSparseEmbedding
from vllm_embed.ingest.ids import point_id
from vllm_embed.ingest.options import IngestOptions
from vllm_embed.ingest.report import IngestReport
from vllm_embed.ingest.splitters import DocumentChunker
from vllm_embed.sinks.base import Chunk, Manifest, MultiVector, Sink

if TYPE_CHECKING:
    from vllm_embed.learned_sparse import SparseVector


@dataclass(frozen=True)
class InputScan:
    """What reading the input ahead found.

    Attributes:
        superseded: Positions of the documents a later version replaces (`on_duplicate="last"`); `None`
            when the input is an iterator, which is read once (repeated ids are then found while reading).
    """

    superseded: frozenset[int] | None


def scan_input(
    documents: Iterable[DocumentLike],
    options: IngestOptions,
    text_field: str = "text",
    id_field: str | None = None,
) -> InputScan:
    """Reads every document id ahead of the run (files: every record is parsed, so a broken one fails here).

    Raises:
        DuplicateDocumentError: For a repeated id, with `on_duplicate="error"`.
        InputFileError: For a record a loader cannot read (naming file, line and, for JSON, column).
        ValueError: For `on_duplicate="last"` on an iterator (it must be read twice).
    """
    if can_read_twice(documents):
        return InputScan(superseded_positions(documents, text_field, id_field, options.on_duplicate))
    if options.on_duplicate == "last":
        raise ValueError(
            "on_duplicate='last' reads the input twice (to know which version is last): pass a list or a "
            "loader (load_path), not an iterator"
        )
    return InputScan(None)


def planned_manifest(
    description: Mapping[str, Any],
    layout: str,
    chunker: DocumentChunker,
    extra: ExtraEmbedders | None = None,
) -> Manifest:
    """This run's manifest: the engine's description (see `Embedder`), chunking and the other models.

    `extra` names the learned sparse and multi-vector models, when the run has them.
    """
    manifest = Manifest.from_description(description, layout=layout)
    return manifest.model_copy(update={**chunking_fields(chunker), **(extra or ExtraEmbedders()).fields()})


@dataclass(frozen=True)
class ExtraEmbedders:
    """The vectors a run makes beside the dense one: learned sparse, per-token (each `None`: not made).

    Attributes:
        sparse: A `SparseEmbedder` (its vectors are the collection's sparse half instead of BM25).
        multivector: A `MultiVectorEmbedder` (per-token vectors for a late-interaction stage).
    """

    sparse: SupportsSparseEmbedding | None = None
    multivector: SupportsMultiVectorEmbedding | None = None

    def __post_init__(self) -> None:
        for name, given, kind, expected in (
            ("sparse", self.sparse, "learned-sparse", "a SparseEmbedder (or 'bm25')"),
            ("multivector", self.multivector, "multivector", "a MultiVectorEmbedder"),
        ):
            describe = getattr(given, "describe", None)
            if given is not None and (not callable(describe) or describe().get("kind") != kind):
                raise TypeError(
                    f"{name}= takes {expected}, got {given!r}: e.g. {name}=vllm_embed."
                    f"{'SparseEmbedder' if name == 'sparse' else 'MultiVectorEmbedder'}(model=...)"
                )

    def close(self) -> None:
        """Stops the models' engines (each one's last user stops it)."""
        for model in (self.sparse, self.multivector):
            close = getattr(model, "close", None)
            if callable(close):
                close()

    def fields(self) -> dict[str, Any]:
        """The manifest fields recording these models."""
        fields: dict[str, Any] = {}
        if self.sparse is not None:
            fields.update(sparse="learned", sparse_model=self.sparse.describe())
        if self.multivector is not None:
            fields["multivector"] = self.multivector.describe()
        return fields


def stored_manifest(sink: Sink) -> Manifest | None:
    """The collection's manifest; `None` for a new collection, or one without manifest the sink adopts.

    Raises:
        UnmanagedCollectionError: For a collection without manifest the sink does not adopt.
    """
    try:
        return sink.read_manifest()
    except UnmanagedCollectionError:
        if not sink.adopt:
            raise
        return None


def check_collection(sink: Sink, run: Manifest | Mapping[str, Any], *, rechunk: bool) -> None:
    """Refuses a run the collection cannot take, writing nothing: model, size, layout, storage, chunking.

    Args:
        sink: The store.
        run: This run's manifest, or the fields of it known so far (the CLI knows the model, and the size
            and chunking when given, before it loads anything); the others are taken as the collection's.
        rechunk: Whether other chunking than the collection's is accepted.

    Raises:
        ManifestMismatchError: Naming both sides and the fix.
        UnmanagedCollectionError: For a collection without manifest the sink does not adopt (`prepare`
            checks an adopted one's vector size and distance before it writes anything).
    """
    stored = stored_manifest(sink)
    if stored is None:
        sink.check_creation()
        fields = run if isinstance(run, Mapping) else run.model_dump()
        sink.check_new_vectors(fields.get("sparse"), fields.get("multivector") is not None)
        return
    planned = run if isinstance(run, Manifest) else stored.model_copy(update=dict(run))
    stored.require_compatible(planned, sink.collection)
    sink.check_hybrid(stored)
    sink.check_vector_kinds(stored, planned)
    sink.check_storage(stored)
    check_chunking(stored, planned, sink.collection, rechunk=rechunk)


def open_collection(sink: Sink, manifest: Manifest, *, rechunk: bool, hybrid: bool = False) -> None:
    """Creates the collection, or checks it, and records this run's chunking (still no engine needed).

    Raises:
        ManifestMismatchError: As `check_collection`.
        ValueError: For `hybrid=True` with a sink that stores no sparse vectors.
    """
    sink.prepare(manifest)
    record_chunking(sink, manifest, rechunk=rechunk)
    stored = sink.read_manifest()
    if hybrid and (stored is None or stored.sparse is None):
        raise ValueError(
            f"hybrid=True needs a sink that stores sparse vectors: build {sink!r} with hybrid=True"
        )


@dataclass
class ChunkBatch:
    """Work for the embedder and writer: the chunks still to embed, and what to count once written."""

    to_embed: list[Chunk]
    chunks: int
    documents: int
    skipped: int
    stale: list[tuple[str, int]]
    rejected: list[tuple[str, str]] = field(default_factory=list)
    superseded: int = 0
    to_update: list[Chunk] = field(default_factory=list)
    """Chunks stored with the same text but other metadata: `update_metadata` rewrites them, unembedded."""
    vectors: NDArray[np.float32] | None = None
    sparse: list[SparseVector] | None = None
    """The learned sparse vectors of `to_embed`, when the run makes them."""
    multivectors: list[MultiVector] | None = None
    """The per-token vectors of `to_embed`, when the run makes them."""
    token_ids: list[list[int]] | None = None
    """The prompted token ids of each chunk of `to_embed`, when the chunker knows them."""


def select_unstored(sink: Sink, chunks: list[Chunk], documents: list[tuple[str, int]]) -> ChunkBatch:
    """Drops the chunks the store already holds unchanged, and finds documents that used to be longer.

    One `fetch_chunks` for the whole batch (`ingest`'s batches and the Ray ingest's blocks alike). A chunk
    whose stored text is its text but whose stored metadata differs goes to `to_update`: a re-run leaves
    what a fresh run leaves, without embedding it again. The metadata is compared as the store reads it
    back (canonical JSON), so collections written before this check need nothing new.

    Args:
        sink: The store.
        chunks: The chunks of `documents`, with their point ids.
        documents: `(doc_id, chunk count)` of each document the chunks belong to.

    Returns:
        The chunks to embed and to update, the counts, and the `(doc_id, chunk count)` of documents with
        stale chunks.
    """
    # The point just past a document's last chunk only exists if an earlier version had more chunks.
    past_end = {point_id(doc_id, count): (doc_id, count) for doc_id, count in documents}
    stored = sink.fetch_chunks([c.id for c in chunks] + list(past_end))
    to_embed: dict[str, Chunk] = {}
    to_update: list[Chunk] = []
    for chunk in chunks:
        hit = stored.get(chunk.id)
        if hit is None or hit.text != sink.stored_text(chunk.text):
            to_embed[chunk.id] = chunk
        elif metadata_fingerprint(hit.metadata) != metadata_fingerprint(chunk.metadata):
            to_update.append(chunk)
    return ChunkBatch(
        to_embed=list(to_embed.values()),
        chunks=len(chunks),
        documents=len(documents),
        skipped=len(chunks) - len(to_embed) - len(to_update),
        stale=[past_end[pid] for pid in past_end if pid in stored],
        to_update=to_update,
    )


def metadata_fingerprint(metadata: Mapping[str, Any]) -> str:
    """Metadata as canonical JSON: equal for what was written and what the store reads back."""
    return json.dumps(dict(metadata), sort_keys=True, ensure_ascii=False, default=str)


@dataclass
class Counters:
    """What the written batches add up to; the Ray ingest merges one per write task."""

    documents: int = 0
    chunks: int = 0
    embedded: int = 0
    skipped: int = 0
    updated: int = 0
    written: int = 0
    deleted_from: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    superseded: int = 0
    embedded_by: Counter[str] = field(default_factory=Counter)
    """Chunks each engine replica embedded (the Ray ingest)."""
    seconds_by: dict[str, float] = field(default_factory=dict)
    """Seconds each engine replica spent embedding (the Ray ingest)."""

    def add_batch(self, batch: ChunkBatch) -> None:
        """Counts a batch whose chunks are written and whose stale chunks are deleted."""
        self.documents += batch.documents
        self.chunks += batch.chunks
        self.embedded += len(batch.to_embed)
        self.written += len(batch.to_embed)
        self.skipped += batch.skipped
        self.updated += len(batch.to_update)
        self.deleted_from += len(batch.stale)
        self.rejected.extend(batch.rejected)
        self.superseded += batch.superseded

    def add(self, other: Counters) -> None:
        """Adds `other` to these counts."""
        for name in (
            "documents",
            "chunks",
            "embedded",
            "skipped",
            "updated",
            "written",
            "deleted_from",
            "superseded",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rejected.extend(other.rejected)
        self.embedded_by.update(other.embedded_by)
        for name, seconds in other.seconds_by.items():
            self.seconds_by[name] = self.seconds_by.get(name, 0.0) + seconds

    def report(self, seconds: float) -> IngestReport:
        """The `IngestReport` of a run that took `seconds`."""
        throughput = tuple(
            self.embedded_by[name] / spent if spent > 0 else 0.0
            for name, spent in sorted(self.seconds_by.items())
            if self.embedded_by[name] > 0
        )
        return IngestReport(
            documents=self.documents,
            chunks=self.chunks,
            embedded=self.embedded,
            skipped=self.skipped,
            written=self.written,
            updated=self.updated,
            seconds=seconds,
            deleted_from=self.deleted_from,
            rejected=tuple(self.rejected),
            superseded=self.superseded,
            replica_chunks_per_second=throughput,
        )
