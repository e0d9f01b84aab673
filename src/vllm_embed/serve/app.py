"""The app factory: every API family's routes over one Embedder (and a Reranker, a SparseEmbedder).

Around them: the body limit, the API-key check and the metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vllm_embed._optional import require

require("fastapi", "vllm-embed serve")

import fastapi  # noqa: E402 - after the install hint
from fastapi.exceptions import RequestValidationError  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402

from vllm_embed._version import __version__  # noqa: E402
from vllm_embed.serve.auth import APIKeyCheck  # noqa: E402
from vllm_embed.serve.encoding import json_response  # noqa: E402
from vllm_embed.serve.errors import APIError, error_body, error_response  # noqa: E402
from vllm_embed.serve.limits import BodyLimit, TokenBudget  # noqa: E402
from vllm_embed.serve.metrics import MetricsMiddleware, ServeMetrics  # noqa: E402
from vllm_embed.serve.routes import cohere, openai, rerank, tei  # noqa: E402
from vllm_embed.serve.service import EmbeddingService, RerankService, SparseService  # noqa: E402
from vllm_embed.serve.settings import ServeLimits  # noqa: E402
from vllm_embed.serve.state import ServeState, serve_state  # noqa: E402
from vllm_embed.serve.validation import validation_message  # noqa: E402

if TYPE_CHECKING:
    from vllm_embed.embedder import Embedder
    from vllm_embed.learned_sparse import SparseEmbedder
    from vllm_embed.reranker import Reranker


def create_app(
    embedder: Embedder,
    reranker: Reranker | None = None,
    *,
    sparse: SparseEmbedder | None = None,
    served_model_name: str | None = None,
    api_key: str | None = None,
    limits: ServeLimits | None = None,
) -> fastapi.FastAPI:
    """Builds the ASGI app that serves `embedder` (`reranker`, `sparse`) over the OpenAI, TEI and Cohere APIs.

    The facades are used as they are: start their engines first (the `serve` command does) and close them
    after the app stops.

    Args:
        embedder: The embedding model; its `dimensions` should be unset (requests choose theirs).
        reranker: The rerank model behind `/rerank`, if any (served under its model name).
        sparse: The learned sparse model behind TEI's `/embed_sparse`, if any (served under its model name).
        served_model_name: The name clients pass as `model`; defaults to the Embedder's model.
        api_key: When given, every route but `/health` and `/metrics` needs `Authorization: Bearer <key>`.
        limits: Request size limits and the queued-token bound.

    Returns:
        A FastAPI application.
    """
    limits = limits or ServeLimits()
    budget = TokenBudget(limits.max_queued_tokens)
    name = served_model_name or embedder.config.model
    embeddings = EmbeddingService(embedder, name, budget, limits.max_request_inputs)
    reranking = (
        None
        if reranker is None
        else RerankService(reranker, reranker.config.model, budget, limits.max_request_inputs)
    )
    sparsing = (
        None
        if sparse is None
        else SparseService(sparse, sparse.config.model, budget, limits.max_request_inputs)
    )
    app = fastapi.FastAPI(title="vllm-embed", version=__version__)
    for family in (openai, cohere, tei, rerank):
        app.include_router(family.router)
    routes = {getattr(route, "path", "") for route in app.routes} - {""}
    metrics = ServeMetrics(routes, lambda: embedder.cache_stats)
    metrics.queued_tokens.set_function(lambda: budget.queued)
    app.state.serve = ServeState(embeddings, reranking, metrics, limits, sparsing)

    @app.get("/health")
    async def health(request: Request) -> Response:
        """200 while the engines are open; 503 once they are closed."""
        if any(service.facade.closed for service in serve_state(request).services()):
            raise APIError(503, "the engine is stopped; restart the server")
        return Response(status_code=200)

    @app.get("/metrics")
    async def metrics_route(request: Request) -> Response:
        """Prometheus metrics."""
        body, media_type = serve_state(request).metrics.render()
        return Response(body, media_type=media_type)

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> Response:
        return error_response(exc)  # type: ignore[no-any-return]

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return json_response(error_body(400, validation_message(exc.errors())), 400)

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Any) -> Response:
        message = f"no route {request.url.path}; see /docs for the routes this server serves"
        return json_response(error_body(404, message), 404)

    @app.exception_handler(405)
    async def wrong_method(request: Request, exc: Any) -> Response:
        message = f"{request.method} is not allowed on {request.url.path}; see /docs for the methods"
        return json_response(error_body(405, message), 405)

    app.add_middleware(BodyLimit, limits=limits)
    if api_key:
        app.add_middleware(APIKeyCheck, api_key=api_key)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: it also counts 401 and 413
    return app
