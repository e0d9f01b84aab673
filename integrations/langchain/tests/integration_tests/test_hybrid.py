"""LangChain's own hybrid retrieval (langchain-qdrant) over a collection `ingest --hybrid` wrote."""

from __future__ import annotations

from pathlib import Path

from langchain_qdrant import QdrantVectorStore, RetrievalMode
from langchain_vllm_embed import BM25SparseEmbeddings, VLLMEmbeddings

from vllm_embed import Document, Embedder, ingest, search
from vllm_embed.sinks import QdrantSink

CORPUS = {
    "theory": "Cyclic redundancy checks detect accidental corruption of data blocks on disk.",
    "hashes": "Checksums and hash digests let a download be verified against tampering.",
    "writer": "The storage writer calls zlib.crc32 on every block before it is flushed.",
    "parity": "Parity bits and checksums catch single-bit errors in memory and on networks.",
    "coffee": "Espresso is brewed by forcing hot water through ground coffee.",
}


def test_langchain_hybrid_qdrant_vector_store_reads_an_ingested_collection(
    minilm_embedder: Embedder, tmp_path: Path
) -> None:
    documents = [Document(text, id=key, metadata={"key": key}) for key, text in CORPUS.items()]
    with QdrantSink("docs", path=str(tmp_path / "qdrant"), layout="langchain", hybrid=True) as sink:
        ingest(documents, embedder=minilm_embedder, sink=sink, progress=False)
        manifest = sink.read_manifest()
        assert manifest is not None
        store = QdrantVectorStore(
            client=sink.client,
            collection_name="docs",
            embedding=VLLMEmbeddings(embedder=minilm_embedder),
            sparse_embedding=BM25SparseEmbeddings.from_manifest(manifest, "docs"),
            retrieval_mode=RetrievalMode.HYBRID,
        )
        hits = store.similarity_search("zlib.crc32", k=3)
        assert hits[0].metadata["key"] == "writer" and hits[0].page_content == CORPUS["writer"]
        filtered = store.similarity_search("checksum", k=5, filter=_key_filter("coffee"))
        assert [h.metadata["key"] for h in filtered] == ["coffee"]

        store.add_texts(["Adler-32, zlib.adler32, is a faster checksum."], metadatas=[{"key": "adler"}])
        ours = search("zlib.adler32", embedder=minilm_embedder, sink=sink, top_k=1)
        assert ours[0].metadata == {"key": "adler"} and "sparse" in ours[0].found_by


def _key_filter(key: str):  # type: ignore[no-untyped-def]
    from qdrant_client import models

    return models.Filter(must=[models.FieldCondition(key="metadata.key", match=models.MatchValue(value=key))])
