"""`POST /rerank`, `/v1/rerank` and `/v2/rerank`: vLLM's and Jina's body (`documents`) and TEI's (`texts`).

The two bodies are told apart by their fields, so vLLM, Jina, Cohere and TEI clients all reach the same
Reranker; each gets its own answer shape.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from fastapi import APIRouter, Body, Request
from pydantic import ValidationError
from starlette.responses import Response

from vllm_embed.serve.encoding import json_response
from vllm_embed.serve.errors import APIError
from vllm_embed.serve.models import RerankRequest, RerankResponse, TEIRank, TEIRerankRequest
from vllm_embed.serve.state import serve_state
from vllm_embed.serve.validation import validation_message

router = APIRouter()

_BODY_SHAPES = "send {query, documents} (vLLM, Jina, Cohere) or {query, texts} (text-embeddings-inference)"


@router.post("/rerank", responses={200: {"model": RerankResponse | list[TEIRank]}})
@router.post("/v1/rerank", responses={200: {"model": RerankResponse}})
@router.post("/v2/rerank", responses={200: {"model": RerankResponse}})
async def rerank(request: Request, body: Any = Body(...)) -> Response:  # noqa: B008 - FastAPI's idiom
    """Scores documents against a query; best first."""
    if not isinstance(body, dict) or ("documents" in body) == ("texts" in body):
        raise APIError(400, f"the rerank body has neither or both of documents and texts; {_BODY_SHAPES}")
    if "texts" in body:
        return await _tei(_parsed(TEIRerankRequest, body), request)
    return await _documents(_parsed(RerankRequest, body), request)


def _parsed(model: type[Any], body: dict[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise APIError(400, validation_message(exc.errors())) from None


async def _documents(body: RerankRequest, request: Request) -> Response:
    state = serve_state(request)
    service = state.reranking()
    service.check_model(body.model)
    texts = [item if isinstance(item, str) else item.text for item in body.documents]
    ranked = await service.score(body.query, texts, "documents")
    state.record(request.url.path, len(texts), ranked.tokens)
    order = np.argsort(-ranked.scores, kind="stable")[: body.top_n or None]
    results = [
        {
            "index": int(index),
            "relevance_score": float(ranked.scores[index]),
            **({"document": {"text": texts[index]}} if body.return_documents else {}),
        }
        for index in order
    ]
    return json_response(
        {
            "id": f"rerank-{uuid.uuid4().hex}",
            "model": service.name,
            "usage": {"total_tokens": ranked.tokens},
            "results": results,
        }
    )


async def _tei(body: TEIRerankRequest, request: Request) -> Response:
    state = serve_state(request)
    service = state.reranking()
    if body.raw_scores:
        raise APIError(
            400, "raw_scores=true is not supported: this server returns the model's activated relevance "
            "scores only; omit raw_scores", param="raw_scores",
        )  # fmt: skip
    ranked = await service.score(body.query, body.texts, "texts")
    state.record(request.url.path, len(body.texts), ranked.tokens)
    order = np.argsort(-ranked.scores, kind="stable")
    return json_response(
        [
            {
                "index": int(index),
                "score": float(ranked.scores[index]),
                **({"text": body.texts[index]} if body.return_text else {}),
            }
            for index in order
        ]
    )
