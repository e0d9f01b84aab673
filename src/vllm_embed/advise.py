"""`advise`: the smallest vectors that keep recall on your own data, measured rather than guessed.

A sample of the corpus is chunked exactly as `ingest` chunks it and embedded once at the model's native
size. Every candidate storage configuration — each Matryoshka size the model allows, stored as float32,
int8 (scalar) or binary, searched with or without rescoring — is then searched exactly with numpy, and its
recall@k is its agreement with the native float32 exact ranking. No labelled queries are needed, and the
numbers do not depend on a store's approximate index.

Smaller sizes are not embedded again: vLLM makes a Matryoshka size by truncating the pooled vector and
L2-normalising it (`vllm.model_executor.layers.pooler.seqwise.heads.EmbeddingPoolerHead`), which is exactly
truncating and re-normalising the native unit vector, so the native vectors give every size.

How each configuration is simulated (Qdrant's own encodings, `lib/quantization` of Qdrant):

- `int8`: scalar quantization with one offset and one step for every value of the collection, from the
  minimum and maximum of the sample's document values (Qdrant's `quantile` left at its default: all values),
  `127` levels; queries are encoded the same way and scored by the dot product of the decoded vectors.
  The top-k are taken from those scores; rescoring them without oversampling (Qdrant's default for int8)
  reorders the same points, so the int8 row's recall holds with or without rescoring.
- `binary`: one bit per dimension (`value > 0`), queries too, scored by Hamming distance (ties broken by
  position in the sample). With rescoring, `BINARY_OVERSAMPLING` × k candidates are taken by Hamming distance
  and re-ranked by the float32 vectors of that size, as a rescored search of a binary-quantized collection.

Memory is a documented estimate per vector (`AdviceRow`): the vectors searched in RAM (float32, or the
quantized copy: int8 adds Qdrant's 4-byte correction per vector, binary packs 8 dimensions a byte), plus the
HNSW graph's level-0 links (`2 × HNSW_M` neighbours of 4 bytes). A quantized configuration keeps its float32
originals on disk (`--on-disk`), counted apart. Payload, ids and upper graph levels are not counted.
"""

from __future__ import annotations

import math
import random
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
from numpy.typing import NDArray

from vllm_embed.errors import VllmEmbedError
from vllm_embed.ingest.chunk_settings import make_chunker
from vllm_embed.ingest.documents import DocumentLike, as_document
from vllm_embed.ingest.embedder_api import SupportsEmbedding, SupportsTokenInput
from vllm_embed.ingest.splitters import ChunkText, SplitterLike
from vllm_embed.sinks.storage import BINARY_OVERSAMPLING, MilvusIndexSettings, QdrantCollectionSettings

if TYPE_CHECKING:
    from vllm_embed.config import EmbedderConfig
    from vllm_embed.profiles import ModelProfile
    from vllm_embed.sinks.base import Sink

__all__ = [
    "BINARY_OVERSAMPLING",
    "DIMENSION_LADDER",
    "HNSW_M",
    "STORES",
    "Advice",
    "AdviceError",
    "AdviceRow",
    "Encoding",
    "advise",
    "dimension_ladder",
    "evaluate",
    "ingest_flags",
    "plot",
    "query_from_chunk",
    "recommend",
]

Encoding = Literal["float32", "int8", "binary"]
"""How a configuration keeps the vectors it searches: float32, Qdrant's int8 scalar or binary quantization."""

ENCODINGS: tuple[str, ...] = get_args(Encoding)

DIMENSION_LADDER: tuple[int, ...] = (32, 64, 128, 256, 512, 768, 1024, 1536, 2048, 3072, 4096)
"""Matryoshka sizes tried: those the model's profile allows below its native size (which is always tried)."""

HNSW_M = 16
"""Edges per node of the HNSW graph assumed by the memory estimate (Qdrant's default)."""

INT8_LEVELS = 127
"""Levels of Qdrant's int8 scalar quantization (codes 0..127)."""

INT8_EXTRA_BYTES = 4
"""The float Qdrant keeps beside each int8-quantized vector (its score correction)."""

