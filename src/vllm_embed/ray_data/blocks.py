"""The per-block work of the Ray ingest: documents → chunks, the stored-chunk lookup, and the write.

Blocks are Arrow tables of `CHUNK_SCHEMA`: one row per chunk, and one per document that has no chunk row
(a blank document, or one refused for its size or id). What a block adds to the `IngestReport` is read off
its rows' typed columns when the block is written (which rows must be embedded, which were found already
stored, which document's stale trailing chunks go, which replica embedded a row and how long it took), so
the counts are added exactly when the block's points are written, and a retried task counts once.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from vllm_embed._utils import batched, one_line
from vllm_embed.config import EmbedderConfig
from vllm_embed.ingest.chunk_settings import make_chunker
from vllm_embed.ingest.core import Counters, select_unstored
from vllm_embed.ingest.documents import DEFAULT_MAX_METADATA_BYTES, Document, as_document, unstorable_reason
from vllm_embed.ingest.ids import point_id
from vllm_embed.ingest.pipeline import DOCS_PER_TOKENIZER_CALL
from vllm_embed.ingest.splitters import SPLITTERS, DocumentChunker, SplitterLike
from vllm_embed.sinks.base import Chunk, Sink
from vllm_embed.sinks.layouts import get_layout

CHUNK_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("doc_id", pa.string()),
        ("chunk_index", pa.int64()),
        ("text", pa.string()),
        ("metadata", pa.string()),  # JSON: documents' metadata differ in keys and types
        ("token_ids", pa.list_(pa.int32())),  # the chunker's prompted token ids, null when unknown
        ("embed", pa.bool_()),  # a chunk to embed and write (false: stored already, or a document row)
        ("rejected", pa.string()),  # on a document row: why the document is not written
        ("delete_from", pa.int64()),  # on a document's first row: its stale chunks from this index on
    ]
)
DOCUMENT_ROW = -1
"""`chunk_index` of a document row: a document without chunk rows (blank, or rejected)."""
REPLICA_COLUMN = "replica"
SECONDS_COLUMN = "embed_seconds"
"""The replicas' columns: who embedded a row, and its share of that engine call's seconds."""
VECTOR_COLUMN = "vector"
METADATA_JSON = "__vllm_embed_metadata_json__"
"""`DocumentPlan.metadata_columns` value meaning: the `metadata` column holds each document's JSON."""


@dataclass(frozen=True)
class DocumentPlan:
    """How rows become documents and documents become chunks (sent to every chunking task).

    Attributes:
        config: The replicas' engine settings (the tokenizer is the model's own).
        chunk_tokens: Longest chunk in tokens, with the document prompt and special tokens; `None` for
            `make_chunker`'s default.
        chunk_overlap: Tokens shared by consecutive chunks.
        splitter: As for `ingest`, a function included (`None`: each document's own splitter, else `"text"`).
        text_column: Column of the text.
        id_column: Column of the document id (`None`: a hash of the text).
        metadata_columns: Columns stored as metadata; `None` for every other column.
        max_document_bytes: Largest document text in bytes; `None` for any size.
        layout: The sink's payload layout name (its reserved metadata keys are refused).
        splitter_column: Column naming each row's own splitter (`"text"`, `"markdown"`, `"tokens"` or
            null), used when `splitter` is `None`; not stored as metadata. `None`: no such column.
        max_metadata_bytes: Largest document metadata in bytes (JSON); `None` for any size.
    """

    config: EmbedderConfig
    chunk_tokens: int | None
    chunk_overlap: int
    splitter: SplitterLike | None
    text_column: str
    id_column: str | None
    metadata_columns: tuple[str, ...] | str | None
    max_document_bytes: int | None
    layout: str
    splitter_column: str | None = None
    max_metadata_bytes: int | None = DEFAULT_MAX_METADATA_BYTES

    def documents(self, table: pa.Table) -> Iterator[Document]:
        """Yields the documents of a block of input rows, in order."""
        for row in table.to_pylist():
            yield self.document(row)

    def document(self, row: Mapping[str, Any]) -> Document:
        """Returns the document of one input row."""
        if self.metadata_columns == METADATA_JSON:
            raw_id = row.get("id")
            raw_id = None if raw_id is None else str(raw_id)
            return Document(row["text"], raw_id, json.loads(row["metadata"]), row.get("splitter"))
        hint = None if self.splitter_column is None else self._hint(row)
        if self.metadata_columns is None:
            fields = {k: v for k, v in row.items() if k != self.splitter_column}
        else:
            fields = {self.text_column: row[self.text_column]}
            key = self.id_column or "id"
            if key in row:
                fields[key] = row[key]
            fields["metadata"] = {name: row[name] for name in self.metadata_columns}
        doc = as_document(fields, self.text_column, self.id_column)
        return doc if hint is None else replace(doc, splitter=hint)

    def _hint(self, row: Mapping[str, Any]) -> str | None:
        column = str(self.splitter_column)
        if column not in row:
            raise ValueError(
                f"splitter_column={column!r} is not a column of the dataset (columns: "
                f"{sorted(map(str, row))}): name the column holding each row's splitter"
            )
        hint = row[column]
        if hint is not None and hint not in SPLITTERS:
            raise ValueError(
                f"column {column!r} holds {hint!r}: each row names one of {SPLITTERS}, or is null for "
                "the default"
            )
        return None if hint is None else str(hint)


