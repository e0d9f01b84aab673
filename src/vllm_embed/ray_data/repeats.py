"""Repeated document ids in a Ray ingest, found before anything is written (see `ingest_dataset`)."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from vllm_embed.ingest.documents import Document
from vllm_embed.ingest.duplicates import DuplicateCheck, OnDuplicate, duplicate_error, superseded_positions
from vllm_embed.ingest.loaders import ChainedSource, load_path, located_ids
from vllm_embed.ray_data.blocks import DocumentPlan, id_hashes, repeated_rows, without_documents

LAST_VERSIONS_PER_BLOCK = 1024
"""The last versions of repeated ids re-enter the run in blocks of this size."""


@dataclass(frozen=True)
class Repeats:
    """The document ids a dataset repeats, and the last version of each (with `on_duplicate="last"`)."""

    doc_ids: frozenset[str] = frozenset()
    last: pa.Table = field(default_factory=lambda: pa.table({}))
    superseded: int = 0

    def apply(self, ds: Any, plan: DocumentPlan) -> Any:
        """`ds` with the rows of repeated ids replaced by the last version of each."""
        if not self.doc_ids:
            return ds
        from ray.data import from_arrow

        kept = ds.map_batches(
            without_documents, fn_kwargs={"plan": plan, "doc_ids": self.doc_ids}, batch_format="pyarrow"
        )
        pieces = [
            self.last.slice(start, LAST_VERSIONS_PER_BLOCK)
            for start in range(0, self.last.num_rows, LAST_VERSIONS_PER_BLOCK)
        ]
        return kept.union(from_arrow(pieces))


def find_repeats(ds: Any, plan: DocumentPlan, on_duplicate: OnDuplicate) -> Repeats:
    """Finds the repeated document ids of `ds` (see `ingest_dataset`).

    Raises:
        DuplicateDocumentError: For the first repeated id (by the position of its second row), with "error".
    """
    hashes = [
        batch.column("hash").to_numpy()
        for batch in ds.map_batches(id_hashes, fn_kwargs={"plan": plan}, batch_format="pyarrow").iter_batches(
            batch_size=None, batch_format="pyarrow"
        )
    ]
    values, counts = np.unique(
        np.concatenate(hashes) if hashes else np.empty(0, np.uint64), return_counts=True
    )
    candidates = frozenset(int(h) for h in values[counts > 1])
    if not candidates:
        return Repeats()
    # Equal hashes are most likely equal ids; the second pass reads the ids themselves, in order.
    rows = ds.map_batches(
        repeated_rows,
        fn_kwargs={"plan": plan, "hashes": candidates, "keep_rows": on_duplicate == "last"},
        batch_format="pyarrow",
    )
    options = rows.context.execution_options
    preserved, options.preserve_order = options.preserve_order, True
    seen, offset = DuplicateCheck(), 0
    last: dict[str, bytes] = {}
    repeated: set[str] = set()
    superseded = 0
    try:
        for batch in rows.iter_batches(batch_size=None, batch_format="pyarrow"):
            columns = [batch.column(name).to_pylist() for name in ("doc_id", "index", "rows", "row")]
            for doc_id, index, count, row in zip(*columns, strict=True):
                if index < 0:
                    offset += count
                    continue
                earlier = seen.see(doc_id, offset + index)
                if earlier is not None:
                    if on_duplicate == "error":
                        raise duplicate_error(doc_id, earlier, offset + index)
                    repeated.add(doc_id)
                    superseded += 1
                last[doc_id] = row
    finally:
        options.preserve_order = preserved
    if not repeated:
        return Repeats()
    versions = [pickle.loads(last[doc_id]) for doc_id in sorted(repeated)]
    return Repeats(frozenset(repeated), pa.concat_tables(versions, promote_options="permissive"), superseded)


def superseded_by_source(
    sources: Sequence[Iterable[Document]], text_field: str, id_field: str | None, on_duplicate: OnDuplicate
) -> tuple[dict[int, frozenset[int]], int]:
    """The positions, within each source, of the documents a later version replaces, and their number.

    Every record of every file is read (so a broken one fails here, before Ray is joined).

    Raises:
        DuplicateDocumentError: For the first repeated id (with its files and lines), with "error".
    """
    superseded = superseded_positions(ChainedSource(sources), text_field, id_field, on_duplicate)
    skip: dict[int, frozenset[int]] = {}
    start = 0
    for index, source in enumerate(sources):
        if not superseded:
            break
        end = start + sum(1 for _ in located_ids(source))
        own = frozenset(p - start for p in superseded if start <= p < end)
        if own:
            skip[index] = own
        start = end
    return skip, len(superseded)


def read_path(
    row: dict[str, Any], loader: dict[str, Any], skip: dict[int, frozenset[int]]
) -> list[dict[str, Any]]:
    """Ray task: the documents of one input path (`row["path"]`), without those a later version replaces."""
    superseded = skip.get(row["index"], frozenset())
    return [
        {
            "id": doc.id,
            "text": doc.text,
            "metadata": json.dumps(dict(doc.metadata), ensure_ascii=False),
            "splitter": doc.splitter,
        }
        for position, doc in enumerate(load_path(row["path"], **loader))
        if position not in superseded
    ]
