"""OpenAI's `POST /v1/embeddings` and `GET /v1/models`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from vllm_embed.serve.encoding import base64_rows, json_response
from vllm_embed.serve.models import EmbeddingRequest, EmbeddingResponse, ModelCard, ModelList
from vllm_embed.serve.service import parse_inputs
from vllm_embed.serve.state import serve_state

router = APIRouter()


@router.post("/v1/embeddings", responses={200: {"model": EmbeddingResponse}})
async def embeddings(body: EmbeddingRequest, request: Request) -> Response:
    """Embeds texts (or token ids, decoded with the model's tokenizer) as OpenAI's API does."""
    state = serve_state(request)
    service = state.embeddings
    service.check_model(body.model)
    size = service.output_size(body.dimensions)
    texts = service.texts(parse_inputs(body.input, "input", service.max_inputs), "input")
    result = await service.embed(texts, body.input_type, size)
    state.record(request.url.path, len(texts), result.tokens)
    rows: Any = base64_rows(result.vectors) if body.encoding_format == "base64" else result.vectors
    return json_response(
        {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)],
            "model": service.name,
            "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens},
        }
    )


@router.get("/v1/models", responses={200: {"model": ModelList}})
async def models(request: Request) -> Response:
    """Lists the served models: the embedding model and, when served, the rerank model."""
    state = serve_state(request)
    cards = [
        ModelCard(
            id=state.embeddings.name,
            created=state.created,
            max_model_len=state.embeddings.embedder.max_model_len,
            task="embed",
        )
    ]
    if state.rerank is not None:
        cards.append(
            ModelCard(
                id=state.rerank.name,
                created=state.created,
                max_model_len=state.rerank.reranker.max_model_len,
                task="rerank",
            )
        )
    return json_response(ModelList(data=cards).model_dump())