@dataclass(frozen=True)
class PlannedEngine:
    """What `make_chunker` reads from an `Embedder`, known without starting its engine.

    Attributes:
        config: The engine settings.
        tokenizer: The model's tokenizer (`None` when not available locally).
        max_model_len: Longest model input, with special tokens.
        max_input_tokens: Longest text, without the special tokens.
        format_document: The model's document prompt.
    """

    config: EmbedderConfig
    tokenizer: Any
    max_model_len: int | None
    max_input_tokens: int | None
    format_document: Any

    @classmethod
    def load(cls, config: EmbedderConfig) -> PlannedEngine:
        """Loads the tokenizer and profile of `config`'s model (the same formula as `Embedder`)."""
        from vllm_embed.embedder import prompt_affixes
        from vllm_embed.facade import load_tokenizer
        from vllm_embed.profiles import detect_profile

        profile = detect_profile(config.model, config.revision, config.profile)
        tokenizer = load_tokenizer(config)
        prefix, suffix = prompt_affixes(tokenizer, profile) if tokenizer is not None else ([], [])
        max_len = config.max_model_len or profile.max_length
        max_input = None if max_len is None else max_len - len(prefix) - len(suffix)
        return cls(config, tokenizer, max_len, max_input, profile.format_document)


_CHUNKERS: dict[bytes, DocumentChunker] = {}


def plan_chunker(plan: DocumentPlan) -> DocumentChunker:
    """The chunker `ingest` would use for `plan`; one per worker process (loading a tokenizer is slow)."""
    from ray import cloudpickle  # a splitter function may be a lambda, which `pickle` refuses

    key: bytes = cloudpickle.dumps(plan)  # type: ignore[no-untyped-call]
    if key not in _CHUNKERS:
        _CHUNKERS[key] = make_chunker(
            PlannedEngine.load(plan.config),  # type: ignore[arg-type]
            chunk_tokens=plan.chunk_tokens,
            chunk_overlap=plan.chunk_overlap,
            splitter=plan.splitter,
        )
    return _CHUNKERS[key]


def chunk_rows(
    chunks: Iterable[Chunk], token_ids: Mapping[str, list[int]] | None = None, *, embed: bool = True
) -> list[dict[str, Any]]:
    """Chunk rows of `CHUNK_SCHEMA`, with each chunk's token ids where `token_ids` has them."""
    return [
        {
            "id": c.id,
            "doc_id": c.doc_id,
            "chunk_index": c.chunk_index,
            "text": c.text,
            "metadata": json.dumps(dict(c.metadata), ensure_ascii=False),
            "token_ids": None if token_ids is None else token_ids.get(c.id),
            "embed": embed,
            "rejected": None,
            "delete_from": None,
        }
        for c in chunks
    ]


def document_row(doc_id: str, rejected: str | None = None) -> dict[str, Any]:
    """The row of a document without chunk rows: blank (`rejected` is `None`), or not written."""
    return {
        "id": "",
        "doc_id": doc_id,
        "chunk_index": DOCUMENT_ROW,
        "text": "",
        "metadata": "",
        "token_ids": None,
        "embed": False,
        "rejected": rejected,
        "delete_from": None,
    }


def as_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The rows as an Arrow table of `CHUNK_SCHEMA`."""
    return pa.Table.from_pylist(rows, schema=CHUNK_SCHEMA)


def _chunks(rows: Iterable[Mapping[str, Any]]) -> list[Chunk]:
    return [
        Chunk(row["id"], row["doc_id"], row["chunk_index"], row["text"], json.loads(row["metadata"]))
        for row in rows
    ]


def block_token_ids(table: pa.Table) -> dict[str, list[int]]:
    """The token ids of a block's chunk rows, by point id (rows without them are left out)."""
    if "token_ids" not in table.column_names:
        return {}
    ids, tokens = table.column("id").to_pylist(), table.column("token_ids").to_pylist()
    return {i: t for i, t in zip(ids, tokens, strict=True) if t is not None}


