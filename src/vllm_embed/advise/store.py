"""The recommended size measured again through real store collections (`advise(store="qdrant-edge")`)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from vllm_embed.advise.measure import _recall, _top, _truncated, _unit
from vllm_embed.advise.result import AdviceError, AdviceRow

if TYPE_CHECKING:
    from vllm_embed.sinks.base import Sink

STORES: tuple[str, ...] = ("qdrant-edge",)
"""Stores `advise(store=...)` can re-measure the recommendation in."""

STORE_INDEXING_THRESHOLD_KB = 1
"""`QdrantEdgeSink(indexing_threshold_kb=)` of the re-measuring collection: a sample is far below Qdrant's
default threshold, under which segments are scanned exactly; this builds the HNSW graph and the quantized
vectors as a full-size collection has them."""


def _open_store(store: str, directory: Path, row: AdviceRow) -> Sink:
    if store not in STORES:
        raise AdviceError(f"store={store!r} must be one of {STORES} (or None)")
    try:
        from vllm_embed.sinks.qdrant import QdrantEdgeSink  # type: ignore[import-not-found,unused-ignore]
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
    sink.optimize()  # an embedded engine indexes on demand (QdrantEdgeSink)
    found = np.asarray(
        [[position[hit.id] for hit in sink.search(vector, top_k)] for vector in q], dtype=np.intp
    )
    return _recall(found, reference)
