"""What the scalar index on `doc_id` buys the resume check in Milvus Lite: a collection with and without it.

    python benchmarks/bench_resume_index.py [--points 100000] [--dim 64] [--chunks 10] [--repeats 20]

The resume check of `ingest` reads the stored texts of a batch's point ids (`fetch_texts`: a primary-key
lookup) and deletes a changed document's surplus chunks (`delete_chunks_from`: a `doc_id` filter). A
filtered search is measured by `doc_id` (a schema field, indexable) and by a metadata key (kept in the JSON
`metadata` field, which Milvus Lite cannot index, so it is the same either way). Random unit vectors; each
document has `--chunks` chunks. The index is measured first, then dropped and everything measured again on
other documents.
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
    sink = MilvusSink("bench", uri=str(workdir / "milvus.db"))
    sink.prepare(Manifest(model="random", dimensions=args.dim))
    documents = args.points // args.chunks
    ids = [[str(uuid.uuid4()) for _ in range(args.chunks)] for _ in range(documents)]
    start = time.perf_counter()
    for first in range(0, documents, 500):
        chunks = [
            Chunk(
                id=ids[d][i],
                doc_id=f"doc-{d}",
                chunk_index=i,
                text=f"chunk {i} of {d}",
                metadata={"g": d % 97},
            )
            for d in range(first, min(first + 500, documents))
            for i in range(args.chunks)
        ]
        vectors = rng.normal(size=(len(chunks), args.dim)).astype(np.float32)
        sink.upsert(chunks, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    sink.client.flush(sink.collection)
    sink.client.release_collection(sink.collection)
    sink.client.load_collection(sink.collection)
    loading = time.perf_counter() - start
    query = rng.normal(size=args.dim).astype(np.float32)
    picks = iter(rng.permutation(documents).tolist())

    def median_ms(operation: Callable[[int], object], repeats: int = args.repeats) -> float:
        for _ in range(2):  # warm-up
            operation(next(picks))
        times = []
        for _ in range(repeats):
            document = next(picks)
            begin = time.perf_counter()
            operation(document)
            times.append(time.perf_counter() - begin)
        return 1000 * statistics.median(times)

    def measure() -> dict[str, float]:
        return {
            f"fetch_texts({args.batch} ids)": median_ms(
                lambda d: sink.fetch_texts([ids[(d + k) % documents][0] for k in range(args.batch)])
            ),
            "delete_chunks_from(doc_id, last)": median_ms(
                lambda d: sink.delete_chunks_from(f"doc-{d}", args.chunks - 1)
            ),
            "count where doc_id ==": median_ms(
                lambda d: sink.client.query(
                    sink.collection, filter=f'doc_id == "doc-{d}"', output_fields=["count(*)"]
                )
            ),
            "search, filter doc_id ==": median_ms(
                lambda d: sink.client.search(
                    sink.collection, data=[query.tolist()], limit=10, filter=f'doc_id == "doc-{d}"'
                )
            ),
            "search, filter metadata (JSON) ==": median_ms(
                lambda d: sink.search(query, 10, {"g": d % 97}), max(3, args.repeats // 6)
            ),
        }

    indexed = measure()
    sink.client.release_collection(sink.collection)
    sink.client.drop_index(sink.collection, "doc_id")
    sink.client.load_collection(sink.collection)
    assert "doc_id" not in sink.client.list_indexes(sink.collection)
    plain = measure()
    points = sink.count()
    sink.close()

    table = Table(
        title=f"Milvus Lite, {points} points of {args.dim} dims ({documents} documents × {args.chunks} "
        f"chunks; loaded in {loading:.0f} s): median ms of {args.repeats} (JSON filter: fewer)"
    )
    for column in ("operation", "doc_id INVERTED index", "no index", "speed-up"):
        table.add_column(column, justify="left" if column == "operation" else "right")
    for name, with_index in indexed.items():
        table.add_row(name, f"{with_index:.2f}", f"{plain[name]:.2f}", f"{plain[name] / with_index:.1f}×")
    Console().print(table)


if __name__ == "__main__":
    main()
