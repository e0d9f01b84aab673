"""The part of the `Embedder` API the pipeline relies on: nothing engine-specific."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray


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
