"""Document sources read lazily from files: JSONL, CSV, Parquet, and plain-text/Markdown files.

Each source is an iterable of `Document` that reads its file while iterated (memory stays flat) and knows
its length, so progress bars can show an ETA.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from pathlib import Path
from typing import Any

from vllm_embed.ingest.documents import Document, as_document

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".rst")
"""File suffixes read as one document per file."""

_PARQUET_BATCH_ROWS = 1024


def _check_file(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    return path


def _jsonable(value: Any) -> Any:
    """Returns `value` with anything JSON cannot hold (dates, decimals, bytes) turned into strings."""
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


class JsonlSource:
    """Documents from a JSON Lines file, one object per line.

    Args:
        path: The `.jsonl` file.
        text_field: Key of the text.
        id_field: Key of the id; `None` uses `"id"` when present, else a content hash.
    """

    def __init__(self, path: str | Path, text_field: str = "text", id_field: str | None = None) -> None:
        self.path = _check_file(Path(path))
        self.text_field = text_field
        self.id_field = id_field
        next(iter(self), None)  # a wrong field name fails here, not after an engine has started

    def __iter__(self) -> Iterator[Document]:
        with self.path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{self.path}:{number}: not valid JSON ({exc.msg})") from None
                if not isinstance(record, Mapping):
                    raise ValueError(f"{self.path}:{number}: expected a JSON object")
                try:
                    yield as_document(record, self.text_field, self.id_field)
                except ValueError as exc:
                    raise ValueError(f"{self.path}:{number}: {exc}") from None

    def __len__(self) -> int:
        with self.path.open("rb") as lines:
            return sum(1 for line in lines if line.strip())


class CsvSource:
    """Documents from a CSV file with a header row; every column but text and id becomes metadata.

    Args:
        path: The `.csv` file.
        text_field: Column of the text.
        id_field: Column of the id; `None` uses `"id"` when present, else a content hash.
    """

    def __init__(self, path: str | Path, text_field: str = "text", id_field: str | None = None) -> None:
        self.path = _check_file(Path(path))
        self.text_field = text_field
        self.id_field = id_field
        with self.path.open(encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), [])
        for column in (text_field, id_field):
            if column is not None and column not in header:
                raise ValueError(f"{self.path}: no column {column!r} (columns: {header})")

    def _rows(self) -> Iterator[dict[str, str]]:
        # Long documents exceed csv's default 128 KiB field limit.
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
        with self.path.open(encoding="utf-8", newline="") as handle:
            yield from csv.DictReader(handle)

    def __iter__(self) -> Iterator[Document]:
        for number, row in enumerate(self._rows(), start=2):
            try:
                yield as_document(row, self.text_field, self.id_field)
            except ValueError as exc:
                raise ValueError(f"{self.path}:{number}: {exc}") from None

    def __len__(self) -> int:
        return sum(1 for _ in self._rows())


class ParquetSource:
    """Documents from a Parquet file, read in row batches; every other column becomes metadata.

    Args:
        path: The `.parquet` file.
        text_field: Column of the text.
        id_field: Column of the id; `None` uses `"id"` when present, else a content hash.
    """

    def __init__(self, path: str | Path, text_field: str = "text", id_field: str | None = None) -> None:
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError('reading Parquet needs pyarrow: pip install "vllm-embed[parquet]"') from exc
        self.path = _check_file(Path(path))
        self.text_field = text_field
        self.id_field = id_field
        self._file = pq.ParquetFile(self.path)
        columns = self._file.schema_arrow.names
        for column in (text_field, id_field):
            if column is not None and column not in columns:
                raise ValueError(f"{self.path}: no column {column!r} (columns: {columns})")

    def __iter__(self) -> Iterator[Document]:
        for batch in self._file.iter_batches(batch_size=_PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                yield as_document(_jsonable(row), self.text_field, self.id_field)

    def __len__(self) -> int:
        return int(self._file.metadata.num_rows)


class TextFilesSource:
    """One document per plain-text or Markdown file, with the file's relative path as its id.

    Args:
        path: A text file (its id is its name) or a directory, searched recursively for `TEXT_SUFFIXES`
            files (their ids are paths relative to it, with `/` separators).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no such file or directory: {self.path}")

    def _files(self) -> list[tuple[str, Path]]:
        if self.path.is_file():
            return [(self.path.name, self.path)]
        files = (p for p in self.path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        return sorted((p.relative_to(self.path).as_posix(), p) for p in files)

    def __iter__(self) -> Iterator[Document]:
        for doc_id, file in self._files():
            yield Document(file.read_text(encoding="utf-8", errors="replace"), id=doc_id)

    def __len__(self) -> int:
        return len(self._files())


class ChainedSource:
    """Several sources read one after another."""

    def __init__(self, sources: Sequence[Iterable[Document]]) -> None:
        self.sources = list(sources)

    def __iter__(self) -> Iterator[Document]:
        for source in self.sources:
            yield from source

    def __len__(self) -> int:
        sized = [s for s in self.sources if isinstance(s, Sized)]
        if len(sized) != len(self.sources):
            raise TypeError("the length of a ChainedSource needs every source to have a length")
        return sum(len(s) for s in sized)


def load_path(
    path: str | Path, text_field: str = "text", id_field: str | None = None
) -> JsonlSource | CsvSource | ParquetSource | TextFilesSource:
    """Returns the source for one file or directory, chosen by its suffix.

    `.jsonl`/`.ndjson`, `.csv` and `.parquet` files hold records; a directory or a `TEXT_SUFFIXES` file holds
    one document per file.

    Raises:
        FileNotFoundError: If the path does not exist.
        ValueError: For an unsupported file type or a missing column.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in TEXT_SUFFIXES:
        return TextFilesSource(path)
    if suffix in (".jsonl", ".ndjson"):
        return JsonlSource(path, text_field, id_field)
    if suffix == ".csv":
        return CsvSource(path, text_field, id_field)
    if suffix in (".parquet", ".pq"):
        return ParquetSource(path, text_field, id_field)
    raise ValueError(
        f"cannot read {path}: use .jsonl, .csv, .parquet, a text file ({', '.join(TEXT_SUFFIXES)}) "
        "or a directory"
    )


def load_paths(
    paths: Sequence[str | Path], text_field: str = "text", id_field: str | None = None
) -> ChainedSource:
    """Returns one source reading every path in turn (see `load_path`); all paths are checked first."""
    return ChainedSource([load_path(p, text_field, id_field) for p in paths])