QUERY_WORDS = 32
"""Longest query derived from a held-out chunk, in words."""

MILVUS_INDEXES: dict[str, str | None] = {"float32": None, "int8": "IVF_SQ8", "binary": None}
"""The Milvus index type of each encoding (`None`: the default index; Milvus has no binary quantization of a
float vector field, so a binary row has no Milvus flags)."""

STORES: tuple[str, ...] = ("qdrant-edge",)
"""Stores `advise(store=...)` can re-measure the recommendation in."""

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")
_DOCS_PER_TOKENIZER_CALL = 64


class AdviceError(VllmEmbedError, ValueError):
    """`advise` cannot measure what was asked (too few chunks or queries, an invalid setting)."""


@dataclass(frozen=True)
class AdviceRow:
    """One candidate configuration and what it costs and keeps.

    Attributes:
        dimensions: Vector size (a Matryoshka size, or the native size).
        quantization: `"float32"` (no quantization), `"int8"` or `"binary"`.
        rescore: Whether the quantized candidates are re-ranked with the float32 vectors.
        oversampling: Candidates fetched per hit before rescoring (`None` without rescoring).
        recall_at_k: Mean share of the native float32 exact top-k this configuration finds in its top k.
        bytes_per_vector: Bytes of the vector searched in RAM (float32, or the quantized copy).
        ram_bytes_per_vector: `bytes_per_vector` plus the HNSW graph's level-0 links.
        disk_bytes_per_vector: Float32 originals a quantized configuration keeps on disk (0 for float32,
            whose vectors are in RAM).
        memory_1m_bytes: Estimated RAM for one million vectors.
        memory_100m_bytes: Estimated RAM for 100 million vectors.
        disk_1m_bytes: Originals on disk for one million vectors.
        disk_100m_bytes: Originals on disk for 100 million vectors.
        store_recall_at_k: The recall measured again through a real store collection (`store=`: the rows of
            the recommended size), else `None`.
    """

    dimensions: int
    quantization: Encoding
    rescore: bool
    oversampling: float | None
    recall_at_k: float
    bytes_per_vector: int
    ram_bytes_per_vector: int
    disk_bytes_per_vector: int
    memory_1m_bytes: int
    memory_100m_bytes: int
    disk_1m_bytes: int
    disk_100m_bytes: int
    store_recall_at_k: float | None = None

    @property
    def kind(self) -> str:
        """The encoding and rescoring, e.g. `"binary+rescore"`."""
        return f"{self.quantization}{'+rescore' if self.rescore else ''}"

    @property
    def label(self) -> str:
        """Short name, e.g. `"256 binary+rescore"`."""
        return f"{self.dimensions} {self.kind}"

    def to_dict(self) -> dict[str, Any]:
        """Returns the row as JSON-serialisable data."""
        return asdict(self)


