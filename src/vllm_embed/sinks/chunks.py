"""What flows through a sink: chunks to store, hits found."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document, ready to be embedded and stored.

    Attributes:
        id: Deterministic point id (UUID string) derived from `doc_id` and `chunk_index`.
        doc_id: Id of the source document.
        chunk_index: Position of this chunk in its document, from 0.
        text: The chunk's text.
        metadata: The source document's metadata.
    """

    id: str
    doc_id: str
    chunk_index: int
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result.

    Attributes:
        id: Point id.
        doc_id: Id of the source document.
        chunk_index: Position of the chunk in its document.
        score: Higher is closer: the cosine similarity with the query in dense search, the BM25 score in
            sparse search, the fused score in hybrid search (`sinks.fusion`).
        text: The stored chunk text.
        metadata: The source document's metadata.
        found_by: The retrievals that found the hit: `"dense"`, `"sparse"` or both.
        rerank_score: The reranker's score when the search reranked its hits (they are then ordered by it,
            and `score` stays the first-stage similarity); `None` otherwise.
    """

    id: str
    doc_id: str
    chunk_index: int
    score: float
    text: str
    metadata: dict[str, Any]
    found_by: tuple[str, ...] = ()
    rerank_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Returns the hit as a JSON-serialisable dict (`rerank_score` only when the hits were reranked)."""
        fields = {**asdict(self), "found_by": list(self.found_by)}
        if self.rerank_score is None:
            del fields["rerank_score"]
        return fields
