"""`IngestOptions`: the settings of an ingest run, declared once for `ingest`, the Ray ingest and the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from vllm_embed.ingest.documents import DEFAULT_MAX_METADATA_BYTES
from vllm_embed.ingest.duplicates import ON_DUPLICATE_CHOICES, OnDuplicate
from vllm_embed.ingest.loaders import DEFAULT_MAX_DOCUMENT_BYTES
from vllm_embed.ingest.splitters import SplitterLike, splitter_name


@dataclass(frozen=True, kw_only=True)
class IngestOptions:
    """How documents are chunked, checked and written, whichever runner runs the ingest.

    `ingest`, `ingest_dataset` and `ingest_paths` build one from their keyword arguments (which keep their
    names and defaults); the CLI builds one from its flags. The chunk size and overlap are checked against
    the model when its chunker is built.

    Attributes:
        chunk_tokens: Longest chunk in tokens of the model's input, with the document prompt and special
            tokens; `None` uses `DEFAULT_CHUNK_TOKENS` (512), or the model's longest input when smaller.
        chunk_overlap: Tokens shared by consecutive chunks of a document.
        splitter: `"text"`, `"markdown"`, `"tokens"` or a function `str -> list[str]`; `None`: each
            document's own splitter, else `"text"`.
        rechunk: Accept chunking that differs from the collection's (the run's documents get their chunks
            replaced, and the manifest records the new chunking).
        batch_size: Chunks per embedding call and per write.
        on_duplicate: A document id seen twice in one run: `"error"`, or `"last"` (the last version only).
        max_document_bytes: Largest document text in bytes (UTF-8); a larger one is rejected. `None`
            accepts any size.
        max_metadata_bytes: Largest document metadata in bytes (as JSON, UTF-8; every chunk stores a
            copy); a document with larger metadata is rejected. `None` accepts any size.
        progress: Show progress on stderr.

    Raises:
        ValueError: For a `batch_size` below 1 or an unknown `on_duplicate`.
    """

    chunk_tokens: int | None = None
    chunk_overlap: int = 0
    splitter: SplitterLike | None = None
    rechunk: bool = False
    batch_size: int = 256
    on_duplicate: OnDuplicate = "error"
    max_document_bytes: int | None = DEFAULT_MAX_DOCUMENT_BYTES
    max_metadata_bytes: int | None = DEFAULT_MAX_METADATA_BYTES
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be at least 1")
        if self.on_duplicate not in ON_DUPLICATE_CHOICES:
            raise ValueError(f"on_duplicate={self.on_duplicate!r} must be one of {ON_DUPLICATE_CHOICES}")

    @classmethod
    def pick(cls, arguments: Mapping[str, Any]) -> IngestOptions:
        """The options among a function's arguments, by name: `IngestOptions.pick(locals())`."""
        return cls(**{f.name: arguments[f.name] for f in fields(cls) if f.name in arguments})

    @property
    def chunking(self) -> dict[str, Any]:
        """The manifest's chunking fields known before the model's tokenizer is (the default size is not)."""
        known: dict[str, Any] = {
            "splitter": "text" if self.splitter is None else splitter_name(self.splitter),
            "chunk_overlap": self.chunk_overlap,
        }
        if self.chunk_tokens is not None:
            known["chunk_tokens"] = self.chunk_tokens
        return known


@dataclass(frozen=True, kw_only=True)
class FileOptions:
    """How input files are read: the CLI's and `ingest_paths`' (see `load_path`).

    Attributes:
        text_field: Text field or column of records.
        id_field: Id field or column of records (`None`: `"id"` when present).
        encoding: Encoding of the files (`None`: the loaders' default).
        errors: What to do with undecodable bytes (`None`: the loaders' default).
    """

    text_field: str = "text"
    id_field: str | None = None
    encoding: str | None = None
    errors: str | None = None

    def loader_arguments(self, max_document_bytes: int | None) -> dict[str, Any]:
        """The keyword arguments of `load_path` / `load_paths` for these files."""
        arguments: dict[str, Any] = {"text_field": self.text_field, "id_field": self.id_field}
        arguments["errors"] = self.errors
        if self.encoding is not None:
            arguments["encoding"] = self.encoding
        if max_document_bytes is not None:
            arguments["max_document_bytes"] = max_document_bytes
        return arguments
