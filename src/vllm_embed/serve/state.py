"""What every route reads from the app: the services, the metrics, the limits."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from starlette.requests import Request

from vllm_embed.serve.errors import APIError
from vllm_embed.serve.metrics import ServeMetrics
from vllm_embed.serve.service import EmbeddingService, RerankService, SparseService
from vllm_embed.serve.settings import ServeLimits


@dataclass
class ServeState:
    """The app's services and metrics (`app.state.serve`)."""

    embeddings: EmbeddingService
    rerank: RerankService | None
    metrics: ServeMetrics
    limits: ServeLimits
    sparse: SparseService | None = None
    created: int = field(default_factory=lambda: int(time.time()))

    def record(self, path: str, inputs: int, tokens: int) -> None:
        """Counts a request's texts and tokens under its route."""
        route = self.metrics.route(path)
        self.metrics.inputs.labels(route).observe(inputs)
        self.metrics.tokens.labels(route).inc(tokens)

    def reranking(self) -> RerankService:
        """The rerank service.

        Raises:
            APIError: 404 when the server was started without `--rerank-model`.
        """
        if self.rerank is None:
            raise APIError(
                404, "this server has no rerank model; start it with --rerank-model (a Qwen3-Reranker or a "
                "cross-encoder) to serve /rerank",
            )  # fmt: skip
        return self.rerank

    def sparse_embedding(self) -> SparseService:
        """The sparse embedding service.

        Raises:
            APIError: 424, as TEI answers for a model without sparse output, when the server was started
                without `--sparse-model`.
        """
        if self.sparse is None:
            raise APIError(
                424, "this server has no sparse model; start it with --sparse-model (a SPLADE or BGE-M3 "
                "model) to serve /embed_sparse",
            )  # fmt: skip
        return self.sparse

    def services(self) -> list[EmbeddingService | RerankService | SparseService]:
        """Every model service the server runs."""
        return [self.embeddings, *(s for s in (self.rerank, self.sparse) if s is not None)]


def serve_state(request: Request) -> ServeState:
    """The `ServeState` of the app that received `request`."""
    state: ServeState = request.app.state.serve
    return state
