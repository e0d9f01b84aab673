"""Boundary-aware splitting: chunks that end at paragraphs, sentences or words and fit the model's input.

The splitting itself is `semantic-text-splitter` (`TextSplitter`, `MarkdownSplitter`), counting in the
model's own tokens. What it does not know — the document prompt and the special tokens the Embedder adds
around every text — is taken off its capacity, and every chunk is then tokenised once as the Embedder
would (prompt included) to check it fits; those token ids go on to the Embedder, so a chunk is not
tokenised a second time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from vllm_embed._utils import batched
from vllm_embed.ingest.chunking import CHARS_PER_TOKEN, Chunker, token_ids
from vllm_embed.ingest.markdown_blocks import markdown_pieces

DEFAULT_CHUNK_TOKENS = 512
"""Longest chunk by default, in tokens of the model's input: document prompt and special tokens included
(or the model's longest input when that is smaller)."""

SplitterName = Literal["text", "markdown", "tokens"]
"""`text`: paragraphs, then sentences, then words; `markdown`: headings and blocks first; `tokens`: fixed
windows of tokens (cut anywhere)."""

SPLITTERS: tuple[str, ...] = get_args(SplitterName)

SplitterLike = SplitterName | Callable[[str], list[str]]
"""A splitter's name, or a function from a document's text to its chunks."""

_CHUNKS_PER_TOKENIZER_CALL = 256

# The boundary-aware splitters search a text without boundaries in time quadratic in its length (a 200K
# character "word" takes minutes with a BPE tokenizer): runs of this many non-space characters or more
# are cut into token windows instead.
_LONG_RUN = re.compile(r"\S{4096,}")


def splitter_name(splitter: SplitterLike) -> str:
    """Returns how `splitter` is recorded in a manifest: its name, or a callable's qualified name.

    Raises:
        ValueError: For an unknown name.
        TypeError: For something neither a name nor callable.
    """
    if isinstance(splitter, str):
        if splitter not in SPLITTERS:
            raise ValueError(
                f"splitter={splitter!r} must be one of {SPLITTERS} or a callable str -> list[str]"
            )
        return splitter
    if callable(splitter):
        qualname = getattr(splitter, "__qualname__", None) or type(splitter).__qualname__
        module = getattr(splitter, "__module__", None) or type(splitter).__module__
        return f"{module}.{qualname}"
    raise TypeError(f"splitter must be one of {SPLITTERS} or a callable, got {type(splitter).__name__}")


@dataclass(frozen=True, slots=True)
class ChunkText:
    """One chunk of a document.

    Attributes:
        text: The chunk's text (what is stored).
        token_ids: The token ids of the chunk with its document prompt, without special tokens, exactly as
            the Embedder tokenises it; `None` without a local tokenizer.
    """

    text: str
    token_ids: list[int] | None = None


def counting_tokenizer(tokenizer: Any) -> Any:
    """Returns the Rust `tokenizers.Tokenizer` of a fast tokenizer, without truncation or padding.

    A model's `tokenizer.json` may enable truncation (all-MiniLM-L6-v2 cuts at 128 tokens): a splitter
    counting with it would see every long text as short.
    """
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend


class DocumentChunker:
    """Splits documents into chunks whose model input (prompt and special tokens too) fits `chunk_tokens`.

    Args:
        tokenizer: The model's Hugging Face fast tokenizer, or `None` (then sizes are counted in characters,
            `CHARS_PER_TOKEN` per token, and no token ids are returned).
        chunk_tokens: Longest model input per chunk, in tokens, with the document prompt and special tokens.
        chunk_overlap: Tokens shared by consecutive chunks (at most; boundary-aware splitters share whole
            sentences or words).
        splitter: The splitter for every document; `None` uses each document's own hint (`Document.splitter`,
            e.g. `"markdown"` for Markdown files), else `"text"`.
        special_tokens: Tokens the Embedder adds around every text (e.g. `[CLS]`, `[SEP]`, an EOS).
        format_document: The Embedder's document prompt (`Embedder.format_document`); `None` for none.

    Raises:
        ValueError: If the prompt and special tokens leave no room for text, or `chunk_overlap` is negative
            or not below the room left.
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        chunk_tokens: int,
        chunk_overlap: int = 0,
        splitter: SplitterLike | None = None,
        special_tokens: int = 0,
        format_document: Callable[[str], str] | None = None,
    ) -> None:
        if splitter is not None:
            splitter_name(splitter)
        self.tokenizer = tokenizer
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.splitter = splitter
        self._special_tokens = special_tokens
        self._format = format_document
        self.capacity = chunk_tokens - special_tokens - self._prompt_tokens()
        if self.capacity < 1:
            raise ValueError(
                f"chunk_tokens={chunk_tokens} leaves no room for text after the document prompt and "
                f"{special_tokens} special tokens: pass a larger chunk_tokens"
            )
        if not 0 <= chunk_overlap < self.capacity:
            raise ValueError(
                f"chunk_overlap={chunk_overlap} must be at least 0 and below the {self.capacity} tokens a "
                f"chunk of chunk_tokens={chunk_tokens} holds after its prompt and special tokens"
            )
        self._windows = Chunker(tokenizer, self.capacity, chunk_overlap)
        self._splitters: dict[str, Any] = {}

    def split(self, texts: Sequence[str], hints: Sequence[str | None] | None = None) -> list[list[ChunkText]]:
        """Returns the chunks of each text (none for a blank text).

        Args:
            texts: The documents' texts.
            hints: Each document's own splitter (`Document.splitter`), used when this chunker has none.
        """
        chosen = [self._choose(None if hints is None else hints[i]) for i in range(len(texts))]
        pieces: list[list[str]] = [[] for _ in texts]
        for choice in dict.fromkeys(c for c in chosen if isinstance(c, str)):
            rows = [i for i, c in enumerate(chosen) if c == choice]
            group = [texts[i] for i in rows]
            split = self._windows.split(group) if choice == "tokens" else self._by_boundaries(choice, group)
            for row, chunks in zip(rows, split, strict=True):
                pieces[row] = chunks
        for row, own in enumerate(chosen):
            if callable(own):
                pieces[row] = _called(own, texts[row])
        pieces = [[p for p in chunks if p and not p.isspace()] for chunks in pieces]
        if self.tokenizer is None:
            return [[ChunkText(p) for p in chunks] for chunks in pieces]
        return self._fitted(pieces)

    # -- internals ----------------------------------------------------------------------------------

    def _choose(self, hint: str | None) -> SplitterLike:
        if self.splitter is not None:
            return self.splitter
        if hint is None:
            return "text"
        splitter_name(hint)  # type: ignore[arg-type]
        return hint  # type: ignore[return-value]

    def _by_boundaries(self, name: str, texts: list[str]) -> list[list[str]]:
        """Splits with the `text` or `markdown` splitter.

        A Markdown document is first cut into pieces (`markdown_pieces`), so that no call of the Markdown
        splitter takes quadratic time.
        """
        if name != "markdown":
            return self._split_with(name, texts)
        pieces = [
            (row, kind, piece) for row, text in enumerate(texts) for kind, piece in markdown_pieces(text)
        ]
        split: list[list[str]] = [[] for _ in pieces]
        for kind in ("markdown", "text"):
            rows = [i for i, (_, piece_kind, _) in enumerate(pieces) if piece_kind == kind]
            if rows:
                done = self._split_with(kind, [pieces[i][2] for i in rows])
                for i, chunks in zip(rows, done, strict=True):
                    split[i] = chunks
        result: list[list[str]] = [[] for _ in texts]
        for (row, _, _), chunks in zip(pieces, split, strict=True):
            result[row].extend(chunks)
        return result

    def _split_with(self, name: str, texts: list[str]) -> list[list[str]]:
        """Splits with the `text` or `markdown` splitter; long runs without spaces go to token windows."""
        splitter = self._splitter(name)
        plain = [row for row, text in enumerate(texts) if _LONG_RUN.search(text) is None]
        plain_rows = set(plain)
        chunks: list[list[str]] = [[] for _ in texts]
        for row, pieces in zip(plain, splitter.chunk_all([texts[row] for row in plain]), strict=True):
            chunks[row] = pieces
        for row, text in enumerate(texts):
            if row in plain_rows:
                continue
            pieces, start = [], 0
            for run in _LONG_RUN.finditer(text):
                pieces.extend(splitter.chunks(text[start : run.start()]))
                pieces.extend(self._windows.split([run.group()])[0])
                start = run.end()
            pieces.extend(splitter.chunks(text[start:]))
            chunks[row] = pieces
        return chunks

    def _splitter(self, name: str) -> Any:
        splitter = self._splitters.get(name)
        if splitter is None:
            from semantic_text_splitter import MarkdownSplitter, TextSplitter

            cls = MarkdownSplitter if name == "markdown" else TextSplitter
            if self.tokenizer is None:
                size = self.capacity * CHARS_PER_TOKEN
                splitter = cls(size, overlap=self.chunk_overlap * CHARS_PER_TOKEN)
            else:
                splitter = cls.from_huggingface_tokenizer(
                    counting_tokenizer(self.tokenizer), self.capacity, overlap=self.chunk_overlap
                )
            self._splitters[name] = splitter
        return splitter

    def _prompted(self, text: str) -> str:
        return text if self._format is None else self._format(text)

    def _prompt_tokens(self) -> int:
        """Tokens the document prompt adds to a text (0 without a prompt or a tokenizer)."""
        if self._format is None:
            return 0
        if self.tokenizer is None:
            return -(len(self._format("")) // -CHARS_PER_TOKEN)  # rounded up
        bare, prompted = self._token_ids(["x", self._format("x")])
        return max(0, len(prompted) - len(bare))

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        return token_ids(self.tokenizer, texts)

    def _encoded(self, chunks: list[str]) -> list[ChunkText]:
        encoded: list[ChunkText] = []
        for group in batched(chunks, _CHUNKS_PER_TOKENIZER_CALL):
            group_ids = self._token_ids([self._prompted(chunk) for chunk in group])
            encoded.extend(ChunkText(chunk, ids) for chunk, ids in zip(group, group_ids, strict=True))
        return encoded

    def _fitted(self, pieces: list[list[str]]) -> list[list[ChunkText]]:
        """Tokenises every chunk as the Embedder will, and cuts any that does not fit into token windows."""
        flat = self._encoded([piece for chunks in pieces for piece in chunks])
        result: list[list[ChunkText]] = []
        position = 0
        for chunks in pieces:
            fitted: list[ChunkText] = []
            for chunk in flat[position : position + len(chunks)]:
                fitted.extend([chunk] if self._fits(chunk) else self._cut(chunk))
            position += len(chunks)
            result.append(fitted)
        return result

    def _fits(self, chunk: ChunkText) -> bool:
        assert chunk.token_ids is not None
        return len(chunk.token_ids) + self._special_tokens <= self.chunk_tokens

    def _cut(self, chunk: ChunkText) -> list[ChunkText]:
        """Cuts a chunk that is too long (from a callable, or merged at the prompt) into windows that fit.

        The windows shrink until each fits; a single token of the text is the smallest possible chunk.
        """
        assert chunk.token_ids is not None
        length = len(chunk.token_ids)
        capacity = self.capacity
        excess = length + self._special_tokens - self.chunk_tokens
        while True:
            capacity = max(1, min(capacity, length) - max(excess, 1))
            windows = Chunker(self.tokenizer, capacity, min(self.chunk_overlap, capacity - 1))
            pieces = self._encoded(windows.split([chunk.text])[0])
            longest = max(len(piece.token_ids or ()) for piece in pieces)
            excess = longest + self._special_tokens - self.chunk_tokens
            if excess <= 0 or capacity == 1:
                return pieces


def _called(splitter: Callable[[str], list[str]], text: str) -> list[str]:
    chunks = splitter(text)
    if isinstance(chunks, str) or not all(isinstance(chunk, str) for chunk in chunks):
        raise TypeError(f"the splitter {splitter_name(splitter)} must return a list of strings")
    return list(chunks)
