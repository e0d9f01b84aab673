"""Cohere's `POST /v2/embed` (texts; float or base64 embeddings)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from vllm_embed.serve.encoding import base64_rows, json_response
from vllm_embed.serve.models import CohereEmbedRequest, InputType
from vllm_embed.serve.service import parse_inputs
from vllm_embed.serve.state import serve_state

router = APIRouter()


@router.post("/v2/embed")
async def embed(body: CohereEmbedRequest, request: Request) -> Response:
    """Embeds texts as Cohere's v2 API does: `search_query` with the query prompt, others as documents."""
    state = serve_state(request)
    service = state.embeddings
    service.check_model(body.model)
    size = service.output_size(body.output_dimension, "output_dimension")
    texts = service.texts(parse_inputs(body.texts, "texts", service.max_inputs), "texts")
    kind: InputType = "query" if body.input_type == "search_query" else "document"
    result = await service.embed(texts, kind, size)
    state.record(request.url.path, len(texts), result.tokens)
    embeddings: dict[str, Any] = {}
    for kind_name in dict.fromkeys(body.embedding_types):
        embeddings[kind_name] = base64_rows(result.vectors) if kind_name == "base64" else result.vectors
    return json_response(
        {
            "id": str(uuid.uuid4()),
            "embeddings": embeddings,
            "texts": texts,
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": result.tokens}},
            "response_type": "embeddings_by_type",
        }
    )
