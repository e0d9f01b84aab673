"""The part of the `Embedder` API the pipeline relies on: nothing engine-specific."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from vllm_embed.sinks.chunks import MultiVector

if TYPE_CHECKING:
    from vllm_embed.learned_sparse import SparseVector


class SupportsEmbedding(Protocol):
    """What `ingest` and `search` need from an embedder (`vllm_embed.Embedder` provides it)."""

    @property
    def tokenizer(self) -> Any:
        """A Hugging Face fast tokenizer, or `None` (then chunks are counted in characters)."""
        ...

    @property
    def max_input_tokens(self) -> int | None:
        """Longest input in tokens (special tokens excluded) one input may have, when known."""
        ...

    def embed_documents(self, texts: list[str]) -> NDArray[np.float32]:
        """Returns one unit vector per text, shape `(len(texts), dimension)`."""
        ...

    def embed_query(self, text: str, instruction: str | None = None) -> NDArray[np.float32]:
        """Returns the vector of one query, shape `(dimension,)`."""
        ...

    def describe(self) -> dict[str, Any]:
        """Returns how vectors are made: model, profile, dimensions, normalized, pooling, version."""
        ...


@runtime_checkable
class SupportsTokenInput(Protocol):
    """An embedder that takes documents already tokenised by the chunker (`vllm_embed.Embedder` does).

    Internal: the pipeline hands on the token ids its chunker computed, so chunks are tokenised once.
    """

    def _embed_document_tokens(
        self, texts: list[str], token_ids: Sequence[Sequence[int]]
    ) -> NDArray[np.float32]:
        """`embed_documents(texts)`, given each text's prompted token ids (without special tokens)."""
        ...


@runtime_checkable
class SupportsLazyStart(Protocol):
    """An embedder whose engine may not have started yet (`vllm_embed.Embedder`).

    Internal: the pipeline starts it from the calling thread when the first chunk must be embedded, so the
    engine's start-up (and a Ctrl-C during it) happens where it did when the engine started up front.
    """

    def _live_backend(self) -> Any:
        """Returns the engine, starting it first if needed."""
        ...


class SupportsSparseEmbedding(Protocol):
    """What `ingest` and `search` need from a learned sparse embedder (`vllm_embed.SparseEmbedder`)."""

    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        """Returns one sparse vector per text."""
        ...

    def embed_query(self, text: str) -> SparseVector:
        """Returns the sparse vector of one query."""
        ...

    def describe(self) -> dict[str, Any]:
        """Returns what decides the meaning of the vectors: model, revision, architecture, `max_terms`."""
        ...


class SupportsMultiVectorEmbedding(Protocol):
    """What `ingest` and `search` need from a multi-vector embedder (`vllm_embed.MultiVectorEmbedder`)."""

    def embed_documents(self, texts: list[str]) -> list[MultiVector]:
        """Returns one `(tokens, dim)` matrix of unit rows per text."""
        ...

    def embed_query(self, text: str) -> MultiVector:
        """Returns the token vectors of one query."""
        ...

    def describe(self) -> dict[str, Any]:
        """Returns what decides the meaning of the vectors, with their `dimensions`."""
        ...
