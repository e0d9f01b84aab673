"""`vllm-embed serve`: the OpenAI, TEI and Cohere embedding APIs and vLLM's rerank API over the facades.

One HTTP server over an `Embedder` (and a `Reranker`).

Needs FastAPI, uvicorn and prometheus_client (vLLM depends on all three; otherwise
`pip install "vllm-embed[serve]"`); they are imported when the app is built, so the CLI's `--help` works
without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vllm_embed.serve.settings import ServeLimits

if TYPE_CHECKING:
    from vllm_embed.serve.app import create_app

__all__ = ["ServeLimits", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from vllm_embed.serve.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
