"""Probing a server once at construction: vector size, base64 support, `max_model_len`, `dimensions`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from vllm_embed._utils import Vectors
from vllm_embed.backends.openai.errors import RemoteRequestError
from vllm_embed.backends.openai.retries import RetryingClient
from vllm_embed.errors import InvalidVectorError
from vllm_embed.profiles import ModelProfile

logger = logging.getLogger(__name__)

Encoding = Literal["base64", "float"]
ProbeRequest = Callable[[list[str], int | None, Encoding], Awaitable[Vectors]]
"""Embeds texts with the given `dimensions` and encoding, without checking the vector size."""

PROBE_TEXT = "a"
MODELS_LISTING_BYTES = 4 << 20
"""The most of a `/models` listing that is read."""


@dataclass(frozen=True)
class ServerFacts:
    """What the probe learnt about the server."""

    encoding: Encoding
    native_dimension: int
    max_model_len: int | None


async def probe(client: RetryingClient, model: str, request: ProbeRequest) -> ServerFacts:
    """Embeds one short text (base64 first, float lists if refused) and reads `/models`.

    Raises:
        RemoteRequestError: If the server rejects the probe (unknown model, wrong API key).
        InvalidVectorError: If the probe's vector is unusable (e.g. empty: not an embedding model).
    """
    encoding: Encoding = "base64"
    try:
        try:
            vectors = await request([PROBE_TEXT], None, encoding)
        except RemoteRequestError as exc:
            if exc.status == 404:
                raise await _explain_not_found(client, model, exc) from None
            if exc.status in (401, 403):
                raise
            encoding = "float"  # TEI's and SGLang's OpenAI routes may not accept base64
            vectors = await request([PROBE_TEXT], None, encoding)
            logger.info("%s does not accept base64 embeddings; using float lists", client.base_url)
    except InvalidVectorError as exc:
        raise InvalidVectorError(
            f"{client.base_url} cannot serve embeddings for {model!r}: its answer to a one-text probe is "
            f"unusable ({exc}); check that the server runs an embedding (pooling) model"
        ) from None
    return ServerFacts(encoding, int(vectors.shape[1]), await _served_max_model_len(client, model))


async def honours_dimensions(
    client: RetryingClient,
    model: str,
    profile: ModelProfile,
    dimensions: int,
    request: ProbeRequest,
    encoding: Encoding,
) -> bool:
    """Asks the server for `dimensions` once; without support, only Matryoshka models may truncate locally.

    Raises:
        ValueError: If the server ignores `dimensions` and the profile is not Matryoshka.
    """
    reason = "it returned a different size"
    try:
        vectors = await request([PROBE_TEXT], dimensions, encoding)
        supported = int(vectors.shape[1]) == dimensions
    except RemoteRequestError as exc:
        supported, reason = False, exc.server_message
    if not supported:
        if not profile.matryoshka:
            raise ValueError(
                f"the server at {client.base_url} does not honour dimensions={dimensions} for "
                f"{model} ({reason}), and the {profile.family!r} profile is not "
                "Matryoshka, so it cannot be reduced client-side; pass dimensions=None, or "
                "profile=... with matryoshka=True if the model is"
            )
        logger.info("%s does not honour dimensions (%s); truncating client-side", client.base_url, reason)
    return supported


async def _served_models(client: RetryingClient) -> list[dict[str, Any]]:
    """The `/models` listing, or nothing when the server has none (TEI) or it fails: it is only a hint."""
    body = await client.get_json("models", limit=MODELS_LISTING_BYTES)
    data = body.get("data") if isinstance(body, dict) else None
    return [entry for entry in data if isinstance(entry, dict)] if isinstance(data, list) else []


async def _served_max_model_len(client: RetryingClient, model: str) -> int | None:
    for entry in await _served_models(client):
        if entry.get("id") == model and isinstance(entry.get("max_model_len"), int):
            return int(entry["max_model_len"])
    return None


async def _explain_not_found(
    client: RetryingClient, model: str, exc: RemoteRequestError
) -> RemoteRequestError:
    served = [str(entry.get("id")) for entry in await _served_models(client)]
    if served:
        hint = f"it serves {served[:20]}; pass one of them as model="
    else:
        hint = f"check that {client.base_url} is the OpenAI API root (usually ending in /v1)"
    return RemoteRequestError(
        client.redact(f"{exc} ({model!r} not found: {hint})"),
        url=exc.url,
        status=exc.status,
        server_message=exc.server_message,
    )
