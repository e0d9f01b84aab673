"""Token-aware splitting of documents into chunks the model can embed whole."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Used only without a tokenizer (a remote backend): a rough, conservative characters-per-token ratio.
CHARS_PER_TOKEN = 4


class Chunker:
    """Splits texts into windows of at most `chunk_tokens` tokens, overlapping by `chunk_overlap` tokens.

    Windows are cut at token boundaries of the model's own tokenizer and each chunk is the exact span of
    the original text they cover. A text that fits in one window is kept whole. Without a tokenizer, windows
    are counted in characters (`CHARS_PER_TOKEN` per token).

    Args:
        tokenizer: A Hugging Face fast tokenizer (offset mappings are needed), or `None`.
        chunk_tokens: Longest chunk in tokens.
        chunk_overlap: Tokens shared by consecutive chunks.

    Raises:
        ValueError: If `chunk_tokens < 1`, or `chunk_overlap` is negative or not below `chunk_tokens`.
    """

    def __init__(self, tokenizer: Any, chunk_tokens: int, chunk_overlap: int = 0) -> None:
        if chunk_tokens < 1:
            raise ValueError(f"chunk_tokens={chunk_tokens} must be at least 1")
        if not 0 <= chunk_overlap < chunk_tokens:
            raise ValueError(
                f"chunk_overlap={chunk_overlap} must be at least 0 and below chunk_tokens={chunk_tokens}"
            )
        if tokenizer is not None and not getattr(tokenizer, "is_fast", False):
            raise ValueError("token-aware chunking needs a fast (Rust) Hugging Face tokenizer")
        self.tokenizer = tokenizer
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap

    def split(self, texts: Sequence[str]) -> list[list[str]]:
        """Returns the chunks of each text (none for a blank text)."""
        if self.tokenizer is None:
            size, overlap = self.chunk_tokens * CHARS_PER_TOKEN, self.chunk_overlap * CHARS_PER_TOKEN
            return [self._char_windows(text, size, overlap) for text in texts]
        if not texts:
            return []
        encoded = self.tokenizer(
            list(texts),
            add_special_tokens=False,
            return_offsets_mapping=True,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )
        return [
            self._windows(text, offsets, self.chunk_tokens, self.chunk_overlap)
            for text, offsets in zip(texts, encoded["offset_mapping"], strict=True)
        ]

    @staticmethod
    def _char_windows(text: str, size: int, overlap: int) -> list[str]:
        if not text.strip():
            return []
        if len(text) <= size:
            return [text]
        step = size - overlap
        return [text[start : start + size] for start in range(0, len(text) - overlap, step)]

    @staticmethod
    def _windows(text: str, offsets: Sequence[tuple[int, int]], size: int, overlap: int) -> list[str]:
        if not text.strip() or not offsets:
            return []
        if len(offsets) <= size:
            return [text]
        chunks = []
        step = size - overlap
        for start in range(0, len(offsets), step):
            end = min(start + size, len(offsets))
            chunks.append(text[offsets[start][0] : offsets[end - 1][1]])
            if end == len(offsets):
                break
        return chunks
