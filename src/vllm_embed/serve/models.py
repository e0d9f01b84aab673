"""Request and response bodies of every API family, declared once (pydantic).

Requests refuse unknown fields (a misspelt `dimensons` is an error naming it, not silently ignored); the few
fields clients send that change nothing here are accepted and documented as such. Responses are declared
for the OpenAPI schema; the routes write them directly as JSON (vectors are most of a response).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

InputType = Literal["query", "document"]
TextsOrTokens = str | list[str] | list[int] | list[list[int]]
"""A text, texts, one text's token ids, or several texts' token ids (OpenAI's `input`, TEI's `inputs`)."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


# -- OpenAI ------------------------------------------------------------------------------------------------


class EmbeddingRequest(_Request):
    """`POST /v1/embeddings` (OpenAI), with `input_type` as Cohere and Voyage name it."""

    input: Any
    """A string, a list of strings, a list of token ids, or a list of token-id lists."""
    model: str | None = None
    """The served model name; omitted: the server's embedding model."""
    encoding_format: Literal["float", "base64"] = "float"
    """`float` lists, or `base64` of little-endian float32 bytes."""
    dimensions: int | None = Field(default=None, ge=1)
    """Output size; below the native size only for Matryoshka-trained models."""
    input_type: InputType = "document"
    """`query` applies the model's query prompt or instruction, `document` its document prompt."""
    user: str | None = None
    """Accepted for OpenAI compatibility; unused."""


class EmbeddingData(BaseModel):
    """One vector of an embeddings response."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    """Input tokens counted (the prompts and special tokens included)."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    """The answer of `POST /v1/embeddings`."""

    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: Usage


# -- Cohere ------------------------------------------------------------------------------------------------

EmbeddingType = Literal["float", "base64"]
CohereInputType = Literal["search_document", "search_query", "classification", "clustering"]


class CohereEmbedRequest(_Request):
    """`POST /v2/embed` (Cohere v2): texts only, float or base64 embeddings."""

    texts: list[str]
    """The texts to embed."""
    model: str | None = None
    """The served model name; omitted: the server's embedding model."""
    input_type: CohereInputType = "search_document"
    """`search_query` applies the query prompt; the other types the document prompt."""
    embedding_types: list[EmbeddingType] = Field(default_factory=lambda: list[EmbeddingType](["float"]))
    """Which encodings to return (`float`, `base64`)."""
    output_dimension: int | None = Field(default=None, ge=1)
    """Output size; below the native size only for Matryoshka-trained models."""
    truncate: Literal["NONE", "START", "END"] | None = None
    """Accepted for compatibility; the server's `--long-input` policy decides."""


# -- TEI ---------------------------------------------------------------------------------------------------


class TEIEmbedRequest(_Request):
    """`POST /embed` (text-embeddings-inference)."""

    inputs: Any
    """A string, a list of strings, or token ids."""
    normalize: bool = True
    """Only `true`: the server returns unit vectors."""
    prompt_name: str | None = None
    """`query` applies the query prompt; omitted or `document`/`passage`, the document prompt."""
    dimensions: int | None = Field(default=None, ge=1)
    """Output size; below the native size only for Matryoshka-trained models."""
    truncate: bool | None = None
    """Accepted for compatibility; the server's `--long-input` policy decides."""
    truncation_direction: Literal["Left", "Right", "left", "right"] | None = None
    """Accepted for compatibility; the server's `--long-input` policy decides."""
    encoding_format: Literal["float"] | None = None
    """Accepted for compatibility (float only)."""


class TEIEmbedSparseRequest(_Request):
    """`POST /embed_sparse` (text-embeddings-inference)."""

    inputs: Any
    """A string, a list of strings, or token ids."""
    prompt_name: str | None = None
    """`query` applies the model's query marker, if it ships one; `document`, `passage` or omitted: none."""
    truncate: bool | None = None
    """Accepted for compatibility; the server's `--long-input` policy decides."""
    truncation_direction: Literal["Left", "Right", "left", "right"] | None = None
    """Accepted for compatibility; the server's `--long-input` policy decides."""


class TEISparseValue(BaseModel):
    """One term of a TEI sparse vector (`/embed_sparse` answers a list of these per input)."""

    index: int
    """The term's vocabulary id."""
    value: float


class TEIRerankRequest(_Request):
    """TEI's `POST /rerank` body (`texts`), told apart from vLLM's (`documents`) by its fields."""

    query: str
    texts: list[str]
    raw_scores: bool = False
    """Only `false`: scores are the model's activated relevance (P(yes), or the sigmoid of the logit)."""
    return_text: bool = False
    truncate: bool | None = None
    """Accepted for compatibility; the server's `--long-input` policy decides."""
    truncation_direction: Literal["Left", "Right", "left", "right"] | None = None


class TEIRank(BaseModel):
    """One entry of TEI's rerank answer (a list, best first)."""

    index: int
    score: float
    text: str | None = None


# -- vLLM / Jina / Cohere rerank ---------------------------------------------------------------------------


class RerankDocument(BaseModel):
    """A document given as an object (Jina, Cohere)."""

    model_config = ConfigDict(extra="forbid")
    text: str


class RerankRequest(_Request):
    """`POST /rerank`, `/v1/rerank`, `/v2/rerank` in the shape vLLM, Jina and Cohere serve."""

    query: str
    documents: list[str | RerankDocument]
    model: str | None = None
    """The served rerank model name; omitted: the server's rerank model."""
    top_n: int | None = Field(default=None, ge=0)
    """How many results, best first; omitted (or 0): all."""
    return_documents: bool = True
    """Whether each result carries its document's text."""


class RerankResult(BaseModel):
    """One result of a rerank answer, best first."""

    index: int
    relevance_score: float
    document: RerankDocument | None = None


class RerankUsage(BaseModel):
    """Input tokens of the query and documents."""

    total_tokens: int


class RerankResponse(BaseModel):
    """The answer of `POST /rerank` for a `documents` body."""

    id: str
    model: str
    usage: RerankUsage
    results: list[RerankResult]


# -- models ------------------------------------------------------------------------------------------------


class ModelCard(BaseModel):
    """One entry of `GET /v1/models`."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "vllm-embed"
    max_model_len: int | None = None
    """Longest input in tokens, special tokens included (vLLM reports it too)."""
    task: Literal["embed", "rerank"]


class ModelList(BaseModel):
    """The answer of `GET /v1/models`."""

    object: Literal["list"] = "list"
    data: list[ModelCard]
