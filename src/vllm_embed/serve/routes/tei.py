"""text-embeddings-inference's `POST /embed` (also at `POST /`) and `GET /info`.

huggingface_hub's client posts to the root, so TEI clients (LangChain's `HuggingFaceEndpointEmbeddings`,
Milvus's TEI function, Haystack) work unchanged. TEI's `/rerank` body is accepted by the rerank routes.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from vllm_embed._version import __version__
from vllm_embed.serve.encoding import json_response
from vllm_embed.serve.errors import APIError
from vllm_embed.serve.models import TEIEmbedRequest
from vllm_embed.serve.service import parse_inputs
from vllm_embed.serve.state import serve_state

router = APIRouter()

QUERY_PROMPT_NAMES = frozenset({"query", "search_query"})
DOCUMENT_PROMPT_NAMES = frozenset({"document", "passage", "search_document"})


@router.post("/embed", responses={200: {"model": list[list[float]]}})
@router.post("/", include_in_schema=False)
async def embed(body: TEIEmbedRequest, request: Request) -> Response:
    """Embeds texts as TEI does: a list of float lists, in order."""
    state = serve_state(request)
    service = state.embeddings
    if not body.normalize:
        raise APIError(
            400, "normalize=false is not supported: this server returns unit (L2-normalised) vectors only; "
            "omit normalize", param="normalize",
        )  # fmt: skip
    name = body.prompt_name
    if name is not None and name not in QUERY_PROMPT_NAMES | DOCUMENT_PROMPT_NAMES:
        raise APIError(
            400, f"prompt_name={name!r} is not known here; use 'query' (the model's query prompt) or "
            "'document' (or omit it)", param="prompt_name",
        )  # fmt: skip
    size = service.output_size(body.dimensions)
    texts = service.texts(parse_inputs(body.inputs, "inputs", service.max_inputs), "inputs")
    result = await service.embed(texts, "query" if name in QUERY_PROMPT_NAMES else "document", size)
    state.record(request.url.path, len(texts), result.tokens)
    return json_response(result.vectors)


@router.get("/info")
async def info(request: Request) -> Response:
    """What TEI's `/info` reports that clients read: the model, its type and the request limits."""
    state = serve_state(request)
    embedder = state.embeddings.embedder
    return json_response(
        {
            "model_id": state.embeddings.name,
            "model_dtype": embedder.config.dtype,
            "model_type": {"embedding": {"pooling": embedder.profile.pooling}},
            "max_input_length": embedder.max_model_len,
            "max_client_batch_size": state.limits.max_request_inputs,
            "max_batch_tokens": state.limits.max_queued_tokens,
            "version": f"vllm-embed {__version__}",
        }
    )
