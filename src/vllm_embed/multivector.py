"""Multi-vector (late-interaction) embeddings from vLLM: ColBERT models and BGE-M3's ColBERT vectors.

vLLM's `token_embed` task returns one projected, L2-normalised vector per token: every token for the ColBERT
architectures, every token but the first `<s>` for BGE-M3 (as FlagEmbedding's `colbert_vecs`).

What the model's own files ask for is applied on top, and nothing else (a model that ships none gets exactly
vLLM's rows):

- PyLate's `config_sentence_transformers.json`: `query_prefix` / `document_prefix` are put before the text
  (after `[CLS]`), `skiplist_words` drops those tokens' rows from documents, and `do_query_expansion` pads a
  query with mask tokens up to `query_length` when `attend_to_expansion_tokens` is true.
- Stanford ColBERT's `artifact.metadata`: `query_token_id` / `doc_token_id` markers, `mask_punctuation`
  (punctuation rows dropped from documents) and `[MASK]` padding to `query_maxlen` when
  `attend_to_mask_tokens` is true.

Query padding whose tokens the model must not attend to (the default of both formats) cannot be reproduced
by vLLM, which attends to every token: such queries are left unpadded (`describe()` says so).
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from vllm_embed.backends.base import PoolingTaskName
from vllm_embed.config import MultiVectorEmbedderConfig
from vllm_embed.profiles import read_model_file
from vllm_embed.sinks.chunks import MultiVector as MultiVector
from vllm_embed.token_facade import Kind, TokenEmbedderFacade, Window


class MultiVectorEmbedder(TokenEmbedderFacade[MultiVectorEmbedderConfig, MultiVector]):
    """Embeds texts as one unit vector per token, for late interaction (MaxSim) with ColBERT or BGE-M3.

    Keyword arguments are the fields of `MultiVectorEmbedderConfig`; `MultiVectorEmbedder(config=...)` works
    too. MultiVectorEmbedders of one model and identical engine settings share one engine.

    Example:
        >>> with MultiVectorEmbedder(model="colbert-ir/colbertv2.0") as colbert:
        ...     docs = colbert.embed_documents(["vLLM is fast.", "Qdrant stores vectors."])
        ...     query = colbert.embed_query("fast engine")
        ...     scores = [float((query @ doc.T).max(axis=1).sum()) for doc in docs]  # MaxSim

    Raises:
        SettingsError: At construction, for a model of another architecture or `backend="openai"`, before
            any engine starts.
    """

    _config_type = MultiVectorEmbedderConfig
    _example_model = "colbert-ir/colbertv2.0"
    _tasks: ClassVar[dict[str, PoolingTaskName]] = {
        "HF_ColBERT": "token_embed",
        "ColBERTModernBertModel": "token_embed",
        "ColBERTJinaRobertaModel": "token_embed",
        "BgeM3EmbeddingModel": "token_embed",
    }

    def __init__(
        self, model: str | None = None, *, config: MultiVectorEmbedderConfig | None = None, **kwargs: Any
    ) -> None:
        super().__init__(model, config, kwargs)
        self._markers = _read_markers(self.config.model, self.config.revision)
        tokenizer = self.tokenizer
        self._skip = np.asarray(
            sorted({tokenizer.convert_tokens_to_ids(str(word)) for word in self._markers["skiplist"]}),
            dtype=np.int64,
        )
        self._drops_bos = self.architecture == "BgeM3EmbeddingModel"
        self._dimensions: int | None = None
        self._bos = self._model_files.get("bos_token_id")

    def embed_documents(self, texts: Iterable[str]) -> list[MultiVector]:
        """Embeds documents (with the model's document marker and skiplist, where it ships them).

        Returns:
            One float32 array of shape `(tokens, dim)` per text, rows at unit length.

        Raises:
            TypeError: If `texts` is a bare string or holds a non-string (the message names the index).
            ValueError: If a text holds a lone surrogate, or is too long under `long_input="error"`.
            InvalidVectorError: If a row is not finite or has zero norm, or a text gets no rows.
        """
        return super().embed_documents(texts)

    @property
    def dimensions(self) -> int:
        """The width of the token vectors (the engine is asked once, with a one-word text)."""
        if self._dimensions is None:
            self._dimensions = int(self.embed_documents(["dimensions"])[0].shape[1])
        return self._dimensions

    def describe(self) -> dict[str, Any]:
        """Returns what decides the meaning of these vectors (for collection manifests), with `dimensions`."""
        markers = {key: value for key, value in self._markers.items() if key != "skiplist"}
        described = {**super().describe(), "kind": "multivector", "skiplist": len(self._skip), **markers}
        return {**described, "dimensions": self.dimensions}

    def _text_ids(self, texts: list[str], kind: Kind) -> list[list[int]]:
        marker = self._markers["query_prefix" if kind == "query" else "document_prefix"]
        ids = super()._text_ids([f"{marker}{text}" for text in texts], kind)
        pad_to = self._markers["query_pad_to"]
        if kind == "query" and pad_to:
            mask = self.tokenizer.mask_token_id
            room = pad_to - len(self._prefix) - len(self._suffix)
            ids = [[*row, *[mask] * (room - len(row))] if isinstance(mask, int) else row for row in ids]
        return ids

    def _fold(self, windows: list[Window], kind: Kind, index: int) -> MultiVector:
        parts = []
        for window in windows:
            rows = window.output
            assert rows is not None
            if rows.ndim != 2:
                raise self._bad(index, f"has shape {rows.shape}, not one row per token")
            if kind == "document" and len(self._skip):
                tokens = window.ids[1:] if self._drops_bos and window.ids[:1] == [self._bos] else window.ids
                if len(tokens) != rows.shape[0]:
                    raise self._bad(index, f"has {rows.shape[0]} rows for {len(tokens)} tokens")
                rows = rows[~np.isin(np.asarray(tokens, dtype=np.int64), self._skip)]
            parts.append(rows)
        matrix = np.concatenate(parts).astype(np.float64) if parts else np.zeros((0, 0))
        if matrix.shape[0] == 0:
            raise self._bad(index, "has no token vectors")
        if not np.isfinite(matrix).all():
            raise self._bad(index, "holds a non-finite value")
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        if (norms == 0).any():
            raise self._bad(index, "has an all-zero token vector")
        unit: MultiVector = (matrix / norms).astype(np.float32)
        return unit


def _read_markers(model: str, revision: str | None) -> dict[str, Any]:
    """The query/document markers, query padding and document skiplist a ColBERT model's files ask for."""
    markers: dict[str, Any] = {
        "query_prefix": "",
        "document_prefix": "",
        "query_pad_to": None,
        "skiplist": [],
    }
    pylate = read_model_file(model, "config_sentence_transformers.json", revision) or {}
    stanford = read_model_file(model, "artifact.metadata", revision) or {}
    if "query_prefix" in pylate or "document_prefix" in pylate:
        markers["query_prefix"] = pylate.get("query_prefix") or ""
        markers["document_prefix"] = pylate.get("document_prefix") or ""
        markers["skiplist"] = list(pylate.get("skiplist_words") or [])
        expand = pylate.get("do_query_expansion", True) and pylate.get("attend_to_expansion_tokens", False)
        markers["query_pad_to"] = pylate.get("query_length") if expand else None
        markers["unapplied"] = None if expand else "query expansion with unattended mask tokens"
    elif "query_token_id" in stanford:
        markers["query_prefix"] = f"{stanford['query_token_id']} "
        markers["document_prefix"] = f"{stanford.get('doc_token_id', '[unused1]')} "
        if stanford.get("mask_punctuation", True):
            markers["skiplist"] = list(string.punctuation)
        expand = bool(stanford.get("attend_to_mask_tokens", False))
        markers["query_pad_to"] = stanford.get("query_maxlen", 32) if expand else None
        markers["unapplied"] = None if expand else "query expansion with unattended [MASK] tokens"
    return markers
