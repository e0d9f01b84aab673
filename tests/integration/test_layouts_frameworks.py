"""`vllm-embed ingest --layout langchain|llama-index`: each framework's own vector store reads the collection.

The CLI runs in-process on the session's engine (same settings, so the engine is shared). The collection is
then read by langchain-qdrant's `QdrantVectorStore`, langchain-milvus's `Milvus`, and LlamaIndex's
`QdrantVectorStore` / `MilvusVectorStore` (through `VectorStoreIndex.from_vector_store`), all with their
default settings, and their top hits are compared with vllm-embed's `search()` on the same collection.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vllm_embed import Embedder, Hit, search
from vllm_embed.cli import app
from vllm_embed.sinks import MilvusSink, QdrantSink

DOCS = [
    ("tea", "Green tea is made from unoxidised leaves of Camellia sinensis.", "drinks"),
    ("coffee", "Espresso is brewed by forcing hot water through finely ground coffee.", "drinks"),
    ("rust", "Rust's borrow checker enforces memory safety at compile time.", "code"),
    ("python", "Python's garbage collector frees objects that are no longer referenced.", "code"),
    ("alps", "The Alps are the highest mountain range lying entirely in Europe. " * 6, "places"),
]
QUESTIONS = ["How is espresso made?", "Which language checks memory safety when compiling?", "Tall mountains"]
TOP_K = 3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": t, "topic": topic}) + "\n" for i, t, topic in DOCS))
    return path


def ingest_with_cli(
    layout: str, kind: str, root: Path, corpus: Path, minilm_path: str, embedder: Embedder
) -> tuple[str, dict[str, list[Hit]]]:
    """Ingests `corpus` with the CLI; returns the store's location and vllm-embed's hits for each question."""
    target = str(root / ("qdrant" if kind == "qdrant" else "milvus.db"))
    args = ["ingest", str(corpus), "-m", minilm_path, "--dtype", "float32", "-c", "docs", f"--{kind}", target]
    args += ["--layout", layout, "--chunk-tokens", "24", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    sink = QdrantSink("docs", path=target) if kind == "qdrant" else MilvusSink("docs", uri=target)
    with sink:
        manifest = sink.read_manifest()
        assert manifest is not None and manifest.layout == layout
        assert sink.count() > len(DOCS)  # the long document was chunked
        return target, {q: search(q, embedder=embedder, sink=sink, top_k=TOP_K) for q in QUESTIONS}


def check_langchain_documents(found: list[tuple[Any, float]], hits: list[Hit], id_key: str) -> None:
    assert [doc.metadata[id_key] for doc, _ in found] == [h.id for h in hits]
    for (doc, score), hit in zip(found, hits, strict=True):
        assert doc.page_content == hit.text
        assert score == pytest.approx(hit.score, abs=1e-4)
        assert (doc.metadata["doc_id"], doc.metadata["chunk_index"]) == (hit.doc_id, hit.chunk_index)


def test_langchain_qdrant_reads_and_extends_the_collection(
    minilm_path: str, minilm_embedder: Embedder, corpus: Path, tmp_path: Path
) -> None:
    from langchain_qdrant import QdrantVectorStore
    from langchain_vllm_embed import VLLMEmbeddings
    from qdrant_client import QdrantClient

    path, expected = ingest_with_cli("langchain", "qdrant", tmp_path, corpus, minilm_path, minilm_embedder)
    client = QdrantClient(path=path)
    try:
        embeddings = VLLMEmbeddings(embedder=minilm_embedder)
        store = QdrantVectorStore(client=client, collection_name="docs", embedding=embeddings)
        for question, hits in expected.items():
            found = store.similarity_search_with_score(question, k=TOP_K)
            check_langchain_documents(found, hits, "_id")
            assert [doc.metadata["topic"] for doc, _ in found] == [h.metadata["topic"] for h in hits]
        # LangChain can keep writing to the collection, and vllm-embed reads what it wrote.
        metadata = {"doc_id": "oolong", "chunk_index": 0}
        [new_id] = store.add_texts(["Oolong tea is partly oxidised."], metadatas=[metadata])
    finally:
        client.close()
    with QdrantSink("docs", path=path) as sink:
        [hit] = search("partly oxidised tea", embedder=minilm_embedder, sink=sink, top_k=1)
    assert uuid.UUID(hit.id) == uuid.UUID(new_id)  # LangChain hands out the id without dashes
    assert (hit.doc_id, hit.text) == ("oolong", "Oolong tea is partly oxidised.")


def test_langchain_milvus_reads_the_collection(
    minilm_path: str, minilm_embedder: Embedder, corpus: Path, tmp_path: Path
) -> None:
    from langchain_milvus import Milvus
    from langchain_vllm_embed import VLLMEmbeddings

    uri, expected = ingest_with_cli("langchain", "milvus", tmp_path, corpus, minilm_path, minilm_embedder)
    embeddings = VLLMEmbeddings(embedder=minilm_embedder)
    for dynamic in (False, True):  # LangChain's defaults, then with the documents' own metadata too
        store = Milvus(
            embeddings, collection_name="docs", connection_args={"uri": uri}, enable_dynamic_field=dynamic
        )
        try:
            for question, hits in expected.items():
                found = store.similarity_search_with_score(question, k=TOP_K)
                check_langchain_documents(found, hits, "pk")
                if dynamic:
                    assert [doc.metadata["topic"] for doc, _ in found] == [h.metadata["topic"] for h in hits]
        finally:
            store.client.close()


def check_llamaindex_retrieval(vector_store: Any, embedder: Embedder, expected: dict[str, list[Hit]]) -> None:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import MetadataMode
    from llama_index.embeddings.vllm_embed import VLLMEmbedding

    index = VectorStoreIndex.from_vector_store(vector_store, embed_model=VLLMEmbedding(embedder=embedder))
    retriever = index.as_retriever(similarity_top_k=TOP_K)
    for question, hits in expected.items():
        found = retriever.retrieve(question)
        assert [n.node.node_id for n in found] == [h.id for h in hits], question
        for scored, hit in zip(found, hits, strict=True):
            node = scored.node
            assert node.get_content() == hit.text
            assert scored.score == pytest.approx(hit.score, abs=1e-4)
            assert node.ref_doc_id == hit.doc_id
            assert (node.metadata["doc_id"], node.metadata["chunk_index"]) == (hit.doc_id, hit.chunk_index)
            assert node.metadata["topic"] == hit.metadata["topic"]
            # The vector is of the chunk text alone, and the node says so.
            assert node.get_content(metadata_mode=MetadataMode.EMBED) == hit.text


def test_llamaindex_qdrant_reads_the_collection(
    minilm_path: str, minilm_embedder: Embedder, corpus: Path, tmp_path: Path
) -> None:
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    path, expected = ingest_with_cli("llama-index", "qdrant", tmp_path, corpus, minilm_path, minilm_embedder)
    client = QdrantClient(path=path)
    try:
        check_llamaindex_retrieval(
            QdrantVectorStore(client=client, collection_name="docs"), minilm_embedder, expected
        )
    finally:
        client.close()


def test_llamaindex_milvus_reads_the_collection(
    minilm_path: str, minilm_embedder: Embedder, corpus: Path, tmp_path: Path
) -> None:
    from llama_index.vector_stores.milvus import MilvusVectorStore

    uri, expected = ingest_with_cli("llama-index", "milvus", tmp_path, corpus, minilm_path, minilm_embedder)
    store = MilvusVectorStore(uri=uri, collection_name="docs")
    try:
        check_llamaindex_retrieval(store, minilm_embedder, expected)
    finally:
        store.client.close()
