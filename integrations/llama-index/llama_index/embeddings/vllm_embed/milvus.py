"""`milvus_vector_store`: LlamaIndex's `MilvusVectorStore` on an existing collection, loaded for search."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vllm_embed import MissingDependencyError

if TYPE_CHECKING:
    from llama_index.vector_stores.milvus import MilvusVectorStore


def milvus_vector_store(uri: str, collection_name: str, **kwargs: Any) -> MilvusVectorStore:
    """Opens LlamaIndex's `MilvusVectorStore` on a collection and loads the collection for search.

    `MilvusVectorStore` never loads a collection that already exists, so on a collection written by another
    process (`vllm-embed ingest --layout llama-index --milvus …`, or LlamaIndex itself) its first query fails
    with "Collection is in state 'released'". This opens the store and calls
    `store.client.load_collection(collection_name)`, which is harmless when the collection is loaded already.

    Example:
        >>> from llama_index.core import VectorStoreIndex
        >>> store = milvus_vector_store("./milvus.db", "docs")
        >>> index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)

    Args:
        uri: Milvus Lite file or Milvus server URI.
        collection_name: The collection to open.
        **kwargs: Other `MilvusVectorStore` arguments (`token`, `dim` for a new collection, …).

    Returns:
        The store, its collection loaded.

    Raises:
        MissingDependencyError: If `llama-index-vector-stores-milvus` is not installed.
    """
    try:
        from llama_index.vector_stores.milvus import MilvusVectorStore
    except ImportError as exc:
        raise MissingDependencyError(
            "milvus_vector_store needs LlamaIndex's Milvus vector store, which is not installed or failed to "
            f"import ({exc}). Install it with:  pip install llama-index-vector-stores-milvus"
        ) from exc
    store = MilvusVectorStore(uri=uri, collection_name=collection_name, **kwargs)
    store.client.load_collection(collection_name)
    return store
