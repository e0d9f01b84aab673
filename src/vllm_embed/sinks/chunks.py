"""What flows through a sink: chunks to store, hits found."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from vllm_embed.learned_sparse import SparseVector

MultiVector: TypeAlias = npt.NDArray[np.float32]
"""One text's token vectors: float32, shape `(tokens, dim)`, unit rows."""

SparseQuery: TypeAlias = "str | SparseVector"
"""A sparse search's query: the text (BM25), or a learned model's `SparseVector`."""


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
        maxsim_score: The late-interaction (MaxSim) score of the query's and the chunk's token vectors,
            when the search ran that stage (the hits are then ordered by it, before any reranker); `None`
            otherwise.
    """

    id: str
    doc_id: str
    chunk_index: int
    score: float
    text: str
    metadata: dict[str, Any]
    found_by: tuple[str, ...] = ()
    rerank_score: float | None = None
    maxsim_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Returns the hit as a JSON-serialisable dict (`rerank_score` and `maxsim_score` only when set)."""
        fields = {**asdict(self), "found_by": list(self.found_by)}
        for name in ("rerank_score", "maxsim_score"):
            if fields[name] is None:
                del fields[name]
        return fields
