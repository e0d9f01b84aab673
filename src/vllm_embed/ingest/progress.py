"""The ingest progress bar: documents and chunks per second, and the ETA when the corpus size is known."""

from __future__ import annotations

import threading

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _RatesColumn(ProgressColumn):
    """Documents per second and chunks (with chunks per second)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        chunks = int(task.fields.get("chunks", 0))
        doc_rate = task.completed / elapsed if elapsed > 0 else 0.0
        chunk_rate = chunks / elapsed if elapsed > 0 else 0.0
        return Text(
            f"{doc_rate:,.0f} docs/s · {chunks:,} chunks ({chunk_rate:,.0f}/s)", style="progress.data.speed"
        )


class IngestProgress:
    """A rich progress bar on stderr, safe to advance from the writer thread; a no-op when disabled.

    Args:
        enabled: Whether to show anything.
        total: Number of documents, when known (enables the bar and the ETA).
    """

    def __init__(self, enabled: bool, total: int | None) -> None:
        self._lock = threading.Lock()
        self._chunks = 0
        self._progress = Progress(
            TextColumn("[bold]ingest"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            _RatesColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not enabled,
        )
        self._task = self._progress.add_task("ingest", total=total, chunks=0)

    def __enter__(self) -> IngestProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def advance(self, documents: int, chunks: int) -> None:
        """Counts documents and chunks that are done (stored or found already stored)."""
        with self._lock:
            self._chunks += chunks
            self._progress.update(self._task, advance=documents, chunks=self._chunks)
