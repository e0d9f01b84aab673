"""What `advise` returns: each measured configuration (`AdviceRow`), the `Advice`, and the settings of a row.

Data only: the command line (`vllm_embed.cli.advise`) turns the settings into `vllm-embed ingest` flags.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from pydantic import BaseModel

from vllm_embed.config import EmbedderConfig
from vllm_embed.errors import VllmEmbedError
from vllm_embed.sinks.storage import MilvusIndexSettings, QdrantCollectionSettings

Encoding = Literal["float32", "int8", "binary"]
"""How a configuration keeps the vectors it searches: float32, Qdrant's int8 scalar or binary quantization."""

ENCODINGS: tuple[str, ...] = get_args(Encoding)

HNSW_M = 16
"""Edges per node of the HNSW graph assumed by the memory estimate (Qdrant's default)."""

INT8_EXTRA_BYTES = 4
"""The float Qdrant keeps beside each int8-quantized vector (its score correction)."""

MILVUS_INDEXES: dict[str, str | None] = {"float32": None, "int8": "IVF_SQ8", "binary": None}
"""The Milvus index type of each encoding (`None`: the default index; Milvus has no binary quantization of a
float vector field, so a binary row has no Milvus flags)."""


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
        embedder_settings: The `Embedder` settings that make the recommended vectors (`embedder_settings`;
            `{}` for the native size, and when there is no recommendation).
        qdrant_settings: The `QdrantSink` / `QdrantEdgeSink` settings that store them (`store_settings`).
        milvus_settings: The same for `MilvusSink`, or `None` when Milvus has no index for it (binary).
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
    embedder_settings: dict[str, Any] = field(default_factory=dict)
    qdrant_settings: dict[str, Any] = field(default_factory=dict)
    milvus_settings: dict[str, Any] | None = None
    store: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Returns the advice as JSON-serialisable data (`rows` are `AdviceRow.to_dict()`)."""
        data = asdict(self)
        data["recommendation"] = None if self.recommendation is None else self.recommendation.to_dict()
        return data


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


def recommend(rows: Iterable[AdviceRow], target_recall: float) -> AdviceRow | None:
    """The row with the least RAM whose recall reaches `target_recall`; ties go to the higher recall."""
    meeting = [row for row in rows if row.recall_at_k >= target_recall]
    if not meeting:
        return None
    # Equal RAM and recall: the rescored row, as searches of a quantized collection rescore by default.
    return min(meeting, key=lambda row: (row.ram_bytes_per_vector, -row.recall_at_k, not row.rescore))


def _setting(name: str, model: type[BaseModel]) -> str:
    if name not in model.model_fields:
        raise AssertionError(f"{model.__name__} has no field {name!r}")  # a renamed setting
    return name


def embedder_settings(row: AdviceRow, native_dimensions: int) -> dict[str, Any]:
    """The `Embedder` settings that make the vectors of `row`: `dimensions`, unless it is the native size.

    Args:
        row: The configuration.
        native_dimensions: The model's native size.
    """
    if row.dimensions == native_dimensions:
        return {}
    return {_setting("dimensions", EmbedderConfig): row.dimensions}


def store_settings(row: AdviceRow, store: Literal["qdrant", "milvus"] = "qdrant") -> dict[str, Any] | None:
    """The store settings that keep vectors as `row` does, named as the sinks' arguments take them.

    Qdrant's are `QdrantCollectionSettings` fields (a quantized collection keeps its float32 originals on
    disk, as the memory estimate assumes; searches rescore by default), Milvus's `MilvusIndexSettings` ones.

    Args:
        row: The configuration.
        store: `"qdrant"` (also `QdrantEdgeSink`) or `"milvus"`.

    Returns:
        The settings (`{}`: the store's defaults), or `None` when the store has no such configuration
        (binary on Milvus).
    """
    if store == "milvus":
        index = MILVUS_INDEXES[row.quantization]
        if row.quantization != "float32" and index is None:
            return None
        return {} if index is None else {_setting("index", MilvusIndexSettings): index}
    if row.quantization == "float32":
        return {}
    return {
        _setting("quantization", QdrantCollectionSettings): row.quantization,
        _setting("on_disk", QdrantCollectionSettings): True,
    }
