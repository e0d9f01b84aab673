"""Former home of the OpenAI-compatible backend, kept so existing imports work: see `backends.openai`."""

from vllm_embed.backends.openai import (
    OpenAIRemoteBackend,
    RemoteEmbeddingError,
    RemoteRequestError,
    resolve_api_key,
)
from vllm_embed.config import API_KEY_VARIABLES

__all__ = [
    "API_KEY_VARIABLES",
    "OpenAIRemoteBackend",
    "RemoteEmbeddingError",
    "RemoteRequestError",
    "resolve_api_key",
]