def chunk_block(table: pa.Table, plan: DocumentPlan) -> pa.Table:
    """Ray task: the chunk rows (with their point ids) of a block of documents, all to embed.

    A document without chunks (blank), or refused for its size, gets a document row instead.
    """
    chunker = plan_chunker(plan)
    layout = get_layout(plan.layout)
    accepted: list[Document] = []
    rows: list[dict[str, Any]] = []
    for doc in plan.documents(table):
        reason = unstorable_reason(doc, plan.max_document_bytes, plan.max_metadata_bytes)
        if reason is not None:
            rows.append(document_row(doc.doc_id, reason))
            continue
        layout.check_metadata(doc.doc_id, doc.metadata)
        accepted.append(doc)
    for group in batched(accepted, DOCS_PER_TOKENIZER_CALL):
        split = chunker.split([d.text for d in group], [d.splitter for d in group])
        for doc, pieces in zip(group, split, strict=True):
            doc_id = doc.doc_id
            chunks = [
                Chunk(point_id(doc_id, i), doc_id, i, p.text, doc.metadata) for i, p in enumerate(pieces)
            ]
            token_ids = {
                c.id: p.token_ids for c, p in zip(chunks, pieces, strict=True) if p.token_ids is not None
            }
            rows.extend(chunk_rows(chunks, token_ids) if chunks else [document_row(doc_id)])
    return as_table(rows)


def document_ids(table: pa.Table, plan: DocumentPlan) -> pa.Table:
    """Ray task: the document id of each row (for the duplicate check before the run)."""
    return pa.table({"doc_id": [doc.doc_id for doc in plan.documents(table)]})


def id_hash(doc_id: str) -> int:
    """A 64-bit hash of a document id (the duplicate check keeps these, not the ids)."""
    digest = hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def id_hashes(table: pa.Table, plan: DocumentPlan) -> pa.Table:
    """Ray task: the `id_hash` of each row's document id (the first pass of the duplicate check)."""
    return pa.table({"hash": pa.array([id_hash(d.doc_id) for d in plan.documents(table)], pa.uint64())})


def repeated_rows(table: pa.Table, plan: DocumentPlan, hashes: Collection[int], keep_rows: bool) -> pa.Table:
    """Ray task: the rows whose id hash is in `hashes` (the second pass of the duplicate check).

    One output row per such row — its document id, its index in this block and, with `keep_rows`, the
    row itself as a pickled one-row table — then one row (index -1) holding the block's row count, so the
    driver reading the blocks in order knows every row's position.
    """
    doc_ids, indexes, rows = [], [], []
    for index, doc in enumerate(plan.documents(table)):
        if id_hash(doc.doc_id) in hashes:
            doc_ids.append(doc.doc_id)
            indexes.append(index)
            rows.append(pickle.dumps(table.take([index])) if keep_rows else None)
    return pa.table(
        {
            "doc_id": [*doc_ids, None],
            "index": pa.array([*indexes, -1], pa.int64()),
            "rows": pa.array([0] * len(indexes) + [table.num_rows], pa.int64()),
            "row": pa.array([*rows, None], pa.binary()),
        }
    )


def without_documents(table: pa.Table, plan: DocumentPlan, doc_ids: Collection[str]) -> pa.Table:
    """Ray task: the rows whose document id is not in `doc_ids`."""
    keep = [doc.doc_id not in doc_ids for doc in plan.documents(table)]
    return table.filter(pa.array(keep, pa.bool_()))


