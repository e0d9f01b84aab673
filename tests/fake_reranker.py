"""`FakeReranker`: a `Reranker` without an engine, for the framework rerankers' unit tests.

It scores a document by how many of the query's words it contains, so tests know the expected order, and
records every call so they can check which API (sync or async) was used.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from vllm_embed import Reranker, RerankerConfig


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def overlap_scores(query: str, documents: Sequence[str]) -> np.ndarray:
    """The fake relevance: shared words with the query, over one more than the document's word count."""
    wanted = _words(query)
    return np.array(
        [len(wanted & _words(doc)) / (len(_words(doc)) + 1) for doc in documents], dtype=np.float32
    )


class FakeReranker(Reranker):
    """A `Reranker` that starts no engine: word-overlap scores, calls recorded in `calls`."""

    def __init__(self, model: str = "fake-reranker") -> None:  # the engine-building constructor is skipped
        self.config = RerankerConfig(model=model)
        self.calls: list[tuple[str, Any]] = []
        self.fake_closed = False

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        self.calls.append(("score", (query, list(documents))))
        return overlap_scores(query, documents)

    def rerank(
        self, query: str, documents: Sequence[str], top_k: int | None = None
    ) -> list[tuple[int, float]]:
        self.calls.append(("rerank", (query, list(documents), top_k)))
        return _ranked(overlap_scores(query, documents), top_k)

    async def ascore(self, query: str, documents: Sequence[str]) -> np.ndarray:
        self.calls.append(("ascore", (query, list(documents))))
        return overlap_scores(query, documents)

    async def arerank(
        self, query: str, documents: Sequence[str], top_k: int | None = None
    ) -> list[tuple[int, float]]:
        self.calls.append(("arerank", (query, list(documents), top_k)))
        return _ranked(overlap_scores(query, documents), top_k)

    @property
    def closed(self) -> bool:
        return self.fake_closed

    def close(self) -> None:
        self.fake_closed = True


def _ranked(scores: np.ndarray, top_k: int | None) -> list[tuple[int, float]]:
    order = sorted(range(len(scores)), key=lambda index: (-scores[index], index))
    return [(index, float(scores[index])) for index in order[:top_k]]
