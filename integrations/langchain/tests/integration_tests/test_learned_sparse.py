"""`VLLMSparseEmbeddings` (a real SPLADE engine) behind langchain-qdrant's own sparse and hybrid retrieval.

The store is langchain-qdrant's `QdrantVectorStore` on Qdrant local mode, the dense half `VLLMEmbeddings` over
MiniLM; what it holds and what it finds are checked against `SparseEmbedder` and a brute-force dot product.
It also reads and extends a collection `ingest(..., sparse=SparseEmbedder)` wrote with the langchain layout.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from langchain_qdrant import QdrantVectorStore, RetrievalMode, SparseVector
from langchain_vllm_embed import VLLMEmbeddings, VLLMSparseEmbeddings
from sparse_retrieval import CORPUS, QUERIES, brute_force_top, check_stored

from vllm_embed import Document, Embedder, SparseEmbedder, ingest, search
from vllm_embed.sinks import QdrantSink


@pytest.fixture(scope="module")
def splade(splade_path: Path) -> Iterator[SparseEmbedder]:
    """The module's SPLADE engine (the root's `splade_embedder` settings: a combined session shares it)."""
    with SparseEmbedder(str(splade_path), dtype="float32") as embedder:
        yield embedder


@pytest.fixture(scope="module")
def store(
    splade: SparseEmbedder,
    splade_path: Path,
    minilm_embedder: Embedder,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[QdrantVectorStore]:
    """A hybrid collection langchain-qdrant wrote; its sparse encoder built from the model (same engine)."""
    sparse = VLLMSparseEmbeddings(model=str(splade_path), dtype="float32")
    built = QdrantVectorStore.from_texts(
        list(CORPUS.values()),
        embedding=VLLMEmbeddings(embedder=minilm_embedder),
        sparse_embedding=sparse,
        metadatas=[{"key": key} for key in CORPUS],
        retrieval_mode=RetrievalMode.HYBRID,
        path=str(tmp_path_factory.mktemp("qdrant")),
        collection_name="docs",
    )
    yield built
    built.client.close()
    sparse.close()


def test_the_store_holds_the_sparse_embedders_vectors(
    store: QdrantVectorStore, splade: SparseEmbedder
) -> None:
    points, _ = store.client.scroll("docs", limit=100, with_vectors=True)
    name = store.sparse_vector_name
    stored = {point.payload["metadata"]["key"]: point.vector[name] for point in points}  # type: ignore[index]
    check_stored(stored, splade)


def test_sparse_retrieval_equals_a_brute_force_dot_product(
    store: QdrantVectorStore, splade: SparseEmbedder
) -> None:
    sparse_only = QdrantVectorStore(
        client=store.client,
        collection_name="docs",
        sparse_embedding=VLLMSparseEmbeddings(sparse_embedder=splade),
        retrieval_mode=RetrievalMode.SPARSE,
    )
    for query in QUERIES:
        expected, scores = brute_force_top(splade, query)
        hits = sparse_only.similarity_search_with_score(query, k=5)
        assert [hit.metadata["key"] for hit, _ in hits] == expected, query
        np.testing.assert_allclose([score for _, score in hits], scores, rtol=1e-5)


def test_hybrid_retrieval_finds_the_exact_text(store: QdrantVectorStore) -> None:
    for key in ("crc", "bread", "qdrant"):
        [hit] = store.similarity_search(CORPUS[key], k=1)
        assert hit.metadata["key"] == key


async def test_async_methods_equal_the_sync_ones(splade: SparseEmbedder) -> None:
    sparse = VLLMSparseEmbeddings(sparse_embedder=splade)
    texts = list(CORPUS.values())[:3]
    documents = await sparse.aembed_documents(texts)
    assert documents == sparse.embed_documents(texts)
    assert all(isinstance(document, SparseVector) for document in documents)
    query = await sparse.aembed_query(QUERIES[0])
    expected = splade.embed_query(QUERIES[0])
    assert query.indices == expected.indices.tolist() and query == sparse.embed_query(QUERIES[0])


def test_reads_and_extends_a_collection_ingest_wrote(
    splade: SparseEmbedder, minilm_embedder: Embedder, tmp_path: Path
) -> None:
    documents = [Document(text, id=key, metadata={"key": key}) for key, text in CORPUS.items()]
    with QdrantSink("docs", path=str(tmp_path / "qdrant"), layout="langchain") as sink:
        ingest(documents, embedder=minilm_embedder, sink=sink, sparse=splade, progress=False)
        store = QdrantVectorStore(
            client=sink.client,
            collection_name="docs",
            embedding=VLLMEmbeddings(embedder=minilm_embedder),
            sparse_embedding=VLLMSparseEmbeddings(sparse_embedder=splade),
            retrieval_mode=RetrievalMode.HYBRID,
        )
        [hit] = store.similarity_search(CORPUS["crc"], k=1)
        assert hit.metadata["key"] == "crc" and hit.page_content == CORPUS["crc"]

        store.add_texts(["Adler-32, zlib.adler32, is a faster checksum."], metadatas=[{"key": "adler"}])
        [ours] = search(
            "zlib.adler32", embedder=minilm_embedder, sink=sink, sparse=splade, mode="sparse", top_k=1
        )
        assert ours.metadata == {"key": "adler"}
