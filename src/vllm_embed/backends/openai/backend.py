"""The OpenAI-compatible backend: the `Backend` protocol over a server's `/embeddings` endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np

from vllm_embed._utils import Vectors, batched, unit_rows
from vllm_embed.backends.base import EngineInput
from vllm_embed.backends.openai.client import RemoteClient, gather_all
from vllm_embed.backends.openai.decoding import decode_embeddings, response_limit
from vllm_embed.backends.openai.probe import Encoding, honours_dimensions, probe
from vllm_embed.config import EmbedderConfig
from vllm_embed.profiles import ModelProfile


def _texts(inputs: Sequence[EngineInput]) -> list[str]:
    for index, item in enumerate(inputs):
        if not isinstance(item, str):
            raise TypeError(
                f"inputs[{index}] is {type(item).__name__}: the OpenAI-compatible backend only sends text"
            )
    return [item for item in inputs if isinstance(item, str)]


class OpenAIRemoteBackend(RemoteClient):
    """Embeds through an OpenAI-compatible `/embeddings` endpoint (vLLM, SGLang, TEI).

    Construction probes the server once (one short text, and `/models` for `max_model_len`), so a wrong URL,
    model name or API key fails here rather than on first use. Every vector is checked (finite, the
    expected length, non-zero norm) and every answer's `index` values must be the request's positions.

    Args:
        config: The embedder configuration (`model` is the served model name, `base_url` the API root).
        profile: The model profile (decides whether `dimensions` may be applied client-side).

    Raises:
        ValueError: If `base_url` is missing or not http(s), or the server rejects the probe
            (`RemoteRequestError`).
        RemoteEmbeddingError: If the server cannot be reached within `retry_seconds`.
        InvalidVectorError: If the server's probe vector is unusable (e.g. empty).
    """

    accepts_token_ids = False

    def __init__(self, config: EmbedderConfig, profile: ModelProfile) -> None:
        super().__init__(config, config.model, thread="vllm-embed-http")
        self._profile = profile
        self._encoding: Encoding = "base64"
        self._server_dimensions: bool | None = None  # whether the server honours `dimensions`
        self._detect_lock = asyncio.Lock()
        self.native_dimension: int | None = None
        self.max_model_len: int | None = None
        self._connect(self._probe(config.dimensions))

    # -- Backend protocol ---------------------------------------------------------------------------

    def embed(self, inputs: Sequence[EngineInput], dimensions: int | None) -> Vectors:
        """Embeds texts on the server, blocking until done (also inside a running event loop)."""
        return self._call(self._embed(_texts(inputs), dimensions))

    async def aembed(self, inputs: Sequence[EngineInput], dimensions: int | None) -> Vectors:
        """Embeds texts on the server without blocking the caller's event loop."""
        return await self._acall(self._embed(_texts(inputs), dimensions))

    # -- requests -----------------------------------------------------------------------------------

    async def _probe(self, dimensions: int | None) -> None:
        facts = await probe(self._client, self.model, self._request)
        self._encoding = facts.encoding
        self.native_dimension = facts.native_dimension
        self.max_model_len = facts.max_model_len
        if dimensions is not None and dimensions < self.native_dimension:
            await self._detect_dimensions(dimensions)

    async def _detect_dimensions(self, dimensions: int) -> None:
        async with self._detect_lock:
            if self._server_dimensions is None:
                self._server_dimensions = await honours_dimensions(
                    self._client, self.model, self._profile, dimensions, self._request, self._encoding
                )

    async def _embed(self, texts: list[str], dimensions: int | None) -> Vectors:
        if dimensions is not None and self._server_dimensions is None:
            await self._detect_dimensions(dimensions)
        sent = dimensions if self._server_dimensions else None
        width = sent or self.native_dimension
        size = self._request_batch_size
        parts = await gather_all(
            self._request(list(batch), sent, self._encoding, width, number * size)
            for number, batch in enumerate(batched(texts, size))
        )
        vectors = (
            np.concatenate(parts) if parts else np.zeros((0, dimensions or width or 0), dtype=np.float32)
        )
        if dimensions is not None and vectors.shape[1] > dimensions:
            vectors = unit_rows(vectors[:, :dimensions])  # Matryoshka: keep the leading dimensions
        return vectors

    async def _request(
        self,
        texts: list[str],
        dimensions: int | None,
        encoding: Encoding,
        width: int | None = None,
        offset: int = 0,
    ) -> Vectors:
        """One POST of `texts`; `width` is the vector length the answer must have, when known."""
        payload: dict[str, Any] = {"model": self.model, "input": texts, "encoding_format": encoding}
        if dimensions is not None:
            payload["dimensions"] = dimensions
        limit = response_limit(len(texts), self.native_dimension)
        body = await self._post("embeddings", payload, limit=limit)
        return decode_embeddings(
            body,
            count=len(texts),
            width=width,
            offset=offset,
            url=f"{self.base_url}/embeddings",
            redact=self._redact,
        )
