"""What an ingest run did."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class IngestReport:
    """Counts and duration of one `ingest` run.

    Attributes:
        documents: Documents read.
        chunks: Chunks the documents were split into.
        embedded: Chunks embedded by this run.
        skipped: Chunks already stored with the same text (not embedded again).
        written: Chunks written to the store by this run.
        deleted_from: Documents whose stale trailing chunks (from a longer earlier version) were deleted.
        seconds: Wall-clock duration.
    """

    documents: int
    chunks: int
    embedded: int
    skipped: int
    written: int
    seconds: float
    deleted_from: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Returns the report as a JSON-serialisable dict."""
        return asdict(self)

    def __str__(self) -> str:
        rate = self.chunks / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.documents} documents, {self.chunks} chunks: {self.embedded} embedded, "
            f"{self.skipped} already stored, {self.written} written in {self.seconds:.1f} s "
            f"({rate:.0f} chunks/s)"
        )
