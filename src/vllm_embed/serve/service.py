"""The work behind the routes: the Embedder, Reranker and SparseEmbedder under the token budget.

Every API family's route turns its body into a call here, so a prompt, a `dimensions` check or a limit is
written once. Texts are prompted and tokenised once on the event loop (for the usage count and the budget),
and the Embedder's async path takes those token ids: requests that wait together become one engine batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vllm_embed._utils import Vectors, unit_rows
from vllm_embed.errors import InvalidVectorError, SettingsError
from vllm_embed.facade import text_list
from vllm_embed.rerank_profiles import QWEN3_RERANKER_PREFIX, QWEN3_RERANKER_SUFFIX
from vllm_embed.serve.errors import APIError
from vllm_embed.serve.limits import TokenBudget
from vllm_embed.serve.models import InputType

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from vllm_embed.embedder import Embedder
    from vllm_embed.learned_sparse import SparseEmbedder, SparseVector
    from vllm_embed.reranker import Reranker, Scores

_CHARS_PER_TOKEN = 4
"""Token estimate for a model without a local tokenizer (a proxied remote model)."""


@dataclass(frozen=True)
class Embedded:
    """Vectors for a request's texts, in order, and the input tokens they took."""

    vectors: Vectors
    tokens: int


def parse_inputs(value: Any, field: str, max_inputs: int) -> list[str] | list[list[int]]:
    """Reads OpenAI's `input` (or TEI's `inputs`): a text, texts, token ids, or lists of token ids.

    Raises:
        APIError: 400 naming the field and the shapes accepted; 413 past `max_inputs`.
    """
    shapes = "a string, a list of strings, a list of token ids, or a list of token-id lists"
    items: list[Any]
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise APIError(400, f"{field} must be {shapes} (non-empty)", param=field)
    items = [value] if all(_is_token(item) for item in value) else value
    if len(items) > max_inputs:
        raise APIError(
            413,
            f"{field} holds {len(items)} inputs, more than the server takes per request "
            f"(--max-request-inputs {max_inputs}); split it into several requests",
            param=field,
        )
    strings = isinstance(items[0], str)
    for index, item in enumerate(items):
        if strings and isinstance(item, str):
            continue
        if not strings and isinstance(item, list) and item and all(_is_token(token) for token in item):
            continue
        first = "a string" if strings else "a list of token ids"
        raise APIError(
            400, f"{field}[{index}] is not {first} as {field}[0] is; {field} must be {shapes}, not a mix",
            param=field,
        )  # fmt: skip
    if strings:
        return list(items)
    return [list(item) for item in items]


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _ModelService:
    """What every service shares: the facade, the served name, the token budget, the per-request bound."""

    _role = "embeds"  # what the server does with the model, in the 404 for another model

    def __init__(
        self, facade: Embedder | Reranker | SparseEmbedder, name: str, budget: TokenBudget, max_inputs: int
    ) -> None:
        self.facade = facade
        self.tokenizer: PreTrainedTokenizerBase | None = facade.tokenizer
        """The model's tokenizer (`None` for a proxied remote model)."""
        self.name = name
        self.budget = budget
        self.max_inputs = max_inputs

    def check_model(self, model: str | None) -> None:
        """Refuses a request for another model than the one served.

        Raises:
            APIError: 404 naming the served model.
        """
        if model is not None and model != self.name:
            raise APIError(
                404, f"the model {model!r} does not exist here; this server {self._role} with {self.name!r}",
                param="model",
            )  # fmt: skip

    def texts(self, inputs: list[str] | list[list[int]], field: str) -> list[str]:
        """Checks texts, or decodes token ids with the model's tokenizer (then embedded as text).

        Raises:
            APIError: 400 for a lone surrogate, a token id outside the vocabulary, or token ids without a
                local tokenizer.
        """
        if not inputs or isinstance(inputs[0], str):
            try:
                return text_list(inputs, "embed", name=field)  # type: ignore[arg-type]
            except (TypeError, ValueError) as exc:
                raise APIError(400, str(exc), param=field) from None
        tokenizer = self.tokenizer
        if tokenizer is None:
            raise APIError(
                400, f"token-id {field} needs the model's tokenizer, which this server lacks; send text"
            )
        vocabulary = len(tokenizer)
        for index, ids in enumerate(inputs):
            assert isinstance(ids, list)
            bad = next((token for token in ids if not 0 <= token < vocabulary), None)
            if bad is not None:
                raise APIError(
                    400, f"{field}[{index}] holds token id {bad}, outside {self.name}'s vocabulary "
                    f"(0..{vocabulary - 1}); token ids must come from this model's tokenizer", param=field,
                )  # fmt: skip
        return [str(text) for text in tokenizer.batch_decode(inputs)]

    def count(self, texts: list[str], special: int) -> tuple[list[list[int]] | None, int]:
        """Each text's token ids (`None` without a tokenizer) and the input tokens the request takes.

        Args:
            texts: The texts as the engine gets them (prompts applied).
            special: Special tokens the model adds to each text.
        """
        tokenizer = self.tokenizer
        if tokenizer is None:
            return None, sum(len(text) // _CHARS_PER_TOKEN + 1 for text in texts)
        ids: list[list[int]] = tokenizer(texts, add_special_tokens=False)["input_ids"]
        return ids, sum(len(each) for each in ids) + special * len(ids)


class EmbeddingService(_ModelService):
    """The embedding model behind `/v1/embeddings`, `/v2/embed` and TEI's `/embed`.

    Args:
        embedder: The started Embedder (its own `dimensions` unset: requests choose theirs).
        name: The served model name.
        budget: The token budget shared by every route.
        max_inputs: Most texts per request.
    """

    def __init__(self, embedder: Embedder, name: str, budget: TokenBudget, max_inputs: int) -> None:
        super().__init__(embedder, name, budget, max_inputs)
        self.embedder = embedder
        self._special = len(embedder._prefix) + len(embedder._suffix)

    def output_size(self, dimensions: int | None, param: str = "dimensions") -> int | None:
        """The size a request asks for, checked against the model (`None`: the native size).

        Raises:
            APIError: 400 with the reason (not Matryoshka-trained, or outside its range).
        """
        native = self.embedder.dimension
        if dimensions is None or dimensions == native:
            return None
        profile = self.embedder.profile
        if not profile.matryoshka:
            raise APIError(
                400,
                f"{param}={dimensions} is not supported for {self.name}: the model is not trained for "
                f"Matryoshka dimensions (profile {profile.family!r}), so its only size is {native}; omit "
                f"{param}",
                param=param,
            )
        try:
            profile.check_dimensions(dimensions, self.name)
        except SettingsError as exc:
            raise APIError(
                400, f"{str(exc).replace('dimensions=', f'{param}=')}; pick one", param=param
            ) from None
        return dimensions

    async def embed(self, texts: list[str], kind: InputType, dimensions: int | None) -> Embedded:
        """Embeds texts with the prompt of `kind` under the token budget; `dimensions` is checked already.

        Raises:
            APIError: 413 or 429 from the budget; 400 for a text too long under `--long-input error`.
        """
        embedder = self.embedder
        if kind == "query":
            prompted = [embedder.format_query(text) for text in texts]
        else:
            prompted = [embedder.format_document(text) for text in texts]
        ids, tokens = self.count(prompted, self._special)
        with self.budget.admit(tokens):
            try:
                vectors = await embedder._arun(prompted, ids)
            except InvalidVectorError as exc:
                raise APIError(500, str(exc)) from None
            except ValueError as exc:  # a text over the model's limit under --long-input error
                raise APIError(400, str(exc)) from None
        if dimensions is not None:
            vectors = unit_rows(vectors[:, :dimensions])  # Matryoshka: the leading dimensions, re-normalised
        return Embedded(vectors, tokens)


@dataclass(frozen=True)
class Ranked:
    """Scores of a request's documents, in input order, and the input tokens they took."""

    scores: Scores
    tokens: int


class RerankService(_ModelService):
    """The rerank model behind `/rerank`, `/v1/rerank` and `/v2/rerank`.

    Args:
        reranker: The started Reranker.
        name: The served model name.
        budget: The token budget shared by every route.
        max_inputs: Most documents per request.
    """

    _role = "reranks"

    def __init__(self, reranker: Reranker, name: str, budget: TokenBudget, max_inputs: int) -> None:
        super().__init__(reranker, name, budget, max_inputs)
        self.reranker = reranker

    async def score(self, query: str, documents: list[str], field: str) -> Ranked:
        """Scores documents against `query` under the token budget.

        Raises:
            APIError: 413 past `max_inputs` or the budget, 429 from the budget, 400 for bad text.
        """
        if len(documents) > self.max_inputs:
            raise APIError(
                413,
                f"{field} holds {len(documents)} documents, more than the server takes per request "
                f"(--max-request-inputs {self.max_inputs}); split it into several requests",
                param=field,
            )
        tokenizer = self.tokenizer
        if tokenizer is not None and documents:
            lengths = [
                len(ids) for ids in tokenizer([query, *documents], add_special_tokens=False)["input_ids"]
            ]
            tokens = lengths[0] * len(documents) + sum(lengths[1:])
        else:
            tokens = (len(query) * len(documents) + sum(map(len, documents))) // _CHARS_PER_TOKEN + 1
        with self.budget.admit(tokens):
            try:
                scores = await self._score(query, documents)
            except InvalidVectorError as exc:
                raise APIError(500, str(exc)) from None
            except (TypeError, ValueError) as exc:
                raise APIError(400, str(exc), param=field) from None
        return Ranked(scores, tokens)

    async def _score(self, query: str, documents: list[str]) -> Scores:
        """`Reranker.ascore`, without a second template for texts a remote `Reranker` wrapped in it.

        Our remote backend wraps a templated family's texts itself (vLLM's server applies no template).
        """
        reranker = self.reranker
        if (
            reranker.profile.templated
            and query.startswith(QWEN3_RERANKER_PREFIX)
            and all(document.endswith(QWEN3_RERANKER_SUFFIX) for document in documents)
        ):
            inner = [document.removesuffix(QWEN3_RERANKER_SUFFIX) for document in documents]
            return await reranker._ascore_formatted(query.removeprefix(QWEN3_RERANKER_PREFIX), inner)
        return await reranker.ascore(query, documents)


@dataclass(frozen=True)
class SparseEmbedded:
    """Sparse vectors of a request's texts, in order, and the input tokens they took."""

    vectors: list[SparseVector]
    tokens: int


class SparseService(_ModelService):
    """The learned sparse model (SPLADE, BGE-M3) behind TEI's `/embed_sparse`.

    Its arguments are `EmbeddingService`'s, `embedder` being a started SparseEmbedder.
    """

    _role = "embeds sparse vectors"

    def __init__(self, embedder: SparseEmbedder, name: str, budget: TokenBudget, max_inputs: int) -> None:
        super().__init__(embedder, name, budget, max_inputs)
        self.embedder = embedder
        self._special = len(embedder._prefix) + len(embedder._suffix)

    async def embed(self, texts: list[str], kind: InputType) -> SparseEmbedded:
        """Embeds texts as sparse vectors (with the model's query marker for `query`) under the token budget.

        Raises:
            APIError: 413 or 429 from the budget; 400 for a text too long under `--long-input error`.
        """
        _, tokens = self.count(texts, self._special)
        with self.budget.admit(tokens):
            try:
                if kind == "query":
                    vectors = await self.embedder.aembed_queries(texts)
                else:
                    vectors = await self.embedder.aembed_documents(texts)
            except InvalidVectorError as exc:
                raise APIError(500, str(exc)) from None
            except ValueError as exc:  # a text over the model's limit under --long-input error
                raise APIError(400, str(exc)) from None
        return SparseEmbedded(vectors, tokens)
