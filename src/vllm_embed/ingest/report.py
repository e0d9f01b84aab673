"""What an ingest run did."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class IngestReport:
    """Counts and duration of one `ingest` run.

    Documents read = `documents` + `len(rejected)` + `superseded`.

    Attributes:
        documents: Documents ingested: their chunks are stored now (written, or found already stored).
        chunks: Chunks the documents were split into.
        embedded: Chunks embedded by this run.
        skipped: Chunks already stored with the same text and metadata (not embedded again).
        written: Chunks written to the store by this run.
        deleted_from: Documents whose stale trailing chunks (from a longer earlier version) were deleted.
        seconds: Wall-clock duration.
        rejected: `(doc_id, reason)` of each document not written because the store cannot keep its id,
            or its text is larger than `max_document_bytes`.
        superseded: Earlier versions of a repeated document id, dropped unread (`on_duplicate="last"`).
        updated: Chunks stored with the same text but other metadata, rewritten with the new metadata
            without embedding them again.
        replica_chunks_per_second: Chunks each engine replica embedded per second of embedding
            (`vllm_embed.ray_data`; empty for a single-process run).
    """

    documents: int
    chunks: int
    embedded: int
    skipped: int
    written: int
    seconds: float
    deleted_from: int = 0
    rejected: tuple[tuple[str, str], ...] = ()
    superseded: int = 0
    updated: int = 0
    replica_chunks_per_second: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Returns the report as a JSON-serialisable dict."""
        return asdict(self)

    def __str__(self) -> str:
        rate = self.chunks / self.seconds if self.seconds > 0 else 0.0
        text = (
            f"{self.documents} documents, {self.chunks} chunks: {self.embedded} embedded, "
            f"{self.skipped} already stored, {self.written} written in {self.seconds:.1f} s "
            f"({rate_text(rate)} chunks/s)"
        )
        if self.updated:
            text += f"; {self.updated} with new metadata rewritten (not embedded)"
        if self.replica_chunks_per_second:
            rates = ", ".join(rate_text(rate) for rate in self.replica_chunks_per_second)
            text += f"; replicas: {rates} chunks/s each"
        if self.superseded:
            text += f"; {self.superseded} earlier versions of repeated ids dropped"
        if self.rejected:
            text += f"; {len(self.rejected)} rejected:" + "".join(
                f"\n  {_shortened(doc_id)!r}: {reason}" for doc_id, reason in self.rejected
            )
        return text


def rate_text(per_second: float) -> str:
    """A rate with two significant digits below 10 (a short run that started an engine is not "0/s")."""
    return f"{per_second:,.0f}" if per_second >= 10 or per_second == 0 else f"{per_second:.2g}"


def _shortened(doc_id: str, limit: int = 80) -> str:
    return doc_id if len(doc_id) <= limit else f"{doc_id[:limit]}… ({len(doc_id)} characters)"