def select_block(sink: Sink, table: pa.Table) -> pa.Table:
    """Marks the chunks `sink` holds already (one lookup for the block) and drops documents it refuses.

    A chunk stored unchanged keeps its row, without text (it is counted, not embedded); one stored with the
    same text but other metadata is rewritten here (`update_metadata`, no embedding) and counted alike; a
    document the store refuses (`check_document_id`) becomes a rejected document row; a document whose
    stored version had more chunks gets `delete_from` on its first row. A block holds whole documents
    (`chunk_block`'s output). Runs in a Ray task for a store server, in the driver for an embedded store.
    """
    token_ids = block_token_ids(table)
    by_document: dict[str, list[dict[str, Any]]] = {}
    for row in table.to_pylist():
        by_document.setdefault(row["doc_id"], []).append(row)
    rows: list[dict[str, Any]] = []
    candidates: list[Chunk] = []
    documents: list[tuple[str, int]] = []
    for doc_id, doc_rows in by_document.items():
        if doc_rows[0]["rejected"] is not None:
            rows.extend(doc_rows)
            continue
        try:
            sink.check_document_id(doc_id)
        except ValueError as exc:
            rows.append(document_row(doc_id, one_line(exc)))
            continue
        chunks = _chunks(r for r in doc_rows if r["chunk_index"] != DOCUMENT_ROW)
        candidates.extend(chunks)
        documents.append((doc_id, len(chunks)))
        if not chunks:
            rows.append(document_row(doc_id))
    batch = select_unstored(sink, candidates, documents)
    sink.update_metadata(batch.to_update)  # same text, new metadata: rewritten here, counted as stored
    to_embed = {c.id for c in batch.to_embed}
    for chunk in candidates:
        if chunk.id in to_embed:
            rows.extend(chunk_rows([chunk], token_ids))
        else:  # counted when written; its text is not needed any more
            rows.extend(chunk_rows([replace(chunk, text="", metadata={})], embed=False))
    first_rows: dict[str, dict[str, Any]] = {}
    for row in rows:
        first_rows.setdefault(row["doc_id"], row)
    for doc_id, first_index in batch.stale:
        first_rows[doc_id]["delete_from"] = first_index
    return as_table(rows)


def with_vectors(table: pa.Table, vectors: NDArray[np.float32]) -> pa.Table:
    """`table` with a fixed-size float32 `vector` column (rows without a vector hold zeros)."""
    values = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), type=pa.float32())
    return table.append_column(VECTOR_COLUMN, pa.FixedSizeListArray.from_arrays(values, vectors.shape[1]))


def write_block(sink: Sink, table: pa.Table) -> Counters:
    """Deletes stale trailing chunks, upserts the block's embedded chunks, and counts the block's rows."""
    counts = Counters()
    columns = ["doc_id", "chunk_index", "embed", "rejected", "delete_from"]
    timed = REPLICA_COLUMN in table.column_names
    if timed:
        columns += [REPLICA_COLUMN, SECONDS_COLUMN]
    written: list[int] = []
    for position, row in enumerate(table.select(columns).to_pylist()):
        if row["delete_from"] is not None:
            sink.delete_chunks_from(row["doc_id"], int(row["delete_from"]))
            counts.deleted_from += 1
        if row["rejected"] is not None:
            counts.rejected.append((row["doc_id"], row["rejected"]))
            continue
        index = row["chunk_index"]
        counts.documents += index in (0, DOCUMENT_ROW)  # a document counts once: on its first row
        if index == DOCUMENT_ROW:
            continue
        counts.chunks += 1
        if not row["embed"]:
            counts.skipped += 1
            continue
        written.append(position)
        if timed and row[REPLICA_COLUMN] is not None:
            name = row[REPLICA_COLUMN]
            counts.embedded_by[name] += 1
            counts.seconds_by[name] = counts.seconds_by.get(name, 0.0) + float(row[SECONDS_COLUMN])
    if written:
        chosen = table.take(written)
        vectors = chosen.column(VECTOR_COLUMN).combine_chunks()
        matrix = vectors.values.to_numpy(zero_copy_only=False).reshape(len(written), -1)
        chunks = _chunks(chosen.select(["id", "doc_id", "chunk_index", "text", "metadata"]).to_pylist())
        sink.upsert(chunks, matrix.astype(np.float32, copy=False))
        counts.written += len(written)
        counts.embedded += len(written)
    return counts


def chunk_texts(table: pa.Table) -> tuple[list[int], list[str]]:
    """Positions and texts of a block's rows to embed."""
    embed: Sequence[bool] = table.column("embed").to_pylist()
    texts: Sequence[str] = table.column("text").to_pylist()
    positions = [i for i, wanted in enumerate(embed) if wanted]
    return positions, [texts[i] for i in positions]


def chunk_token_ids(table: pa.Table, positions: Sequence[int]) -> list[list[int]] | None:
    """The token ids of the chunk rows at `positions`, or `None` unless every one has them."""
    if "token_ids" not in table.column_names:
        return None
    column = table.column("token_ids").to_pylist()
    found = [column[i] for i in positions]
    return None if any(t is None for t in found) else found
