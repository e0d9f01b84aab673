"""Learned sparse vectors from vLLM: SPLADE and BGE-M3 lexical weights.

- SPLADE (`BertSpladeSparseEmbeddingModel`): vLLM's `embed` task returns the vocabulary-sized vector
  `max over tokens of log1p(relu(MLM logits))`; its non-zero entries are the vector.
- BGE-M3 (`BgeM3EmbeddingModel`): vLLM's `token_classify` task returns `relu(sparse_linear(h))` for each token
  but the first `<s>` and last `</s>`; as FlagEmbedding's `BGEM3FlagModel` does, each vocabulary id keeps
  its max weight over its occurrences, and the cls, eos, pad and unk tokens and zero weights are dropped.

A text longer than the model accepts (under `long_input="chunk"`) keeps each term's max over its windows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from vllm_embed.backends.base import PoolingTaskName
from vllm_embed.config import SparseEmbedderConfig
from vllm_embed.token_facade import Kind, TokenEmbedderFacade, Window

SPLADE = "BertSpladeSparseEmbeddingModel"
BGE_M3 = "BgeM3EmbeddingModel"


@dataclass(frozen=True, eq=False)
class SparseVector:
    """A learned sparse vector, in the shape Qdrant and fastembed use.

    Attributes:
        indices: Vocabulary ids of the terms, sorted ascending, int64.
        values: Weight of each term, float32, all > 0.
    """

    indices: npt.NDArray[np.int64]
    values: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def dot(self, other: SparseVector) -> float:
        """The inner product with another sparse vector (the score a store computes)."""
        _, mine, theirs = np.intersect1d(self.indices, other.indices, assume_unique=True, return_indices=True)
        return float(np.dot(self.values[mine].astype(np.float64), other.values[theirs]))

    @classmethod
    def from_terms(cls, indices: Iterable[int], values: Iterable[float]) -> SparseVector:
        """A sparse vector of `(index, value)` pairs in any order (as a store reads them back)."""
        pairs = sorted(zip(indices, values, strict=True))
        return cls(
            np.asarray([int(index) for index, _ in pairs], dtype=np.int64),
            np.asarray([value for _, value in pairs], dtype=np.float32),
        )

    def to_dict(self) -> dict[int, float]:
        """`{vocabulary id: weight}`, as FlagEmbedding's `lexical_weights` (with int keys)."""
        return dict(zip(self.indices.tolist(), self.values.tolist(), strict=True))


class SparseEmbedder(TokenEmbedderFacade[SparseEmbedderConfig, SparseVector]):
    """Embeds texts as learned sparse vectors with a SPLADE or BGE-M3 model.

    Keyword arguments are the fields of `SparseEmbedderConfig`; `SparseEmbedder(config=...)` works too.
    SparseEmbedders of one model and identical engine settings share one engine. Queries and
    documents are embedded alike (neither model ships a prompt).

    Example:
        >>> with SparseEmbedder(model="naver/splade-v3", max_terms=256) as sparse:
        ...     docs = sparse.embed_documents(["vLLM is fast.", "Qdrant stores vectors."])
        ...     scores = [doc.dot(sparse.embed_query("fast engine")) for doc in docs]

    Raises:
        SettingsError: At construction, for a model of another architecture or `backend="openai"`, before
            any engine starts.
    """

    _config_type = SparseEmbedderConfig
    _example_model = "naver/splade-v3"
    _tasks: ClassVar[dict[str, PoolingTaskName]] = {SPLADE: "embed", BGE_M3: "token_classify"}

    def __init__(
        self, model: str | None = None, *, config: SparseEmbedderConfig | None = None, **kwargs: Any
    ) -> None:
        super().__init__(model, config, kwargs)
        tokenizer = self.tokenizer
        # FlagEmbedding's `_process_token_weights` drops these.
        unused = (
            tokenizer.cls_token_id,
            tokenizer.eos_token_id,
            tokenizer.pad_token_id,
            tokenizer.unk_token_id,
        )
        self._unused = np.asarray([token for token in unused if isinstance(token, int)], dtype=np.int64)
        self._bos = self._model_files.get("bos_token_id")
        self._eos = self._model_files.get("eos_token_id")

    def embed_documents(self, texts: Iterable[str]) -> list[SparseVector]:
        """Embeds documents as sparse vectors; identical texts are run once.

        Returns:
            One `SparseVector` per text (empty when no term has weight, e.g. for an empty text).

        Raises:
            TypeError: If `texts` is a bare string or holds a non-string (the message names the index).
            ValueError: If a text holds a lone surrogate, or is too long under `long_input="error"`.
            InvalidVectorError: If a weight is not finite or is negative.
        """
        return super().embed_documents(texts)

    def describe(self) -> dict[str, Any]:
        """Returns what decides the meaning of these vectors (for collection manifests)."""
        return {**super().describe(), "kind": "learned-sparse", "max_terms": self.config.max_terms}

    def _fold(self, windows: list[Window], kind: Kind, index: int) -> SparseVector:
        terms: dict[int, float] = {}
        for window in windows:
            assert window.output is not None
            ids, weights = self._terms(window, index)
            for token, weight in zip(ids.tolist(), weights.tolist(), strict=True):
                if weight > terms.get(token, 0.0):
                    terms[token] = weight
        indices = np.fromiter(terms, dtype=np.int64, count=len(terms))
        values = np.fromiter(terms.values(), dtype=np.float32, count=len(terms))
        limit = self.config.max_terms
        if limit is not None and len(indices) > limit:
            keep = np.lexsort((indices, -values))[:limit]  # highest weights, ties to the lower id
            indices, values = indices[keep], values[keep]
        order = np.argsort(indices)
        return SparseVector(indices[order], values[order])

    def _terms(self, window: Window, index: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The (vocabulary id, weight) pairs of one window's output, zero weights dropped."""
        output = window.output
        assert output is not None
        if not np.isfinite(output).all():
            raise self._bad(index, "holds a non-finite weight")
        if (output < 0).any():
            raise self._bad(index, "holds a negative weight")
        if self._task == "embed":  # SPLADE: one vocabulary-sized row
            if output.ndim != 1 or output.shape[0] < 1:
                raise self._bad(index, f"has shape {output.shape}, not one vocabulary-sized row")
            ids = np.flatnonzero(output).astype(np.int64)
            return ids, output[ids]
        # BGE-M3: one weight per token, without the first <s> and the last </s> (as vLLM's filter).
        tokens = window.ids
        start = 1 if tokens and tokens[0] == self._bos else 0
        end = len(tokens) - 1 if len(tokens) > start and tokens[-1] == self._eos else len(tokens)
        kept = np.asarray(tokens[start:end], dtype=np.int64)
        weights = output.reshape(-1)
        if weights.shape[0] != kept.shape[0]:
            raise self._bad(index, f"has {weights.shape[0]} token weights for {kept.shape[0]} tokens")
        keep = (weights > 0) & ~np.isin(kept, self._unused)
        return kept[keep], weights[keep]
