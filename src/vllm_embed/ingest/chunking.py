"""Token-aware splitting of documents into chunks the model can embed whole."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vllm_embed._utils import batched

# Used only without a tokenizer (a remote backend): a rough, conservative characters-per-token ratio.
CHARS_PER_TOKEN = 4

# A longer text is tokenised in segments of about this many characters, cut at whitespace: tokenising a
# whole multi-megabyte string at once, with offsets, takes hundreds of bytes per token.
_SEGMENT_CHARS = 1 << 16
_SEGMENTS_PER_CALL = 4
_CHUNKS_PER_CHECK = 256

_Offsets = Sequence[tuple[int, int]] | NDArray[np.int64]


def token_ids(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """The token ids of each text, without special tokens (one tokenizer call)."""
    ids: list[list[int]] = tokenizer(
        texts,
        add_special_tokens=False,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )["input_ids"]
    return ids


class Chunker:
    """Splits texts into windows of at most `chunk_tokens` tokens, overlapping by `chunk_overlap` tokens.

    Windows are cut at token boundaries of the model's own tokenizer and each chunk is the exact span of
    the original text they cover; a window whose text, tokenised alone, takes more than `chunk_tokens`
    tokens (one cut inside a word) is shortened until it fits, unless it is a single token of the text.
    A text that fits in one window is kept whole. Without a tokenizer, windows are counted in characters
    (`CHARS_PER_TOKEN` per token). A very long text is tokenised in segments cut at whitespace, so memory
    stays proportional to its length with a small factor.

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
        chunks: list[list[str]] = [[] for _ in texts]
        short = [i for i, text in enumerate(texts) if len(text) <= _SEGMENT_CHARS]
        if short:
            for i, offsets in zip(short, self._offsets([texts[i] for i in short]), strict=True):
                chunks[i] = self._fitted_windows(texts[i], offsets)
        for i, text in enumerate(texts):
            if len(text) > _SEGMENT_CHARS and not text.isspace():
                chunks[i] = self._fitted_windows(text, self._long_offsets(text))
        return chunks

    def _fitted_windows(self, text: str, offsets: _Offsets) -> list[str]:
        """Token windows, each checked by tokenising it alone: none may exceed `chunk_tokens`.

        A window that starts inside a word (a `##` piece, say) can take more tokens on its own than in
        the text; such a window is shortened until it fits.
        """
        offsets = _character_units(offsets)
        chunks = self._windows(text, offsets, self.chunk_tokens, self.chunk_overlap)
        if len(chunks) <= 1:
            return chunks  # the whole text, whose own token count is known
        for group in batched(chunks, _CHUNKS_PER_CHECK):
            if any(len(ids) > self.chunk_tokens for ids in self._token_ids(list(group))):
                return self._shortened_windows(text, offsets)
        return chunks

    def _shortened_windows(self, text: str, offsets: _Offsets) -> list[str]:
        size, chunks, start = self.chunk_tokens, [], 0
        while True:
            end = min(start + size, len(offsets))
            while True:
                chunk = text[int(offsets[start][0]) : int(offsets[end - 1][1])]
                excess = len(self._token_ids([chunk])[0]) - size
                if excess <= 0 or end - start == 1:
                    break  # a single token of the text is the smallest possible chunk
                end = max(start + 1, end - excess)
            chunks.append(chunk)
            if end == len(offsets):
                return chunks
            start = max(start + 1, end - self.chunk_overlap)

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        return token_ids(self.tokenizer, texts)

    def _offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        encoded = self.tokenizer(
            texts,
            add_special_tokens=False,
            return_offsets_mapping=True,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )
        offsets: list[list[tuple[int, int]]] = encoded["offset_mapping"]
        return offsets

    def _long_offsets(self, text: str) -> NDArray[np.int64]:
        """Token offsets of a long text, tokenised segment by segment, as an `(n, 2)` array."""
        starts = _segment_starts(text)
        segments = list(zip(starts, [*starts[1:], len(text)], strict=True))
        parts = []
        for group in batched(segments, _SEGMENTS_PER_CALL):
            encoded = self._offsets([text[start:end] for start, end in group])
            for (start, _), offsets in zip(group, encoded, strict=True):
                if offsets:
                    parts.append(np.asarray(offsets, dtype=np.int64) + start)
        return np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)

    @staticmethod
    def _char_windows(text: str, size: int, overlap: int) -> list[str]:
        if not text or text.isspace():
            return []
        if len(text) <= size:
            return [text]
        step = size - overlap
        return [text[start : start + size] for start in range(0, len(text) - overlap, step)]

    @staticmethod
    def _windows(text: str, offsets: _Offsets, size: int, overlap: int) -> list[str]:
        if not text or text.isspace() or len(offsets) == 0:
            return []
        if len(offsets) <= size:
            return [text]
        chunks = []
        step = size - overlap
        for start in range(0, len(offsets), step):
            end = min(start + size, len(offsets))
            chunks.append(text[int(offsets[start][0]) : int(offsets[end - 1][1])])
            if end == len(offsets):
                break
        return chunks


def _character_units(offsets: _Offsets) -> NDArray[np.int64]:
    """Token spans with the tokens that share characters merged, so that no window is cut inside a character.

    Some tokenisers split one character into several tokens over the same span (a Hangul syllable into its
    jamo, with WordPiece): windows of such tokens would repeat that character instead of covering the text.
    """
    spans = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    if len(spans) < 2:
        return spans
    ends = np.maximum.accumulate(spans[:, 1])
    first = np.flatnonzero(np.r_[True, spans[1:, 0] >= ends[:-1]])
    last = np.r_[first[1:] - 1, len(spans) - 1]
    return np.stack([spans[first, 0], ends[last]], axis=1)


def _segment_starts(text: str) -> list[int]:
    """Where the segments of a long text start: about every `_SEGMENT_CHARS`, at a whitespace if any.

    A segment starts with the whitespace it is cut at, so that tokenisers that attach a space to the word
    after it see each word as in the whole text.
    """
    starts = [0]
    while len(text) - starts[-1] > _SEGMENT_CHARS:
        limit = starts[-1] + _SEGMENT_CHARS
        floor = limit - _SEGMENT_CHARS // 4
        cut = max(text.rfind(" ", floor, limit), text.rfind("\n", floor, limit))
        starts.append(cut if cut > starts[-1] else limit)
    return starts
