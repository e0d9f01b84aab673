"""Throughput of `SparseEmbedder` and `MultiVectorEmbedder` against sentence-transformers' `SparseEncoder` and
`MultiVectorEncoder`.

Texts: docstrings of the local Python standard library, built at run time. Models: the tests' SPLADE
(`BertSpladeSparseEmbeddingModel`) and ColBERT (`HF_ColBERT`) fixtures on all-MiniLM-L6-v2's BERT weights,
or `--splade` / `--colbert`. Both sides get the same texts, the same model and dtype, in one process, and
truncate to the model's limit; each figure is the best of `--repeats` timed runs after a warm-up. (PyLate is
not compared: installing it replaces torch, transformers and sentence-transformers, which breaks vLLM.)

    python benchmarks/bench_sparse.py [--texts 512] [--repeats 2] [--dtype float32]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench_embed import _best_of


def _fixture(kind: str) -> str:
    """A tests' fixture model, built once into the tests' model cache (keyed as the tests key it)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import sparse_models

    digest = hashlib.sha256(Path(sparse_models.__file__).read_bytes()).hexdigest()[:10]
    root = Path(os.environ.get("VLLM_EMBED_TEST_CACHE", Path.home() / ".cache" / "vllm-embed-tests"))
    target = root / f"{kind}-{digest}"
    if not (target / "model.safetensors").is_file():
        getattr(sparse_models, f"build_{kind}")(target)
    return str(target)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--splade", default=None, help="SPLADE model (default: the tests' fixture)")
    parser.add_argument("--colbert", default=None, help="ColBERT model (default: the tests' fixture)")
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()

    import numpy as np
    import torch
    from rich.console import Console
    from rich.table import Table
    from sentence_transformers import MultiVectorEncoder, SparseEncoder
    from sentence_transformers.sparse_encoder.modules.mlm_transformer import MLMTransformer
    from sentence_transformers.sparse_encoder.modules.splade_pooling import SpladePooling

    from vllm_embed import MultiVectorEmbedder, SparseEmbedder
    from vllm_embed.datasets import python_docstrings

    console = Console(width=130)
    texts = list(dict.fromkeys(doc["text"] for doc in python_docstrings(limit=args.texts)))
    splade_model, colbert_model = args.splade or _fixture("splade"), args.colbert or _fixture("colbert")
    dtype = getattr(torch, args.dtype)
    rows: list[tuple[str, str, float, str]] = []

    sparse = SparseEmbedder(splade_model, dtype=args.dtype, long_input="truncate")
    limit = sparse.max_input_tokens
    # The SPLADE formula vLLM runs (the fixture ships no sentence-transformers module files).
    modules = [MLMTransformer(splade_model), SpladePooling("max")]
    st_sparse = SparseEncoder(modules=modules, device="cpu").to(dtype)
    st_sparse.max_seq_length = (limit or 510) + 2

    def ours_sparse() -> Any:
        return sparse.embed_documents(texts)

    def theirs_sparse() -> Any:
        return st_sparse.encode_document(texts, batch_size=32, convert_to_sparse_tensor=False)

    ours_sparse(), theirs_sparse()  # warm-up
    mine = ours_sparse()[0]
    theirs = theirs_sparse()[0].to_dense().float().numpy()
    agreement = float(np.abs(theirs[mine.indices] - mine.values).max())
    rows.append(("sparse", "vllm-embed SparseEmbedder", _best_of(args.repeats, ours_sparse), ""))
    rows.append(("sparse", "sentence-transformers SparseEncoder", _best_of(args.repeats, theirs_sparse), ""))
    rows[-2] = (*rows[-2][:3], f"max |weight diff| {agreement:.1e}")
    sparse.close()

    multi = MultiVectorEmbedder(colbert_model, dtype=args.dtype, long_input="truncate")
    # It reads the checkpoint as Stanford ColBERT: [unused0]/[unused1] markers, punctuation skiplist.
    st_multi = MultiVectorEncoder(colbert_model, device="cpu").to(dtype)
    st_multi.max_seq_length = (multi.max_input_tokens or 510) + 2

    def ours_multi() -> Any:
        return multi.embed_documents(texts)

    def theirs_multi() -> Any:
        return st_multi.encode_document(texts, batch_size=32, convert_to_numpy=True)

    ours_multi(), theirs_multi()
    rows.append(("multi-vector", "vllm-embed MultiVectorEmbedder", _best_of(args.repeats, ours_multi), ""))
    rows.append(
        ("multi-vector", "sentence-transformers MultiVectorEncoder", _best_of(args.repeats, theirs_multi), "")
    )
    multi.close()

    load = os.getloadavg()
    table = Table(title=f"{len(texts)} docstrings, {args.dtype}, best of {args.repeats}")
    for column in ("kind", "contender", "seconds", "texts/s", "speed-up of ours", "note"):
        table.add_column(column, justify="left" if column in ("kind", "contender", "note") else "right")
    for index, (kind, name, seconds, note) in enumerate(rows):
        ours = rows[index - index % 2][2]
        table.add_row(
            kind, name, f"{seconds:.2f}", f"{len(texts) / seconds:.0f}", f"{seconds / ours:.2f}x", note
        )
    console.print(table)
    console.print(
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; torch threads {torch.get_num_threads()}"
    )


if __name__ == "__main__":
    main()
