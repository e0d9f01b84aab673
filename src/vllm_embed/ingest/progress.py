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

from vllm_embed.ingest.report import rate_text


class _RatesColumn(ProgressColumn):
    """Documents per second and chunks (with chunks per second)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        chunks = int(task.fields.get("chunks", 0))
        doc_rate = task.completed / elapsed if elapsed > 0 else 0.0
        chunk_rate = chunks / elapsed if elapsed > 0 else 0.0
        return Text(
            f"{rate_text(doc_rate)} docs/s · {chunks:,} chunks ({rate_text(chunk_rate)}/s)",
            style="progress.data.speed",
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
        console = Console(stderr=True)
        # Off a terminal the bar is printed once, at the end: its counts fit one line without the bar and ETA.
        live = (BarColumn(bar_width=24),) if console.is_terminal else ()
        eta = (TextColumn("ETA"), TimeRemainingColumn()) if console.is_terminal else ()
        self._progress = Progress(
            TextColumn("[bold]ingest"),
            *live,
            MofNCompleteColumn(),
            _RatesColumn(),
            TimeElapsedColumn(),
            *eta,
            console=console,
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
