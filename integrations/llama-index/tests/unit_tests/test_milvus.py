"""`milvus_vector_store`: LlamaIndex's Milvus store on a collection it did not load itself (Milvus Lite)."""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_index.embeddings.vllm_embed import milvus_vector_store

pytest.importorskip("llama_index.vector_stores.milvus")


def test_a_released_collection_is_loaded_for_search(tmp_path: Path) -> None:
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores import VectorStoreQuery
    from llama_index.vector_stores.milvus import MilvusVectorStore

    uri = str(tmp_path / "milvus.db")
    writer = MilvusVectorStore(uri=uri, collection_name="docs", dim=2, use_async_client=False)
    writer.add(
        [TextNode(id_="a", text="a", embedding=[1.0, 0.0]), TextNode(id_="b", text="b", embedding=[0.0, 1.0])]
    )
    writer.client.release_collection("docs")  # as a new process finds it
    query = VectorStoreQuery(query_embedding=[0.0, 1.0], similarity_top_k=1)
    try:
        with pytest.raises(Exception, match="released"):  # upstream never loads an existing collection
            MilvusVectorStore(uri=uri, collection_name="docs", use_async_client=False).query(query)

        store = milvus_vector_store(uri, "docs", use_async_client=False)
        assert store.query(query).ids == ["b"]
    finally:
        writer.client.close()