@dataclass(frozen=True)
class Advice:
    """What `advise` measured, and the configuration it recommends.

    Attributes:
        model: The model measured.
        native_dimensions: The size the sample was embedded at (the model's native size).
        top_k: The k of recall@k.
        target_recall: The recall the recommendation must reach.
        sample_chunks: Chunks embedded as the corpus searched.
        corpus_chunks: Chunks the whole corpus gave (the sample was drawn from these; held-out ones too).
        queries: Queries searched.
        queries_from: `"given"` (the caller's queries) or `"held-out"` (derived from held-out chunks).
        rows: Every configuration, by dimensions (largest first), then encoding.
        recommendation: The configuration with the least RAM whose recall reaches `target_recall` (ties: the
            higher recall), or `None` when none does.
        ingest_flags: The `vllm-embed ingest` flags that create the recommended collection on Qdrant
            (empty for the native float32 default; `[]` too when there is no recommendation).
        milvus_flags: The same for Milvus, or `None` when Milvus has no index for it (binary).
        store: The store the rows of the recommended size were re-measured in, if any.
    """

    model: str
    native_dimensions: int
    top_k: int
    target_recall: float
    sample_chunks: int
    corpus_chunks: int
    queries: int
    queries_from: Literal["given", "held-out"]
    rows: list[AdviceRow]
    recommendation: AdviceRow | None
    ingest_flags: list[str] = field(default_factory=list)
    milvus_flags: list[str] | None = None
    store: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Returns the advice as JSON-serialisable data (`rows` are `AdviceRow.to_dict()`)."""
        data = asdict(self)
        data["recommendation"] = None if self.recommendation is None else self.recommendation.to_dict()
        return data


# -- the candidates -----------------------------------------------------------------------------------


def dimension_ladder(profile: ModelProfile | None, native: int) -> list[int]:
    """The sizes to try for a model: its allowed `DIMENSION_LADDER` sizes below `native`, then `native`.

    A model that is not Matryoshka-trained (or has no profile) gets its native size only.
    """
    if profile is None or not profile.matryoshka:
        return [native]
    low = min(profile.min_dimension, native)
    return [size for size in DIMENSION_LADDER if low <= size < native] + [native]


def _vector_bytes(dimensions: int, quantization: str) -> int:
    if quantization == "int8":
        return dimensions + INT8_EXTRA_BYTES
    if quantization == "binary":
        return math.ceil(dimensions / 8)
    return 4 * dimensions


def _row(
    dimensions: int, quantization: Encoding, rescore: bool, oversampling: float | None, recall: float
) -> AdviceRow:
    vector = _vector_bytes(dimensions, quantization)
    ram = vector + 2 * HNSW_M * 4
    disk = 0 if quantization == "float32" else 4 * dimensions
    return AdviceRow(
        dimensions=dimensions,
        quantization=quantization,
        rescore=rescore,
        oversampling=oversampling,
        recall_at_k=recall,
        bytes_per_vector=vector,
        ram_bytes_per_vector=ram,
        disk_bytes_per_vector=disk,
        memory_1m_bytes=ram * 10**6,
        memory_100m_bytes=ram * 10**8,
        disk_1m_bytes=disk * 10**6,
        disk_100m_bytes=disk * 10**8,
    )


# -- exact search -------------------------------------------------------------------------------------


def _unit(vectors: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: NDArray[np.float32] = (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)
    return unit


def _truncated(vectors: NDArray[np.float32], dimensions: int) -> NDArray[np.float32]:
    """The vectors at a Matryoshka size, as vLLM makes them: truncated, then L2-normalised."""
    return vectors if dimensions == vectors.shape[1] else _unit(vectors[:, :dimensions])


def _top(scores: NDArray[Any], k: int) -> NDArray[np.intp]:
    """Indices of the `k` highest scores of each row, highest first (deterministic for equal scores)."""
    if k >= scores.shape[1]:
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    top: NDArray[np.intp] = np.take_along_axis(part, order, axis=1)
    return top


def _by_position(scores: NDArray[np.float32]) -> NDArray[np.int64]:
    """Integer scores made unique: equal scores rank in sample order (the first point first)."""
    positions = np.arange(scores.shape[1], dtype=np.int64)
    unique: NDArray[np.int64] = np.rint(scores).astype(np.int64) * scores.shape[1] - positions
    return unique


def _int8_decoded(docs: NDArray[np.float32], queries: NDArray[np.float32]) -> tuple[NDArray[Any], ...]:
    low, high = float(docs.min()), float(docs.max())
    step = (high - low) / INT8_LEVELS or 1.0

    def decode(values: NDArray[np.float32]) -> NDArray[np.float32]:
        codes = np.clip(np.round((values - low) / step), 0, INT8_LEVELS)
        return (codes * step + low).astype(np.float32)

    return decode(docs), decode(queries)


def _signs(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """Qdrant's binary quantization as ±1: a dimension's bit is set when its value is above 0."""
    return np.where(vectors > 0, 1.0, -1.0).astype(np.float32)


def _recall(found: NDArray[np.intp], reference: NDArray[np.intp]) -> float:
    k = reference.shape[1]
    hits = sum(
        len(np.intersect1d(row, ref, assume_unique=True)) for row, ref in zip(found, reference, strict=True)
    )
    return float(hits / (k * len(reference)))


def evaluate(
    documents: NDArray[np.float32],
    queries: NDArray[np.float32],
    *,
    dimensions: Sequence[int],
    top_k: int = 10,
    oversampling: float = BINARY_OVERSAMPLING,
) -> list[AdviceRow]:
    """Measures every configuration on embedded vectors, against the native float32 exact top-k.

    Args:
        documents: The sample's vectors at the native size, one row per chunk (L2-normalised here).
        queries: The queries' vectors at the native size.
        dimensions: The sizes to measure (each at most the native size).
        top_k: The k of recall@k (at most the number of documents).
        oversampling: Candidates per hit fetched by Hamming distance before a binary rescore.

    Returns:
        One row per size and encoding: float32, int8, binary, binary with rescoring; largest size first.

    Raises:
        AdviceError: For a size outside 1..native, or `top_k` not below the number of documents.
    """
    docs, qs = _unit(np.asarray(documents)), _unit(np.asarray(queries))
    native = docs.shape[1]
    if not 0 < top_k < len(docs):
        raise AdviceError(
            f"top_k={top_k} must be at least 1 and below the {len(docs)} sampled chunks: pass a smaller "
            "top_k, or a larger corpus or sample"
        )
    if not len(qs):
        raise AdviceError("no queries to measure with: pass queries, or a corpus with more chunks")
    sizes = sorted({int(size) for size in dimensions}, reverse=True)
    if not sizes or sizes[-1] < 1 or sizes[0] > native:
        raise AdviceError(f"dimensions {list(dimensions)} must lie within 1..{native} (the native size)")
    reference = _top(qs @ docs.T, top_k)
    fetched = min(len(docs), math.ceil(oversampling * top_k))
    rows: list[AdviceRow] = []
    for size in sizes:
        d, q = _truncated(docs, size), _truncated(qs, size)
        exact = q @ d.T
        found = reference if size == native else _top(exact, top_k)
        rows.append(_row(size, "float32", False, None, _recall(found, reference)))
        d8, q8 = _int8_decoded(d, q)
        rows.append(_row(size, "int8", False, None, _recall(_top(q8 @ d8.T, top_k), reference)))
        # Sign agreement is the size minus twice the Hamming distance (exact in float32 at these sizes).
        agreement = _by_position(_signs(q) @ _signs(d).T)
        rows.append(_row(size, "binary", False, None, _recall(_top(agreement, top_k), reference)))
        candidates = _top(agreement, fetched)
        rescored = np.take_along_axis(exact, candidates, axis=1)
        order = np.argsort(-rescored, axis=1, kind="stable")[:, :top_k]
        found = np.take_along_axis(candidates, order, axis=1)
        rows.append(_row(size, "binary", True, oversampling, _recall(found, reference)))
    return rows


def recommend(rows: Iterable[AdviceRow], target_recall: float) -> AdviceRow | None:
    """The row with the least RAM whose recall reaches `target_recall`; ties go to the higher recall."""
    meeting = [row for row in rows if row.recall_at_k >= target_recall]
    if not meeting:
        return None
    # Equal RAM and recall: the rescored row, as searches of a quantized collection rescore by default.
    return min(meeting, key=lambda row: (row.ram_bytes_per_vector, -row.recall_at_k, not row.rescore))


def _flag(field_name: str, model: type[Any]) -> str:
    from vllm_embed.cli.engine_options import flag_name

    if field_name not in model.model_fields:
        raise AssertionError(f"{model.__name__} has no field {field_name!r}")  # a renamed setting
    return flag_name(field_name)


def ingest_flags(
    row: AdviceRow, native_dimensions: int, *, store: Literal["qdrant", "milvus"] = "qdrant"
) -> list[str] | None:
    """The `vllm-embed ingest` flags that create a collection storing vectors as `row` does.

    The flag names come from the settings they set (`EmbedderConfig.dimensions`, `QdrantCollectionSettings`,
    `MilvusIndexSettings`), as the CLI derives them. A quantized Qdrant collection keeps its float32
    originals on disk (`--on-disk`), as the memory estimate assumes; searches rescore by default.

    Args:
        row: The configuration.
        native_dimensions: The model's native size (no `--dimensions` flag for it).
        store: `"qdrant"` (also `--qdrant-edge`) or `"milvus"`.

    Returns:
        The flags, or `None` when the store has no such configuration (binary on Milvus).
    """
    from vllm_embed.config import EmbedderConfig

    flags = (
        []
        if row.dimensions == native_dimensions
        else [_flag("dimensions", EmbedderConfig), str(row.dimensions)]
    )
    if store == "milvus":
        index = MILVUS_INDEXES[row.quantization]
        if row.quantization != "float32" and index is None:
            return None
        return flags + ([] if index is None else [_flag("index", MilvusIndexSettings), index])
    if row.quantization != "float32":
        flags += [
            _flag("quantization", QdrantCollectionSettings),
            row.quantization,
            _flag("on_disk", QdrantCollectionSettings),
        ]
    return flags


# -- the sample ---------------------------------------------------------------------------------------


def query_from_chunk(text: str) -> str:
    """The query derived from a held-out chunk: its longest sentence, cut to `QUERY_WORDS` words.

    Sentences end at `.`, `!` or `?` followed by white space, or at a line break.
    """
    sentences = [" ".join(part.split()) for part in _SENTENCE_BREAK.split(text)]
    longest = max(sentences, key=lambda sentence: len(sentence.split()), default="")
    return " ".join(longest.split()[:QUERY_WORDS])


def _documents(source: Any, text_field: str, id_field: str | None) -> Iterable[DocumentLike]:
    from vllm_embed.ingest.loaders import load_paths

    if isinstance(source, str | Path):
        return load_paths([source], text_field, id_field)
    if isinstance(source, Sequence) and source and all(isinstance(item, Path) for item in source):
        return load_paths(list(source), text_field, id_field)
    return source  # type: ignore[no-any-return]


def _sampled_chunks(
    documents: Iterable[DocumentLike],
    chunker: Any,
    size: int,
    seed: int,
    text_field: str,
    id_field: str | None,
) -> tuple[list[ChunkText], int]:
    """A uniform sample of `size` chunks of every document (reservoir sampling), and the chunk count."""
    rng = random.Random(seed)
    reservoir: list[ChunkText] = []
    seen = 0
    for group in _groups(documents, text_field, id_field):
        for pieces in chunker.split([doc.text for doc in group], [doc.splitter for doc in group]):
            for piece in pieces:
                if seen < size:
                    reservoir.append(piece)
                else:
                    slot = rng.randrange(seen + 1)
                    if slot < size:
                        reservoir[slot] = piece
                seen += 1
    rng.shuffle(reservoir)
    return reservoir, seen


def _groups(documents: Iterable[DocumentLike], text_field: str, id_field: str | None) -> Iterator[list[Any]]:
    group = []
    for item in documents:
        group.append(as_document(item, text_field, id_field))
        if len(group) == _DOCS_PER_TOKENIZER_CALL:
            yield group
            group = []
    if group:
        yield group


def _embed_chunks(embedder: SupportsEmbedding, chunks: list[ChunkText]) -> NDArray[np.float32]:
    texts = [chunk.text for chunk in chunks]
    token_ids = [chunk.token_ids for chunk in chunks]
    if isinstance(embedder, SupportsTokenInput) and all(ids is not None for ids in token_ids):
        return np.asarray(embedder._embed_document_tokens(texts, token_ids), dtype=np.float32)  # type: ignore[arg-type]
    return np.asarray(embedder.embed_documents(texts), dtype=np.float32)


def _embed_queries(embedder: SupportsEmbedding, queries: list[str]) -> NDArray[np.float32]:
    many: Callable[[list[str]], Any] | None = getattr(embedder, "embed_queries", None)
    if many is not None:
        return np.asarray(many(queries), dtype=np.float32)
    return np.asarray([embedder.embed_query(query) for query in queries], dtype=np.float32)


# -- the store ----------------------------------------------------------------------------------------


STORE_INDEXING_THRESHOLD_KB = 1
"""`QdrantEdgeSink(indexing_threshold_kb=)` of the re-measuring collection: a sample is far below Qdrant's
default threshold, under which segments are scanned exactly; this builds the HNSW graph and the quantized
vectors as a full-size collection has them."""


def _open_store(store: str, directory: Path, row: AdviceRow) -> Sink:
    if store not in STORES:
        raise AdviceError(f"store={store!r} must be one of {STORES} (or None)")
    try:
        from vllm_embed.sinks.qdrant_edge import QdrantEdgeSink  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise AdviceError(
            f"store={store!r} needs QdrantEdgeSink, which this installation lacks ({exc})"
        ) from exc
    options: dict[str, Any] = {"indexing_threshold_kb": STORE_INDEXING_THRESHOLD_KB}
    if row.quantization != "float32":
        options |= {"quantization": row.quantization, "on_disk": True, "rescore": row.rescore}
        if row.oversampling is not None:
            options["oversampling"] = row.oversampling
    sink: Sink = QdrantEdgeSink("advise", path=str(directory), **options)
    return sink


def _measured_in_store(
    store: str,
    row: AdviceRow,
    documents: NDArray[np.float32],
    queries: NDArray[np.float32],
    top_k: int,
    model: str,
) -> float:
    with tempfile.TemporaryDirectory(prefix="vllm-embed-advise-") as directory:
        sink = _open_store(store, Path(directory), row)
        try:
            return store_recall(sink, documents, queries, row, top_k=top_k, model=model)
        finally:
            sink.close()


def store_recall(
    sink: Sink,
    documents: NDArray[np.float32],
    queries: NDArray[np.float32],
    row: AdviceRow,
    *,
    top_k: int,
    model: str = "advise",
) -> float:
    """Recall@k of `row` measured through a real collection: the documents stored in `sink`, then searched.

    Args:
        sink: An empty collection configured as `row` (quantization, rescoring).
        documents: The sample's native vectors.
        queries: The queries' native vectors.
        row: The configuration (its size is applied here).
        top_k: The k of recall@k.
        model: The model name recorded in the collection's manifest.
    """
    from vllm_embed.ingest.ids import point_id
    from vllm_embed.sinks.base import Chunk, Manifest

    docs, qs = _unit(np.asarray(documents)), _unit(np.asarray(queries))
    reference = _top(qs @ docs.T, top_k)
    d, q = _truncated(docs, row.dimensions), _truncated(qs, row.dimensions)
    sink.prepare(Manifest(model=model, dimensions=row.dimensions))
    chunks = [Chunk(point_id(f"advise-{i}", 0), f"advise-{i}", 0, "", {}) for i in range(len(d))]
    position = {chunk.id: i for i, chunk in enumerate(chunks)}
    for start in range(0, len(chunks), 1024):
        sink.upsert(chunks[start : start + 1024], d[start : start + 1024])
    optimize = getattr(sink, "optimize", None)  # an embedded engine indexes on demand (QdrantEdgeSink)
    if optimize is not None:
        optimize()
    found = np.asarray(
        [[position[hit.id] for hit in sink.search(vector, top_k)] for vector in q], dtype=np.intp
    )
    return _recall(found, reference)


# -- advise -------------------------------------------------------------------------------------------


def advise(
    source: str | Path | Sequence[Path] | Iterable[DocumentLike],
    *,
    model: str | None = None,
    embedder: SupportsEmbedding | None = None,
    config: EmbedderConfig | None = None,
    queries: Sequence[str] | None = None,
    sample: int = 2000,
    held_out: int = 200,
    target_recall: float = 0.95,
    top_k: int = 10,
    dimensions: Sequence[int] | None = None,
    store: str | None = None,
    seed: int = 0,
    chunk_tokens: int | None = None,
    chunk_overlap: int = 0,
    splitter: SplitterLike | None = None,
    text_field: str = "text",
    id_field: str | None = None,
) -> Advice:
    """Measures which vector size and quantization keep recall on a sample of your corpus.

    The sample is chunked as `ingest` chunks (same chunker, prompt and settings) and embedded once at the
    native size with the document prompt; see the module documentation for how each configuration is
    simulated and how memory is estimated.

    Without `queries`, `held_out` further sampled chunks are held out of the corpus and each gives one query:
    its longest sentence, cut to `QUERY_WORDS` words (`query_from_chunk`); a small corpus holds out at most a
    fifth of its chunks. Queries are embedded with the query prompt.

    Args:
        source: A path (file or directory, as `ingest` reads them), a list of `Path`s, or documents
            (`Document`s, strings, dicts, framework documents: strings are texts, not paths).
        model: Model to load (an `Embedder` is started and closed here); or give `embedder` or `config`.
        embedder: An `Embedder` to use (not closed); its size is the one measured as native.
        config: `EmbedderConfig` to start an Embedder with (its `dimensions` is ignored: native is measured).
        queries: Your queries, one string each; `None` derives them from held-out chunks.
        sample: Chunks to embed as the corpus (a uniform sample of all chunks, fixed by `seed`).
        held_out: Chunks held out to derive queries from, when `queries` is `None`.
        target_recall: Recall@k the recommendation must reach.
        top_k: The k of recall@k.
        dimensions: Sizes to measure instead of the profile's ladder (`dimension_ladder`).
        store: `"qdrant-edge"` to measure the rows of the recommended size again through real `QdrantEdgeSink`
            collections (in a temporary directory), configured as each row says, with the HNSW graph and
            quantized vectors built (`STORE_INDEXING_THRESHOLD_KB`): approximate search counts too.
        seed: Seed of the sampling.
        chunk_tokens: As for `ingest`.
        chunk_overlap: As for `ingest`.
        splitter: As for `ingest`.
        text_field: Key of the text in dict documents and records.
        id_field: Key of the id in dict documents and records.

    Returns:
        The measured rows, the recommendation and its `vllm-embed ingest` flags.

    Raises:
        AdviceError: For invalid settings (given before anything is embedded), too few chunks, or a size the
            model does not support.
    """
    if sum(option is not None for option in (model, embedder, config)) != 1:
        raise AdviceError("give exactly one of model=, embedder= or config=")
    if sample < 2 or held_out < 1 or top_k < 1:
        raise AdviceError(f"sample={sample}, held_out={held_out} and top_k={top_k} must be at least 2, 1, 1")
    if not 0 < target_recall <= 1:
        raise AdviceError(f"target_recall={target_recall} must be above 0 and at most 1")
    if store is not None and store not in STORES:
        raise AdviceError(f"store={store!r} must be one of {STORES} (or None)")
    if queries is not None:
        queries = [query for query in queries if query.strip()]
        if not queries:
            raise AdviceError("queries holds no query: pass at least one non-blank line")
    documents = _documents(source, text_field, id_field)
    owned = None
    if embedder is None:
        from vllm_embed.config import EmbedderConfig
        from vllm_embed.embedder import Embedder

        built = config or EmbedderConfig(model=str(model))
        built = built.model_copy(update={"dimensions": None})
        embedder = owned = Embedder(config=built)
    try:
        return _advise(
            documents,
            embedder,
            queries=queries,
            sample=sample,
            held_out=held_out,
            target_recall=target_recall,
            top_k=top_k,
            dimensions=dimensions,
            store=store,
            seed=seed,
            chunker=make_chunker(
                embedder, chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap, splitter=splitter
            ),
            text_field=text_field,
            id_field=id_field,
        )
    finally:
        if owned is not None:
            owned.close()


def _advise(
    documents: Iterable[DocumentLike],
    embedder: SupportsEmbedding,
    *,
    queries: Sequence[str] | None,
    sample: int,
    held_out: int,
    target_recall: float,
    top_k: int,
    dimensions: Sequence[int] | None,
    store: str | None,
    seed: int,
    chunker: Any,
    text_field: str,
    id_field: str | None,
) -> Advice:
    wanted = sample if queries is not None else sample + held_out
    chunks, total = _sampled_chunks(documents, chunker, wanted, seed, text_field, id_field)
    if queries is None:
        holdout = held_out if total >= wanted else min(held_out, len(chunks) // 5)
        derived = [(i, query_from_chunk(chunks[i].text)) for i in range(holdout)]
        query_texts = [text for _i, text in derived if text]
        chunks = chunks[holdout:]
    else:
        query_texts = list(queries)
    if len(chunks) <= top_k or not query_texts:
        raise AdviceError(
            f"the corpus gave {total} chunk(s): advise needs more than top_k={top_k} to search and some to "
            "hold out as queries; pass more documents, a smaller top_k, or queries="
        )
    description = embedder.describe()
    profile: ModelProfile | None = getattr(embedder, "profile", None)
    doc_vectors = _embed_chunks(embedder, chunks)
    query_vectors = _embed_queries(embedder, query_texts)
    native = int(doc_vectors.shape[1])
    model_native = (profile.native_dimension if profile is not None else None) or native
    if dimensions is None:
        sizes = dimension_ladder(profile, native)
    else:
        sizes = sorted(set(dimensions), reverse=True)
        if profile is not None:
            for size in sizes:
                try:
                    profile.check_dimensions(size, str(description.get("model")))
                except ValueError as exc:
                    raise AdviceError(str(exc)) from exc
    rows = evaluate(doc_vectors, query_vectors, dimensions=sizes, top_k=top_k)
    chosen = recommend(rows, target_recall)
    if chosen is not None and store is not None:
        # Every configuration at the recommended size: the recommendation and its alternatives.
        measured = {
            id(row): _measured_in_store(
                store, row, doc_vectors, query_vectors, top_k, str(description.get("model"))
            )
            for row in rows
            if row.dimensions == chosen.dimensions
        }
        rows = [
            AdviceRow(**{**row.to_dict(), "store_recall_at_k": measured[id(row)]})
            if id(row) in measured
            else row
            for row in rows
        ]
        chosen = next(row for row in rows if row.label == chosen.label)
    return Advice(
        model=str(description.get("model")),
        native_dimensions=native,
        top_k=top_k,
        target_recall=target_recall,
        sample_chunks=len(chunks),
        corpus_chunks=total,
        queries=len(query_texts),
        queries_from="given" if queries is not None else "held-out",
        rows=rows,
        recommendation=chosen,
        ingest_flags=[] if chosen is None else ingest_flags(chosen, model_native) or [],
        milvus_flags=None if chosen is None else ingest_flags(chosen, model_native, store="milvus"),
        store=store,
    )


def plot(advice: Advice, path: str | Path) -> Path:
    """Draws recall@k against bytes per vector (log scale), one line per encoding, with the target.

    Needs matplotlib (`pip install "vllm-embed[plot]"`); the format follows the file suffix (`.png`, `.svg`,
    `.pdf`, ...).

    Returns:
        The path written.

    Raises:
        MissingDependencyError: Without matplotlib.
    """
    from vllm_embed._optional import require

    matplotlib = require("matplotlib", "advise --plot")
    matplotlib.use("Agg")  # files only: no display needed, none opened
    pyplot = require("matplotlib.pyplot", "advise --plot")
    figure, axes = pyplot.subplots(figsize=(8, 5))
    series: dict[str, list[AdviceRow]] = {}
    for row in advice.rows:
        series.setdefault(row.kind, []).append(row)
    for name, rows in series.items():
        rows = sorted(rows, key=lambda row: row.bytes_per_vector)
        xs, ys = [row.bytes_per_vector for row in rows], [row.recall_at_k for row in rows]
        axes.plot(xs, ys, marker="o", label=name)
        for row in rows:
            axes.annotate(str(row.dimensions), (row.bytes_per_vector, row.recall_at_k), fontsize=7)
    axes.axhline(advice.target_recall, color="grey", linestyle="--", label=f"target {advice.target_recall:g}")
    if advice.recommendation is not None:
        best = advice.recommendation
        axes.scatter([best.bytes_per_vector], [best.recall_at_k], s=160, facecolors="none", edgecolors="red")
    axes.set_xscale("log")
    axes.set_xlabel("bytes per vector (searched in RAM)")
    axes.set_ylabel(f"recall@{advice.top_k} vs native float32")
    axes.set_title(f"{advice.model}: {advice.sample_chunks} chunks, {advice.queries} queries")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    target = Path(path)
    figure.savefig(target, bbox_inches="tight")
    pyplot.close(figure)
    return target
