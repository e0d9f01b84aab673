"""text-embeddings-inference's `POST /embed` (also at `POST /`), `POST /embed_sparse` and `GET /info`.

huggingface_hub's client posts to the root, so TEI clients (LangChain's `HuggingFaceEndpointEmbeddings`,
Milvus's TEI function, Haystack) work unchanged. TEI's `/rerank` body is accepted by the rerank routes.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from vllm_embed._version import __version__
from vllm_embed.learned_sparse import SparseVector
from vllm_embed.serve.encoding import json_response
from vllm_embed.serve.errors import APIError
from vllm_embed.serve.models import InputType, TEIEmbedRequest, TEIEmbedSparseRequest, TEISparseValue
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
    kind = _input_type(body.prompt_name)
    size = service.output_size(body.dimensions)
    texts = service.texts(parse_inputs(body.inputs, "inputs", service.max_inputs), "inputs")
    result = await service.embed(texts, kind, size)
    state.record(request.url.path, len(texts), result.tokens)
    return json_response(result.vectors)


@router.post("/embed_sparse", responses={200: {"model": list[list[TEISparseValue]]}})
async def embed_sparse(body: TEIEmbedSparseRequest, request: Request) -> Response:
    """Embeds texts as learned sparse vectors (`--sparse-model`), as TEI does.

    Per input, its non-zero terms as `{"index": vocabulary id, "value": weight}`, ids ascending.
    """
    state = serve_state(request)
    service = state.sparse_embedding()
    kind = _input_type(body.prompt_name)
    texts = service.texts(parse_inputs(body.inputs, "inputs", service.max_inputs), "inputs")
    result = await service.embed(texts, kind)
    state.record(request.url.path, len(texts), result.tokens)
    return json_response([_terms(vector) for vector in result.vectors])


def _terms(vector: SparseVector) -> list[dict[str, int | float]]:
    pairs = zip(vector.indices.tolist(), vector.values.tolist(), strict=True)
    return [{"index": index, "value": value} for index, value in pairs]


def _input_type(prompt_name: str | None) -> InputType:
    """TEI's `prompt_name` as the prompt applied: `query`, or `document` when omitted.

    Raises:
        APIError: 400 for another name.
    """
    if prompt_name is not None and prompt_name not in QUERY_PROMPT_NAMES | DOCUMENT_PROMPT_NAMES:
        raise APIError(
            400, f"prompt_name={prompt_name!r} is not known here; use 'query' (the model's query prompt) or "
            "'document' (or omit it)", param="prompt_name",
        )  # fmt: skip
    return "query" if prompt_name in QUERY_PROMPT_NAMES else "document"


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
