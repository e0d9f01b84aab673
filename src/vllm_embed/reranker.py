"""The `Reranker` facade: validation → the model's pair layout → document-side truncation → scores."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from vllm_embed._utils import batched
from vllm_embed.backends.base import PairTokens, TextScorer, TokenScorer
from vllm_embed.config import RerankerConfig
from vllm_embed.errors import InvalidVectorError
from vllm_embed.facade import EngineFacade, check_text, load_tokenizer, text_list
from vllm_embed.rerank_profiles import (
    QWEN3_RERANKER_PREFIX,
    QWEN3_RERANKER_SUFFIX,
    RerankerProfile,
    detect_reranker_profile,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

Scores = npt.NDArray[np.float32]


def _create_scorer(config: RerankerConfig, profile: RerankerProfile) -> TokenScorer | TextScorer:
    if config.backend == "openai":
        from vllm_embed.backends.openai.rerank import OpenAIRemoteScorer

        return OpenAIRemoteScorer(config)
    from vllm_embed.backends.vllm_local import VLLMLocalScorer

    return VLLMLocalScorer(config, profile)


@dataclass(frozen=True)
class _PairLayout:
    """Token ids around the query and the document, and where the document's segment starts.

    A pair is `before + query + between + document + after`; `segment_offset` is the position of the
    second segment's first token counted from the start of `between` (`None`: no token type ids).
    """

    before: list[int]
    between: list[int]
    after: list[int]
    segment_offset: int | None

    @property
    def fixed(self) -> int:
        return len(self.before) + len(self.between) + len(self.after)

    def assemble(self, query: list[int], document: list[int]) -> PairTokens:
        ids = [*self.before, *query, *self.between, *document, *self.after]
        start = None if self.segment_offset is None else len(self.before) + len(query) + self.segment_offset
        return PairTokens(ids, start)


def _pair_layout(tokenizer: PreTrainedTokenizerBase, profile: RerankerProfile) -> _PairLayout:
    """Works out the layout from the template (Qwen3) or from how the tokenizer encodes a text pair."""
    if profile.templated:
        encode = tokenizer.encode
        return _PairLayout(
            encode(QWEN3_RERANKER_PREFIX, add_special_tokens=False),
            [],
            encode(QWEN3_RERANKER_SUFFIX, add_special_tokens=False),
            None,
        )
    first = tokenizer("hello", add_special_tokens=False)["input_ids"]
    second = tokenizer("world", add_special_tokens=False)["input_ids"]
    pair = tokenizer("hello", "world", return_token_type_ids=True)
    ids: list[int] = pair["input_ids"]
    for start in range(len(ids) - len(first) + 1):
        if ids[start : start + len(first)] != first:
            continue
        rest = start + len(first)
        for middle in range(rest, len(ids) - len(second) + 1):
            if ids[middle : middle + len(second)] == second:
                types: list[int] = list(pair.get("token_type_ids") or [])
                offset = next((i - rest for i, t in enumerate(types) if t == 1), None) if 1 in types else None
                return _PairLayout(ids[:start], ids[rest:middle], ids[middle + len(second) :], offset)
    raise ValueError("cannot find how this tokenizer lays out a text pair; is the model a cross-encoder?")


class Reranker(EngineFacade[RerankerConfig]):
    """Scores how relevant documents are to a query, with a Qwen3-Reranker or a cross-encoder on vLLM.

    Keyword arguments are the fields of `RerankerConfig`; `Reranker(config=RerankerConfig(...))` works too.
    Rerankers with identical engine settings in one process share one engine. Use it as a context manager,
    or call `close()`, to release the engine.

    Example:
        >>> with Reranker(model="Qwen/Qwen3-Reranker-0.6B") as rr:
        ...     ranked = rr.rerank("Which engine is fast?", ["vLLM is fast.", "Qdrant stores vectors."])

    Raises:
        ValueError: At construction, if the model is not a reranker vllm-embed recognises.
    """

    _config_type = RerankerConfig
    _example_model = "Qwen/Qwen3-Reranker-0.6B"

    def __init__(
        self, model: str | None = None, *, config: RerankerConfig | None = None, **kwargs: Any
    ) -> None:
        super().__init__(model, config, kwargs)
        config = self.config
        self.profile: RerankerProfile = detect_reranker_profile(config.model, config.revision, config.profile)
        if config.instruction is not None:
            self.profile.query_text("", config.instruction)  # a cross-encoder refuses it here, not on use
        self.tokenizer: PreTrainedTokenizerBase | None = load_tokenizer(config)
        self._layout = _pair_layout(self.tokenizer, self.profile) if self.tokenizer is not None else None
        self._scorer: TokenScorer | TextScorer = _create_scorer(config, self.profile)
        self._finalizer = weakref.finalize(self, self._scorer.close)
        self.max_model_len: int | None = self._scorer.max_model_len or self.profile.max_length

    # -- public API ---------------------------------------------------------------------------------

    def score(self, query: str, documents: Iterable[str]) -> Scores:
        """Scores each document's relevance to `query` (higher is more relevant).

        Qwen3-Reranker scores are P("yes") in [0, 1]; cross-encoder scores are the sigmoid of the logit,
        as sentence-transformers' `CrossEncoder.predict` returns them.

        Args:
            query: The search text.
            documents: The candidates; identical documents are scored once.

        Returns:
            Array of shape `(len(documents),)`, float32, in the documents' order.

        Raises:
            TypeError: If `query` is not a string, `documents` is a bare string, or holds a non-string (the
                message names the index).
            ValueError: If a pair is too long under `long_input="error"` (the message names the index).
        """
        work = self._work(query, documents, "score")
        if work.empty:
            return np.zeros(len(work.inverse), dtype=np.float32)
        scorer = self._live_scorer()
        if isinstance(scorer, TokenScorer):
            parts = [scorer.score_tokens(batch) for batch in batched(work.pairs, self.config.batch_size)]
        else:
            parts = [scorer.score_texts(work.query_text, work.texts)]
        return work.result(parts)

    async def ascore(self, query: str, documents: Iterable[str]) -> Scores:
        """Async `score`: concurrent calls share the engine's batching."""
        return await self._ascore_work(self._work(query, documents, "ascore"))

    async def _ascore_formatted(self, query_text: str, texts: list[str]) -> Scores:
        """Internal: `ascore` for a query and documents the profile has formatted already.

        The server gets them so from a remote `Reranker`, which sends a templated family's texts in their
        final form.
        """
        return await self._ascore_work(self._work(query_text, texts, "ascore", formatted=True))

    async def _ascore_work(self, work: _Work) -> Scores:
        if work.empty:
            return np.zeros(len(work.inverse), dtype=np.float32)
        scorer = self._live_scorer()
        if isinstance(scorer, TokenScorer):
            parts = [await scorer.ascore_tokens(b) for b in batched(work.pairs, self.config.batch_size)]
        else:
            parts = [await scorer.ascore_texts(work.query_text, work.texts)]
        return work.result(parts)

    def rerank(
        self, query: str, documents: Iterable[str], top_k: int | None = None
    ) -> list[tuple[int, float]]:
        """Ranks documents by relevance to `query`.

        Args:
            query: The search text.
            documents: The candidates.
            top_k: How many to return; `None` returns all.

        Returns:
            `(index, score)` pairs, best first; ties keep the documents' order.

        Raises:
            TypeError: As for `score`.
            ValueError: As for `score`, or if `top_k < 1`.
        """
        _check_top_k(top_k)
        return _ranked(self.score(query, documents), top_k)

    async def arerank(
        self, query: str, documents: Iterable[str], top_k: int | None = None
    ) -> list[tuple[int, float]]:
        """Async `rerank`."""
        _check_top_k(top_k)
        return _ranked(await self.ascore(query, documents), top_k)

    def describe(self) -> dict[str, Any]:
        """Returns what decides the meaning of this Reranker's scores."""
        return {"model": self.config.model, "revision": self.config.revision, "profile": self.profile.family}

    # -- internals ----------------------------------------------------------------------------------

    def _repr_fields(self) -> dict[str, object]:
        return {"model": self.config.model, "profile": self.profile.family}

    def _live_scorer(self) -> TokenScorer | TextScorer:
        self._check_open()
        return self._scorer

    def _work(self, query: str, documents: Iterable[str], method: str, *, formatted: bool = False) -> _Work:
        check_text(query, "query")
        items = text_list(documents, method, name="documents", noun="documents", call="query, [document]")
        unique = list(dict.fromkeys(items))
        positions = {document: row for row, document in enumerate(unique)}
        inverse = np.asarray([positions[document] for document in items], dtype=np.intp)
        if formatted:
            query_text, texts = query, unique
        else:
            query_text = self.profile.query_text(query, self.config.instruction)
            texts = [self.profile.document_text(document) for document in unique]
        first = {row: index for index, row in reversed(list(enumerate(inverse.tolist())))}
        work = _Work(inverse=inverse, empty=not unique)
        if not unique:
            return work
        if self.tokenizer is None or self._layout is None or self.max_model_len is None:
            work.query_text, work.texts = self._remote_texts(query_text, texts)
            return work
        query_ids, document_ids = self._fitted(query_text, texts, first)
        if isinstance(self._scorer, TokenScorer):
            pairs = [self._layout.assemble(query_ids, ids) for ids in document_ids]
            work.order = np.asarray(sorted(range(len(pairs)), key=lambda i: len(pairs[i].ids)), dtype=np.intp)
            work.pairs = [pairs[i] for i in work.order]
        else:
            decode = self.tokenizer.decode
            cut = [
                text if len(ids) == len(full) else str(decode(ids))
                for text, ids, full in zip(texts, document_ids, self._encode(texts), strict=True)
            ]
            query_cut = (
                query_text if len(query_ids) == len(self._encode([query_text])[0]) else decode(query_ids)
            )
            work.query_text, work.texts = self._remote_texts(str(query_cut), cut)
        return work

    def _encode(self, texts: list[str]) -> list[list[int]]:
        assert self.tokenizer is not None
        encoded: list[list[int]] = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return encoded

    def _fitted(
        self, query_text: str, texts: list[str], first: dict[int, int]
    ) -> tuple[list[int], list[list[int]]]:
        """Token ids of the query and documents, documents cut to what the window leaves them."""
        assert self._layout is not None and self.max_model_len is not None
        query_ids = self._encode([query_text])[0]
        available = self.max_model_len - self._layout.fixed
        if len(query_ids) >= available:
            keep = max(available // 2, 1)
            logger.warning(
                "the query is %d tokens long, more than %s accepts with any document (%d); "
                "it is cut to %d tokens so that documents keep room",
                len(query_ids),
                self.config.model,
                available,
                keep,
            )
            query_ids = query_ids[:keep]
        room = available - len(query_ids)
        documents = self._encode(texts)
        for row, ids in enumerate(documents):
            if len(ids) <= room:
                continue
            if self.config.long_input == "error":
                raise ValueError(
                    f"documents[{first[row]}] is {len(ids)} tokens long but {self.config.model} leaves it "
                    f"{room} beside this query; shorten or split it, or pass long_input='truncate' "
                    "(cuts the document, never the query)"
                )
            documents[row] = ids[:room]
        return query_ids, documents

    def _remote_texts(self, query_text: str, texts: list[str]) -> tuple[str, list[str]]:
        """The query and documents as a `/rerank` server takes them: templated families carry the template."""
        if not self.profile.templated:
            return query_text, texts
        return QWEN3_RERANKER_PREFIX + query_text, [text + QWEN3_RERANKER_SUFFIX for text in texts]


@dataclass
class _Work:
    """One scoring call: the unique documents' engine inputs and how their scores fold back."""

    inverse: npt.NDArray[np.intp]
    empty: bool
    pairs: list[PairTokens] = field(default_factory=list)
    order: npt.NDArray[np.intp] | None = None
    query_text: str = ""
    texts: list[str] = field(default_factory=list)

    def result(self, parts: Sequence[Scores]) -> Scores:
        """The scores in the documents' order, as float32.

        Raises:
            InvalidVectorError: If a score is not a finite float32 number (NaN, infinite, or beyond
                float32's range), naming the document; no score of the call is returned.
        """
        scores = np.concatenate(parts).astype(np.float64)
        if self.order is not None:
            unsorted = np.empty_like(scores)
            unsorted[self.order] = scores
            scores = unsorted
        wide = scores[self.inverse]
        with np.errstate(over="ignore"):
            result: Scores = wide.astype(np.float32)
        bad = np.flatnonzero(~np.isfinite(result))
        if bad.size:
            raise InvalidVectorError(
                f"the reranker's score of documents[{bad[0]}] is not a finite float32 number "
                f"({wide[bad[0]]!r}); no score of this call was returned (check the model and its dtype)"
            )
        return result


def _check_top_k(top_k: int | None) -> None:
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k={top_k!r} must be a positive integer or None")


def _ranked(scores: Scores, top_k: int | None) -> list[tuple[int, float]]:
    order = np.argsort(-scores, kind="stable")[:top_k]
    return [(int(index), float(scores[index])) for index in order]
