"""Reading input files safely: line by line, each record bounded in size, errors naming file and line."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import IO

from vllm_embed.errors import InputFileError

_COUNT_BLOCK_BYTES = 1 << 20


def check_file(path: Path) -> Path:
    """Returns `path` if it is an existing file; raises naming it otherwise."""
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    if not path.is_file():
        raise InputFileError(f"{path} is not a file")
    return path


def check_limit(max_document_bytes: int) -> int:
    """Returns `max_document_bytes` if it is positive."""
    if max_document_bytes < 1:
        raise ValueError(f"max_document_bytes={max_document_bytes} must be at least 1")
    return max_document_bytes


def too_large(path: Path, where: str, max_document_bytes: int) -> InputFileError:
    """The error for a record above `max_document_bytes` at `path:where`."""
    return InputFileError(
        f"{path}:{where}: record larger than max_document_bytes={max_document_bytes}; split the document, "
        "or raise the limit (max_document_bytes=, CLI --max-document-bytes)"
    )


class Lines:
    """Iterates over a file's physical lines, each decoded on its own and at most `limit` bytes.

    A line is read with `readline(limit + 1)`, so a giant line is refused after `limit` bytes instead of
    being held in memory; a decoding error names its line. An iterator class rather than a generator, so
    that no suspended frame keeps the last (possibly long) line alive while it is parsed.
    """

    def __init__(self, path: Path, handle: IO[bytes], limit: int, encoding: str, errors: str) -> None:
        self.path = path
        self.limit = limit
        self.encoding = encoding
        self.number = 0
        self._handle = handle
        self._decoder = codecs.getincrementaldecoder(encoding)(errors)
        self._record_bytes = 0

    def start_record(self) -> None:
        """Starts counting the bytes of a new record (which may span several lines)."""
        self._record_bytes = 0

    def __iter__(self) -> Lines:
        return self

    def __next__(self) -> str:
        raw = self._handle.readline(self.limit + 1)
        if not raw:
            raise StopIteration
        self.number += 1
        self._record_bytes += len(raw)
        if self._record_bytes > self.limit:
            raise too_large(self.path, str(self.number), self.limit)
        try:
            return self._decoder.decode(raw)
        except UnicodeDecodeError as exc:
            raise InputFileError(
                f"{self.path}:{self.number}: not valid {self.encoding} (byte 0x{raw[exc.start]:02x} at "
                f"column {exc.start + 1}); convert the file, or pass encoding= or errors='replace' "
                "(CLI --encoding, --encoding-errors)"
            ) from None


def count_nonblank_lines(path: Path) -> int:
    """Counts the lines holding something besides whitespace, reading at most a block at a time."""
    count, has_content = 0, False
    with path.open("rb") as handle:
        while piece := handle.readline(_COUNT_BLOCK_BYTES):
            has_content = has_content or not piece.isspace()
            if piece.endswith(b"\n"):
                count += has_content
                has_content = False
    return count + has_content
