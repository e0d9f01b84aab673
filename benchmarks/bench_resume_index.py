"""What the scalar index on `doc_id` buys the resume check in Milvus Lite: a collection with and without it.

    python benchmarks/bench_resume_index.py [--points 100000] [--dim 64] [--chunks 10] [--repeats 20]

The resume check of `ingest` reads the stored texts of a batch's point ids (`fetch_texts`: a primary-key
lookup) and deletes a changed document's surplus chunks (`delete_chunks_from`: a `doc_id` filter). A
filtered search is measured by `doc_id` (a schema field, indexable) and by a metadata key (kept in the JSON
`metadata` field, which Milvus Lite cannot index, so it is the same either way). Random unit vectors; each
document has `--chunks` chunks. Two collections hold the same points, one without the `doc_id` index; each
measurement alternates between them (on other documents each time), so load drift hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--chunks", type=int, default=10, help="chunks per document")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32, help="point ids per fetch_texts (the ingest batch)")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from vllm_embed.sinks import MilvusSink
    from vllm_embed.sinks.base import Manifest
    from vllm_embed.sinks.chunks import Chunk

    rng = np.random.default_rng(0)
    workdir = Path(tempfile.mkdtemp(prefix="bench-resume-index-"))
    indexed = MilvusSink("indexed", uri=str(workdir / "milvus.db"))
    plain = indexed.for_collection("plain")
    manifest = Manifest(model="random", dimensions=args.dim)
    for sink in (indexed, plain):
        sink.prepare(manifest)
    plain.client.release_collection("plain")
    plain.client.drop_index("plain", "doc_id")
    assert "doc_id" not in plain.client.list_indexes("plain")
    documents = args.points // args.chunks
    ids = [[str(uuid.uuid4()) for _ in range(args.chunks)] for _ in range(documents)]
    layout = indexed.layout
    start = time.perf_counter()
    for first in range(0, documents, 1000):
        rows = []
        for d in range(first, min(first + 1000, documents)):
            for i in range(args.chunks):
                chunk = Chunk(
                    id=ids[d][i], doc_id=f"doc-{d}", chunk_index=i, text=f"c{i}", metadata={"g": d % 97}
                )
                vector = rng.normal(size=args.dim)
                row = layout.record("milvus", chunk, chunk.text)
                row.update(
                    {
                        layout.milvus_id: chunk.id,
                        layout.milvus_vector: (vector / np.linalg.norm(vector)).tolist(),
                    }
                )
                rows.append(row)
        for sink in (indexed, plain):  # insert: the points are new (upsert would look each id up first)
            sink.client.insert(sink.collection, rows)
    for sink in (indexed, plain):
        sink.client.flush(sink.collection)
        sink.client.release_collection(sink.collection)
        sink.client.load_collection(sink.collection)  # builds the indexes now
    loading = time.perf_counter() - start
    query = rng.normal(size=args.dim).astype(np.float32)
    picks = iter(rng.permutation(documents).tolist())

    def median_ms(operation: Callable[[MilvusSink, int], object], repeats: int) -> tuple[float, float]:
        """Median ms of `operation` on each collection, alternating which goes first (other documents)."""
        times: dict[str, list[float]] = {"indexed": [], "plain": []}
        for repeat in range(repeats + 1):
            for sink in (indexed, plain) if repeat % 2 else (plain, indexed):
                begin = time.perf_counter()
                operation(sink, next(picks))
                if repeat:  # the first round warms up
                    times[sink.collection].append(time.perf_counter() - begin)
        return 1000 * statistics.median(times["indexed"]), 1000 * statistics.median(times["plain"])

    def count(sink: MilvusSink, d: int) -> object:
        return sink.client.query(sink.collection, filter=f'doc_id == "doc-{d}"', output_fields=["count(*)"])

    def by_doc_id(sink: MilvusSink, d: int) -> object:
        return sink.client.search(
            sink.collection, data=[query.tolist()], limit=10, filter=f'doc_id == "doc-{d}"'
        )

    operations: dict[str, tuple[Callable[[MilvusSink, int], object], int]] = {
        f"fetch_texts({args.batch} ids)": (
            lambda s, d: s.fetch_texts([ids[(d + k) % documents][0] for k in range(args.batch)]),
            args.repeats,
        ),
        "delete_chunks_from(doc_id, last)": (
            lambda s, d: s.delete_chunks_from(f"doc-{d}", args.chunks - 1),
            args.repeats,
        ),
        "count where doc_id ==": (count, args.repeats),
        "search, filter doc_id ==": (by_doc_id, args.repeats),
        "search, filter metadata (JSON) ==": (
            lambda s, d: s.search(query, 10, {"g": d % 97}),
            max(3, args.repeats // 5),
        ),
    }
    results = {name: median_ms(operation, repeats) for name, (operation, repeats) in operations.items()}
    points = indexed.count()
    plain.close()
    indexed.close()

    table = Table(
        title=f"Milvus Lite, {points} points of {args.dim} dims ({documents} documents × {args.chunks} "
        f"chunks; loaded in {loading:.0f} s): median ms of {args.repeats} "
        f"(JSON filter: {max(3, args.repeats // 5)})"
    )
    for column in ("operation", "doc_id INVERTED index", "no index", "speed-up"):
        table.add_column(column, justify="left" if column == "operation" else "right")
    for name, (with_index, without) in results.items():
        table.add_row(name, f"{with_index:.2f}", f"{without:.2f}", f"{without / with_index:.1f}×")
    Console().print(table)


if __name__ == "__main__":
    main()
