"""The `/rerank` side of the OpenAI-compatible backend: vLLM's Jina/Cohere-shaped reranking endpoint.

Shares the embedding backend's HTTP set-up (`RemoteClient`: retries, timeouts, size caps, the key kept out of
messages, the private event loop), so a reranking server fails, retries and hides its key exactly as an
embedding server does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from vllm_embed._secrets import Redactor
from vllm_embed._utils import batched
from vllm_embed.backends.openai.client import RemoteClient, gather_all
from vllm_embed.backends.openai.decoding import (
    BYTES_PER_ITEM,
    BYTES_PER_RESPONSE,
    answer_items,
    malformed_answer,
)
from vllm_embed.backends.openai.probe import _served_max_model_len
from vllm_embed.config import RerankerConfig

Scores = npt.NDArray[np.float32]

_FLOAT32_MAX = float(np.finfo(np.float32).max)


class OpenAIRemoteScorer(RemoteClient):
    """Scores documents against a query through a vLLM-compatible `/rerank` endpoint (Jina/Cohere shape).

    Construction sends one short pair, so a wrong URL, model name or API key fails here rather than on first
    use. Every answer's `index` values must be the request's positions and every score a finite number.

    Args:
        config: The reranker configuration (`model` is the served model name, `base_url` the API root).

    Raises:
        ValueError: If `base_url` is missing or not http(s), or the server rejects the probe
            (`RemoteRequestError`).
        RemoteEmbeddingError: If the server cannot be reached within `retry_seconds`, or answers malformed.
    """

    def __init__(self, config: RerankerConfig) -> None:
        super().__init__(config, config.model, thread="vllm-embed-rerank-http")
        self.max_model_len: int | None = None
        self._connect(self._probe())

    def score_texts(self, query: str, documents: Sequence[str]) -> Scores:
        """Scores documents on the server, blocking until done (also inside a running event loop)."""
        return self._call(self._score(query, list(documents)))

    async def ascore_texts(self, query: str, documents: Sequence[str]) -> Scores:
        """Scores documents on the server without blocking the caller's event loop."""
        return await self._acall(self._score(query, list(documents)))

    async def _probe(self) -> None:
        await self._request("a", ["a"])
        self.max_model_len = await _served_max_model_len(self._client, self.model)

    async def _score(self, query: str, documents: list[str]) -> Scores:
        parts = await gather_all(
            self._request(query, list(batch)) for batch in batched(documents, self._request_batch_size)
        )
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    async def _request(self, query: str, documents: list[str]) -> Scores:
        payload: dict[str, Any] = {
            "model": self.model,
            "query": query,
            "documents": documents,
            "top_n": len(documents),
            "return_documents": False,
        }
        body = await self._post("rerank", payload, limit=BYTES_PER_RESPONSE + len(documents) * BYTES_PER_ITEM)
        return decode_rerank(body, len(documents), f"{self.base_url}/rerank", self._redact)


def decode_rerank(body: bytes, count: int, url: str, redact: Redactor) -> Scores:
    """Reads a `/rerank` answer (`results: [{index, relevance_score}]`) into scores in input order.

    Raises:
        RemoteEmbeddingError: If the body is malformed, misses or repeats an index, or a score is not a
            finite number.
    """
    malformed = malformed_answer(url, redact, "the server is not a vLLM-compatible /rerank")
    results = answer_items(body, "results", count, malformed, noun="results", of="documents")
    scores = np.full(count, np.nan, dtype=np.float64)
    for item in results:
        index = item.get("index") if isinstance(item, dict) else None
        score = item.get("relevance_score") if isinstance(item, dict) else None
        if type(index) is not int or not 0 <= index < count or not math.isnan(scores[index]):
            raise malformed(f"the result indexes are not the positions 0..{count - 1}, each once")
        problem = _score_problem(score)
        if problem is not None:
            raise malformed(f"the score of documents[{index}] is {problem}")
        scores[index] = score
    return scores.astype(np.float32)


def _score_problem(score: Any) -> str | None:
    """What makes `score` unusable as a float32 score (`None` when it is usable); the text follows "is"."""
    if isinstance(score, bool) or not isinstance(score, int | float):
        return f"{score!r}, not a finite number"
    if isinstance(score, float) and not math.isfinite(score):
        return f"{score!r}, not a finite number"
    if (isinstance(score, int) and score.bit_length() > 128) or abs(float(score)) > _FLOAT32_MAX:
        shown = repr(score)
        if len(shown) > 24:
            shown = f"{shown[:4]}…{shown[-1]} ({len(shown)} digits)"
        return f"{shown}, beyond float32's range (±{_FLOAT32_MAX:.3g})"
    return None
