"""Document sources read lazily from files: JSONL, CSV, Parquet, and plain-text/Markdown files.

Each source is an iterable of `Document` that reads its file while iterated (memory stays flat) and knows
its length, so progress bars can show an ETA. A malformed file raises `InputFileError` naming the file and
the physical line (the row for Parquet); no row is ever dropped silently.

One record (a JSONL line, a CSV record, a text file, a Parquet text value) may take at most
`max_document_bytes` bytes: a bigger one is refused before it is read whole, so a stray giant line cannot
exhaust memory. Record files are decoded line by line with `encoding` (an ASCII-compatible codec such as
UTF-8, `utf-8-sig` or Latin-1) and `errors` (as in `bytes.decode`).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from pathlib import Path
from typing import Any

from vllm_embed._optional import require
from vllm_embed.errors import InputFileError
from vllm_embed.ingest.documents import Document, as_document, utf8_size_above
from vllm_embed.ingest.file_lines import Lines, check_file, check_limit, count_nonblank_lines, too_large

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".rst")
MARKDOWN_SUFFIXES = (".md", ".markdown")
"""Text files split along Markdown headings and blocks (unless `ingest` is given a splitter)."""
"""File suffixes read as one document per file."""

DEFAULT_MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
"""Largest record (JSONL line, CSV record, text file, Parquet text value) or in-memory text, in bytes.

Bigger than any single book; a larger text is refused with an error rather than risking memory. Split it,
or pass a larger `max_document_bytes`.
"""

DEFAULT_ENCODING = "utf-8"
"""Encoding of input files."""

_PARQUET_BATCH_ROWS = 1024


def _jsonable(value: Any) -> Any:
    """Returns `value` with anything JSON cannot hold (dates, decimals, bytes) turned into strings."""
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


class _RecordFile:
    """A file of records, one document each, read line by line (`Lines`) with its path, fields and limits."""

    def __init__(
        self,
        path: str | Path,
        text_field: str = "text",
        id_field: str | None = None,
        *,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
        encoding: str = DEFAULT_ENCODING,
        errors: str = "strict",
    ) -> None:
        self.path = check_file(Path(path))
        self.text_field = text_field
        self.id_field = id_field
        self.max_document_bytes = check_limit(max_document_bytes)
        self.encoding = encoding
        self.errors = errors
        self._check()  # a wrong field name fails here, not after an engine has started

    def _check(self) -> None:
        """Reads ahead what shows a wrong field name."""

    def _check_columns(self, columns: Sequence[str]) -> None:
        for column in (self.text_field, self.id_field):
            if column is not None and column not in columns:
                raise InputFileError(f"{self.path}: no column {column!r} (columns: {list(columns)})")

    def __iter__(self) -> Iterator[Document]:
        for _, doc in self.located():
            yield doc

    def located(self) -> Iterator[tuple[str, Document]]:
        """Yields each document with where it is (`file:line`)."""
        raise NotImplementedError


class JsonlSource(_RecordFile):
    """Documents from a JSON Lines file, one object per line.

    Args:
        path: The `.jsonl` file.
        text_field: Key of the text.
        id_field: Key of the id; `None` uses `"id"` when present, else a content hash.
        max_document_bytes: Longest line in bytes.
        encoding: Encoding of the file (ASCII-compatible).
        errors: What to do with bytes that do not decode (`"strict"`, `"replace"`, ...).

    Raises:
        InputFileError: While reading, for a line that is not a JSON object, lacks the text field, is longer
            than `max_document_bytes`, or does not decode; naming the file and the line.
    """

    def _check(self) -> None:
        next(iter(self), None)

    def located(self) -> Iterator[tuple[str, Document]]:
        """Yields each document with where it is: `file:line`."""
        with self.path.open("rb") as handle:
            lines = Lines(self.path, handle, self.max_document_bytes, self.encoding, self.errors)
            for line in lines:
                lines.start_record()
                if not line or line.isspace():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    where = f"{self.path}:{lines.number}:{exc.colno}"  # file:line:column, as compilers say
                    raise InputFileError(f"{where}: not valid JSON ({exc.msg})") from None
                except RecursionError:
                    raise InputFileError(
                        f"{self.path}:{lines.number}: JSON nested too deeply to read; flatten the record"
                    ) from None
                del line  # the parsed record holds the text: do not keep the raw line as well
                if not isinstance(record, Mapping):
                    raise InputFileError(f"{self.path}:{lines.number}: expected a JSON object")
                try:
                    doc = as_document(record, self.text_field, self.id_field)
                except ValueError as exc:
                    raise InputFileError(f"{self.path}:{lines.number}: {exc}") from None
                yield f"{self.path}:{lines.number}", doc

    def __len__(self) -> int:
        return count_nonblank_lines(self.path)


class CsvSource(_RecordFile):
    """Documents from a CSV file with a header row; every column but text and id becomes metadata.

    A row with fewer cells than the header gets `None` for the missing ones.

    Args:
        path: The `.csv` file.
        text_field: Column of the text.
        id_field: Column of the id; `None` uses `"id"` when present, else a content hash.
        max_document_bytes: Longest record (all its lines) in bytes.
        encoding: Encoding of the file (ASCII-compatible).
        errors: What to do with bytes that do not decode (`"strict"`, `"replace"`, ...).

    Raises:
        InputFileError: For a missing column; while reading, for a malformed record (an unterminated
            quote, more cells than the header), one longer than `max_document_bytes`, or bytes that do not
            decode; naming the file and the physical line.
    """

    def _check(self) -> None:
        self._check_columns(next(self._records(), (0, []))[1])

    def _records(self) -> Iterator[tuple[int, list[str]]]:
        """Yields (first physical line, cells) of every record, the header included."""
        # The record size is bounded by `_Lines`; csv's own field limit (128 KiB) would refuse long texts.
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
        with self.path.open("rb") as handle:
            lines = Lines(self.path, handle, self.max_document_bytes, self.encoding, self.errors)
            reader = csv.reader(lines, strict=True)
            while True:
                first_line = lines.number + 1
                lines.start_record()
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise InputFileError(
                        f"{self.path}:{first_line}: malformed CSV record ({exc}, at line {lines.number}); "
                        "check the quotes: a quote inside a quoted field is written twice"
                    ) from None
                if cells:  # a blank line
                    yield first_line, cells

    def _rows(self) -> Iterator[tuple[int, dict[str, str | None]]]:
        records = self._records()
        _, header = next(records, (0, []))
        for line, cells in records:
            if len(cells) > len(header):
                raise InputFileError(
                    f"{self.path}:{line}: {len(cells)} cells but the header has {len(header)} columns; "
                    "quote the cells that contain the delimiter"
                )
            yield line, dict(zip(header, cells + [None] * (len(header) - len(cells)), strict=True))

    def located(self) -> Iterator[tuple[str, Document]]:
        """Yields each document with where it is: `file:line` of the record's first line."""
        for line, row in self._rows():
            try:
                doc = as_document(row, self.text_field, self.id_field)
            except ValueError as exc:
                raise InputFileError(f"{self.path}:{line}: {exc}") from None
            yield f"{self.path}:{line}", doc

    def __len__(self) -> int:
        return sum(1 for _ in self._rows())


