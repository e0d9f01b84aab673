"""OpenAI-compatible HTTP backend: the same `Embedder` against `vllm serve`, SGLang or TEI servers.

The `Embedder` applies prompts, deduplication, the long-input policy (when the model's tokenizer is available
locally) and normalisation exactly as in-process; this backend only posts texts to `/embeddings`.

One connection set-up (`client`) serves `/embeddings` (`backend`) and `/rerank` (`rerank`): a private
event-loop thread (`loop`) owns one HTTP client (`retries`). Sync and async callers both hand it
coroutines, so a sync call also works while an event loop runs in the caller's thread, the requests of one
call run concurrently, and `max_concurrent_requests` bounds what this backend has in flight at once. The
server is probed once at construction (`probe`); every answer is checked before use (`decoding`).
"""

from vllm_embed.backends.openai.backend import OpenAIRemoteBackend
from vllm_embed.backends.openai.client import resolve_api_key
from vllm_embed.backends.openai.errors import RemoteEmbeddingError, RemoteRequestError

__all__ = ["OpenAIRemoteBackend", "RemoteEmbeddingError", "RemoteRequestError", "resolve_api_key"]
