"""Finding (and re-embedding) stored vectors no search can use: non-finite, all-zero or of the wrong length.

Older vllm-embed versions stored whatever a backend returned, so a collection may hold such vectors (Milvus
keeps NaN, Qdrant keeps zero vectors), and a re-run of `ingest` skips them as already stored.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vllm_embed._utils import first_vector_problem, vector_problem
from vllm_embed.errors import InvalidVectorError, ManifestError
from vllm_embed.ingest.embedder_api import SupportsEmbedding
from vllm_embed.ingest.search import require_manifest
from vllm_embed.sinks.base import Manifest, Sink

logger = logging.getLogger(__name__)

LISTED_IDS = 100
"""At most this many invalid point ids are kept in a `VerifyReport`."""


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What `verify_collection` found.

    Attributes:
        checked: Points whose vectors were read.
        invalid: Points whose vector is non-finite, zero or of the wrong length.
        repaired: Invalid points whose vector was re-embedded from their stored text and replaced.
        invalid_ids: Point ids of the first invalid points (at most `LISTED_IDS`).
        unrepairable: Invalid points `repair=True` left as they were: their text payload is missing or
            empty, so there is nothing to embed (re-ingest their documents).
    """

    checked: int
    invalid: int
    repaired: int
    invalid_ids: tuple[str, ...]
    unrepairable: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Returns the report as a JSON-serialisable dict."""
        fields = asdict(self)
        fields["invalid_ids"] = list(self.invalid_ids)
        return fields

    def __str__(self) -> str:
        text = f"{self.checked} points checked, {self.invalid} invalid, {self.repaired} repaired"
        if self.unrepairable:
            text += f", {self.unrepairable} unrepairable (no stored text)"
        if self.invalid_ids:
            more = ", ..." if self.invalid > len(self.invalid_ids) else ""
            text += f" (invalid: {', '.join(self.invalid_ids)}{more})"
        return text


def verify_collection(
    sink: Sink,
    embedder: SupportsEmbedding | None = None,
    *,
    repair: bool = False,
    batch_size: int = 256,
) -> VerifyReport:
    """Scans a collection for unusable vectors and, with `repair=True`, re-embeds them.

    The points are read `batch_size` at a time, so memory stays bounded. A repaired point gets the vector of
    its stored text embedded as a document; its payload is left as it is. (A Milvus text longer than its
    field was stored cut, and the repaired vector is of that cut text.)

    Args:
        sink: The collection (a `QdrantSink` or `MilvusSink`).
        embedder: The model the collection was embedded with; needed for `repair=True`.
        repair: Whether to replace invalid vectors.
        batch_size: Points read (and re-embedded) at a time.

    Returns:
        The counts, and the first invalid point ids.

    Raises:
        CollectionNotFoundError: If the collection does not exist.
        ManifestError: If the manifest's `dimensions` is not the size of the store's vector (the manifest,
            not every vector, is wrong).
        ManifestMismatchError: If `embedder` is not the model (or size) the collection was embedded with.
        InvalidVectorError: If the embedder returns an unusable vector for a stored text.
        ValueError: For `repair=True` without an embedder, a sink that cannot list its vectors, or
            `batch_size < 1`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    manifest = require_manifest(sink)
    _check_manifest_size(sink, manifest)
    if repair:
        if embedder is None:
            raise ValueError("repair=True needs the embedder of the model the collection was embedded with")
        this_run = Manifest.from_description(embedder.describe(), layout=sink.layout.name)
        manifest.require_compatible(this_run, sink.collection)
    checked = invalid = repaired = unrepairable = 0
    listed: list[str] = []
    for batch in sink.iter_vectors(batch_size):
        checked += len(batch)
        bad = [point_id for point_id, vector in batch if vector_problem(vector, manifest.dimensions)]
        invalid += len(bad)
        listed.extend(bad[: LISTED_IDS - len(listed)])
        if repair and bad and embedder is not None:
            done = _repair(sink, embedder, bad, manifest.dimensions)
            repaired += done
            unrepairable += len(bad) - done
    report = VerifyReport(
        checked=checked,
        invalid=invalid,
        repaired=repaired,
        invalid_ids=tuple(listed),
        unrepairable=unrepairable,
    )
    logger.info("%s: %s", sink, report)
    return report


def _check_manifest_size(sink: Sink, manifest: Manifest) -> None:
    """Refuses a manifest whose `dimensions` the store's own description of the collection contradicts.

    Otherwise every vector would be reported (and with `repair=True` re-embedded) as of the wrong length
    when it is the manifest that was changed.
    """
    stored = sink.info().dimensions
    if stored is not None and stored != manifest.dimensions:
        raise ManifestError(
            f"the manifest of collection {sink.collection!r} says {manifest.dimensions} dimensions but the "
            f"store holds {stored}-dimensional vectors: the manifest is wrong, not the vectors; rewrite it "
            "with the settings the collection was embedded with (`sink.write_manifest(Manifest."
            f"from_description(embedder.describe(), layout=...))`, vllm_embed.sinks) on {sink!r}"
        )


def _repair(sink: Sink, embedder: SupportsEmbedding, ids: list[str], dimensions: int) -> int:
    """Re-embeds the stored texts of `ids` and replaces their vectors; returns how many were replaced.

    A point whose text is missing or empty is left alone: the vector of `""` is not its vector.
    """
    texts = sink.fetch_texts(ids)
    found = [point_id for point_id in ids if texts.get(point_id)]
    if len(found) < len(ids):
        logger.warning(
            "%s: %d invalid points have no stored text and cannot be repaired; re-ingest their documents",
            sink,
            len(ids) - len(found),
        )
    if not found:
        return 0
    vectors = np.asarray(embedder.embed_documents([texts[point_id] for point_id in found]), dtype=np.float32)
    bad = first_vector_problem(vectors, dimensions)
    if bad is not None:
        index, problem = bad
        raise InvalidVectorError(
            f"the embedder returned an unusable vector (it {problem}) for the text of point "
            f"{found[index]!r}; nothing of this batch was stored"
        )
    sink.replace_vectors(found, vectors)
    return len(found)