class ParquetSource(_RecordFile):
    """Documents from a Parquet file, read in row batches; every other column becomes metadata.

    Args:
        path: The `.parquet` file.
        text_field: Column of the text.
        id_field: Column of the id; `None` uses `"id"` when present, else a content hash.
        max_document_bytes: Longest text in bytes (UTF-8).

    Raises:
        InputFileError: For a missing column; while reading, for a text above `max_document_bytes`, naming
            the file and the row.
    """

    def __init__(
        self,
        path: str | Path,
        text_field: str = "text",
        id_field: str | None = None,
        *,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
    ) -> None:
        super().__init__(path, text_field, id_field, max_document_bytes=max_document_bytes)

    def _check(self) -> None:
        pq = require("pyarrow.parquet", "Reading Parquet files")
        self._file = pq.ParquetFile(self.path)
        self._check_columns(self._file.schema_arrow.names)

    def located(self) -> Iterator[tuple[str, Document]]:
        """Yields each document with where it is: `file: row N`."""
        number = 0
        for batch in self._file.iter_batches(batch_size=_PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                number += 1
                text = row.get(self.text_field)
                if isinstance(text, str) and utf8_size_above(text, self.max_document_bytes):
                    raise too_large(self.path, f"row {number}", self.max_document_bytes)
                try:
                    doc = as_document(_jsonable(row), self.text_field, self.id_field)
                except ValueError as exc:
                    raise InputFileError(f"{self.path}: row {number}: {exc}") from None
                yield f"{self.path}: row {number}", doc

    def __len__(self) -> int:
        return int(self._file.metadata.num_rows)


class TextFilesSource:
    """One document per plain-text or Markdown file, with the file's relative path as its id.

    Args:
        path: A text file (its id is its name) or a directory, searched recursively for `TEXT_SUFFIXES`
            files (their ids are paths relative to it, with `/` separators).
        max_document_bytes: Largest file in bytes.
        encoding: Encoding of the files.
        errors: What to do with bytes that do not decode; `"replace"` by default, since a stray byte in a
            text file rarely matters to search.

    Raises:
        InputFileError: While reading, for a file above `max_document_bytes`, or one that does not decode
            with `errors="strict"`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
        encoding: str = DEFAULT_ENCODING,
        errors: str = "replace",
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no such file or directory: {self.path}")
        self.max_document_bytes = check_limit(max_document_bytes)
        self.encoding = encoding
        self.errors = errors

    def _files(self) -> list[tuple[str, Path]]:
        if self.path.is_file():
            return [(self.path.name, self.path)]
        files = (p for p in self.path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        return sorted((p.relative_to(self.path).as_posix(), p) for p in files)

    def __iter__(self) -> Iterator[Document]:
        for doc_id, file in self._files():
            if file.stat().st_size > self.max_document_bytes:
                raise too_large(file, "1", self.max_document_bytes)
            try:
                text = file.read_text(encoding=self.encoding, errors=self.errors)
            except UnicodeDecodeError as exc:
                line = 1 + file.read_bytes()[: exc.start].count(b"\n")
                raise InputFileError(
                    f"{file}:{line}: not valid {self.encoding}; convert the file, or pass errors='replace'"
                ) from None
            markdown = file.suffix.lower() in MARKDOWN_SUFFIXES
            yield Document(text, id=doc_id, splitter="markdown" if markdown else None)

    def located_ids(self) -> Iterator[tuple[str, str]]:
        """Yields `(id, file)` of every document, in order, without reading the files."""
        for doc_id, file in self._files():
            yield doc_id, str(file)

    def __len__(self) -> int:
        return len(self._files())


class ChainedSource:
    """Several sources read one after another."""

    def __init__(self, sources: Sequence[Iterable[Document]]) -> None:
        self.sources = list(sources)

    def __iter__(self) -> Iterator[Document]:
        for source in self.sources:
            yield from source

    def located_ids(self) -> Iterator[tuple[str, str | None]]:
        """Yields `(id, where)` of every document in order: `where` is `file:line` when the source tells."""
        for source in self.sources:
            yield from located_ids(source)

    def __len__(self) -> int:
        sized = [s for s in self.sources if isinstance(s, Sized)]
        if len(sized) != len(self.sources):
            raise TypeError("the length of a ChainedSource needs every source to have a length")
        return sum(len(s) for s in sized)


def located_ids(source: Iterable[Document]) -> Iterator[tuple[str, str | None]]:
    """Yields `(id, where)` of every document of `source`, as cheaply as the source allows."""
    cheap = getattr(source, "located_ids", None)
    if callable(cheap):
        yield from cheap()
        return
    located = getattr(source, "located", None)
    if callable(located):
        for where, doc in located():
            yield doc.doc_id, where
        return
    for doc in source:
        yield doc.doc_id, None


def load_path(
    path: str | Path,
    text_field: str = "text",
    id_field: str | None = None,
    *,
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
    encoding: str = DEFAULT_ENCODING,
    errors: str | None = None,
) -> JsonlSource | CsvSource | ParquetSource | TextFilesSource:
    """Returns the source for one file or directory, chosen by its suffix.

    `.jsonl`/`.ndjson`, `.csv` and `.parquet` files hold records; a directory or a `TEXT_SUFFIXES` file holds
    one document per file.

    Args:
        path: The file or directory.
        text_field: Key or column of the text in record files.
        id_field: Key or column of the id; `None` uses `"id"` when present, else a content hash.
        max_document_bytes: Largest record (JSONL line, CSV record, text file, Parquet text) in bytes.
        encoding: Encoding of text, JSONL and CSV files (ASCII-compatible).
        errors: Handling of bytes that do not decode; `None` is `"strict"` for JSONL and CSV (an error
            naming the line) and `"replace"` for text files.

    Raises:
        FileNotFoundError: If the path does not exist.
        InputFileError: For an unsupported file type or a missing column.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    suffix = path.suffix.lower()
    decoding: dict[str, str] = (
        {"encoding": encoding} if errors is None else {"encoding": encoding, "errors": errors}
    )
    if path.is_dir() or suffix in TEXT_SUFFIXES:
        return TextFilesSource(path, max_document_bytes=max_document_bytes, **decoding)
    if suffix in (".jsonl", ".ndjson"):
        return JsonlSource(path, text_field, id_field, max_document_bytes=max_document_bytes, **decoding)
    if suffix == ".csv":
        return CsvSource(path, text_field, id_field, max_document_bytes=max_document_bytes, **decoding)
    if suffix in (".parquet", ".pq"):
        return ParquetSource(path, text_field, id_field, max_document_bytes=max_document_bytes)
    raise InputFileError(
        f"cannot read {path}: use .jsonl, .csv, .parquet, a text file ({', '.join(TEXT_SUFFIXES)}) "
        "or a directory"
    )


def load_paths(
    paths: Sequence[str | Path],
    text_field: str = "text",
    id_field: str | None = None,
    *,
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
    encoding: str = DEFAULT_ENCODING,
    errors: str | None = None,
) -> ChainedSource:
    """Returns one source reading every path in turn (see `load_path`); all paths are checked first."""
    return ChainedSource(
        [
            load_path(
                p,
                text_field,
                id_field,
                max_document_bytes=max_document_bytes,
                encoding=encoding,
                errors=errors,
            )
            for p in paths
        ]
    )
