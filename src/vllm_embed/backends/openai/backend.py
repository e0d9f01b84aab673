"""The OpenAI-compatible backend: the `Backend` protocol over a server's `/embeddings` endpoint."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from vllm_embed._secrets import Redactor, split_user_info
from vllm_embed._utils import Vectors, batched, unit_rows
from vllm_embed.backends.base import EngineInput
from vllm_embed.backends.openai.decoding import decode_embeddings, response_limit
from vllm_embed.backends.openai.loop import LoopThread
from vllm_embed.backends.openai.probe import Encoding, honours_dimensions, probe
from vllm_embed.backends.openai.retries import RetryingClient
from vllm_embed.config import API_KEY_VARIABLES, EmbedderConfig, EngineSettings
from vllm_embed.profiles import ModelProfile


def resolve_api_key(config: EngineSettings) -> str | None:
    """Returns the API key from the config, else from `VLLM_EMBED_API_KEY`, else `OPENAI_API_KEY`."""
    if config.api_key is not None and config.api_key.get_secret_value():
        return config.api_key.get_secret_value()
    for variable in API_KEY_VARIABLES:
        value = os.environ.get(variable)
        if value:
            return value
    return None


def _texts(inputs: Sequence[EngineInput]) -> list[str]:
    for index, item in enumerate(inputs):
        if not isinstance(item, str):
            raise TypeError(
                f"inputs[{index}] is {type(item).__name__}: the OpenAI-compatible backend only sends text"
            )
    return [item for item in inputs if isinstance(item, str)]


class OpenAIRemoteBackend:
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
        if not config.base_url:
            raise ValueError(
                "backend='openai' needs base_url=, the server's OpenAI API root, e.g. 'http://127.0.0.1:8000/v1'"
            )
        # EmbedderConfig already moves user-info into api_key; this also covers a config built unvalidated.
        bare_url, url_secret = split_user_info(config.base_url.rstrip("/"))
        url = httpx.URL(bare_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http(s) URL such as 'http://127.0.0.1:8000/v1', got {url}")
        self.base_url = str(url)
        self.model = config.model
        self._profile = profile
        api_key = resolve_api_key(config) or url_secret
        self._redact = Redactor([api_key, url_secret])
        self._request_batch_size = config.request_batch_size
        self._encoding: Encoding = "base64"
        self._server_dimensions: bool | None = None  # whether the server honours `dimensions`
        self._client = RetryingClient(
            self.base_url,
            api_key=api_key,
            timeout=config.timeout,
            retry_seconds=config.retry_seconds,
            max_connections=config.max_concurrent_requests,
            redact=self._redact,
        )
        self._semaphore = asyncio.Semaphore(config.max_concurrent_requests)
        self._detect_lock = asyncio.Lock()
        self._loop = LoopThread("vllm-embed-http")

        self.native_dimension: int | None = None
        self.max_model_len: int | None = None
        try:
            self._loop.call(self._probe(config.dimensions))
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"OpenAIRemoteBackend(base_url={self.base_url!r}, model={self.model!r})"

    # -- Backend protocol ---------------------------------------------------------------------------

    def embed(self, inputs: Sequence[EngineInput], dimensions: int | None) -> Vectors:
        """Embeds texts on the server, blocking until done (also inside a running event loop)."""
        return self._loop.call(self._embed(_texts(inputs), dimensions))

    async def aembed(self, inputs: Sequence[EngineInput], dimensions: int | None) -> Vectors:
        """Embeds texts on the server without blocking the caller's event loop."""
        return await asyncio.wrap_future(self._loop.submit(self._embed(_texts(inputs), dimensions)))

    def close(self) -> None:
        """Cancels requests in flight, closes the connections and stops the private event-loop thread."""
        self._loop.stop(self._client.aclose)

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
        tasks = [
            asyncio.ensure_future(self._request(list(batch), sent, self._encoding, width, number * size))
            for number, batch in enumerate(batched(texts, size))
        ]
        try:
            parts = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
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
        async with self._semaphore:
            body = await self._client.post(
                "embeddings", payload, limit=response_limit(len(texts), self.native_dimension)
            )
        return decode_embeddings(
            body,
            count=len(texts),
            width=width,
            offset=offset,
            url=f"{self.base_url}/embeddings",
            redact=self._redact,
        )
