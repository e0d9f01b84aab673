"""`BM25SparseEmbeddings` behind langchain-qdrant's own sparse and hybrid retrieval, on Qdrant local mode.

The collection is written by vllm-embed's `QdrantSink` (langchain layout, hybrid) with random dense vectors;
the dense side of LangChain's hybrid search is a Fake, so what is found by a word is found by BM25.
"""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_qdrant import QdrantVectorStore, RetrievalMode, SparseEmbeddings
from langchain_vllm_embed import BM25SparseEmbeddings

from vllm_embed.ingest import point_id
from vllm_embed.sinks import Chunk, Manifest, QdrantSink
from vllm_embed.sparse import BM25Settings

TEXTS = {
    "crc": "Compute a checksum with zlib.crc32 over the bytes.",
    "fox": "The quick brown fox jumps over the lazy dog.",
    "json": "Parse JSON documents with json.loads and json.dumps.",
}
DIMENSIONS = 8


@pytest.fixture
def sink() -> QdrantSink:
    sink = QdrantSink("docs", location=":memory:", layout="langchain", hybrid=True)
    sink.prepare(Manifest(model="fake", dimensions=DIMENSIONS, layout="langchain"))
    chunks = [Chunk(id=point_id(key, 0), doc_id=key, chunk_index=0, text=text) for key, text in TEXTS.items()]
    vectors = np.random.default_rng(0).normal(size=(len(chunks), DIMENSIONS)).astype(np.float32)
    sink.upsert(chunks, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    return sink


def test_is_a_langchain_qdrant_sparse_embeddings_with_the_collections_settings(sink: QdrantSink) -> None:
    manifest = sink.read_manifest()
    assert manifest is not None
    sparse = BM25SparseEmbeddings.from_manifest(manifest, "docs")
    assert isinstance(sparse, SparseEmbeddings) and sparse.settings == BM25Settings()
    [document] = sparse.embed_documents(["zlib.crc32 checksum"])
    assert len(document.indices) == len(document.values) == 3
    with pytest.raises(ValueError, match="no BM25 sparse vectors"):
        BM25SparseEmbeddings.from_manifest(Manifest(model="fake", dimensions=DIMENSIONS), "dense")
    with pytest.raises(ValueError, match="extra"):
        BM25SparseEmbeddings(unknown=1)  # type: ignore[call-arg]


@pytest.mark.parametrize("mode", [RetrievalMode.SPARSE, RetrievalMode.HYBRID])
def test_langchain_qdrant_searches_the_collection_by_bm25(sink: QdrantSink, mode: RetrievalMode) -> None:
    store = QdrantVectorStore(
        client=sink.client,
        collection_name="docs",
        embedding=DeterministicFakeEmbedding(size=DIMENSIONS) if mode == RetrievalMode.HYBRID else None,
        sparse_embedding=BM25SparseEmbeddings(),
        retrieval_mode=mode,
    )
    # k = every point: each one is in the (random) dense list, so the one BM25 also finds ranks first
    [hit, *_] = store.similarity_search("zlib.crc32", k=len(TEXTS))
    assert hit.page_content == TEXTS["crc"] and hit.metadata["doc_id"] == "crc"
    store.add_texts(
        ["Adler-32 via zlib.adler32 is faster."], metadatas=[{"doc_id": "adler", "chunk_index": 0}]
    )
    assert [h.doc_id for h in sink.sparse_search("adler32", 2)] == ["adler"]  # LangChain writes BM25 too
