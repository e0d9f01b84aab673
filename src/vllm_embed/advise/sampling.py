"""The sample: chunks drawn as `ingest` chunks the corpus, queries derived from some, both embedded."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vllm_embed.ingest.documents import DocumentLike, as_document
from vllm_embed.ingest.embedder_api import SupportsEmbedding, SupportsTokenInput
from vllm_embed.ingest.splitters import ChunkText

QUERY_WORDS = 32
"""Longest query derived from a held-out chunk, in words."""

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")
_DOCS_PER_TOKENIZER_CALL = 64


def query_from_chunk(text: str) -> str:
    """The query derived from a held-out chunk: its longest sentence, cut to `QUERY_WORDS` words.

    Sentences end at `.`, `!` or `?` followed by white space, or at a line break.
    """
    sentences = [" ".join(part.split()) for part in _SENTENCE_BREAK.split(text)]
    longest = max(sentences, key=lambda sentence: len(sentence.split()), default="")
    return " ".join(longest.split()[:QUERY_WORDS])


def _documents(source: Any, text_field: str, id_field: str | None) -> Iterable[DocumentLike]:
    from vllm_embed.ingest.loaders import load_paths

    if isinstance(source, str | Path):
        return load_paths([source], text_field, id_field)
    if isinstance(source, Sequence) and source and all(isinstance(item, Path) for item in source):
        return load_paths(list(source), text_field, id_field)
    return source  # type: ignore[no-any-return]


def _sampled_chunks(
    documents: Iterable[DocumentLike],
    chunker: Any,
    size: int,
    seed: int,
    text_field: str,
    id_field: str | None,
) -> tuple[list[ChunkText], int]:
    """A uniform sample of `size` chunks of every document (reservoir sampling), and the chunk count."""
    rng = random.Random(seed)
    reservoir: list[ChunkText] = []
    seen = 0
    for group in _groups(documents, text_field, id_field):
        for pieces in chunker.split([doc.text for doc in group], [doc.splitter for doc in group]):
            for piece in pieces:
                if seen < size:
                    reservoir.append(piece)
                else:
                    slot = rng.randrange(seen + 1)
                    if slot < size:
                        reservoir[slot] = piece
                seen += 1
    rng.shuffle(reservoir)
    return reservoir, seen


def _groups(documents: Iterable[DocumentLike], text_field: str, id_field: str | None) -> Iterator[list[Any]]:
    group = []
    for item in documents:
        group.append(as_document(item, text_field, id_field))
        if len(group) == _DOCS_PER_TOKENIZER_CALL:
            yield group
            group = []
    if group:
        yield group


def _embed_chunks(embedder: SupportsEmbedding, chunks: list[ChunkText]) -> NDArray[np.float32]:
    texts = [chunk.text for chunk in chunks]
    token_ids = [chunk.token_ids for chunk in chunks]
    if isinstance(embedder, SupportsTokenInput) and all(ids is not None for ids in token_ids):
        return np.asarray(embedder._embed_document_tokens(texts, token_ids), dtype=np.float32)  # type: ignore[arg-type]
    return np.asarray(embedder.embed_documents(texts), dtype=np.float32)


def _embed_queries(embedder: SupportsEmbedding, queries: list[str]) -> NDArray[np.float32]:
    many: Callable[[list[str]], Any] | None = getattr(embedder, "embed_queries", None)
    if many is not None:
        return np.asarray(many(queries), dtype=np.float32)
    return np.asarray([embedder.embed_query(query) for query in queries], dtype=np.float32)
