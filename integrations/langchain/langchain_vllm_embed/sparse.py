"""`BM25SparseEmbeddings`: vllm-embed's BM25 encoder as a langchain-qdrant `SparseEmbeddings`."""

from __future__ import annotations

from typing import Any

from langchain_qdrant import SparseEmbeddings, SparseVector
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from vllm_embed.sinks.base import Manifest
from vllm_embed.sparse import BM25Encoder, BM25Settings


class BM25SparseEmbeddings(BaseModel, SparseEmbeddings):
    """BM25 sparse vectors with Qdrant's analyzer (`qdrant_edge.Bm25`), as `ingest --hybrid` stores them.

    Give it to langchain-qdrant's `QdrantVectorStore` (`sparse_embedding=`, `RetrievalMode.HYBRID`) to
    search (and extend) a collection ingested with `--layout langchain --hybrid`: the collection's sparse
    vector `langchain-sparse` has Qdrant's IDF modifier, so these term weights score as BM25. Build it with
    `from_manifest` to use the analyzer settings the collection records.

    Example:
        >>> from langchain_qdrant import QdrantVectorStore, RetrievalMode
        >>> from langchain_vllm_embed import BM25SparseEmbeddings, VLLMEmbeddings
        >>> store = QdrantVectorStore.from_existing_collection(
        ...     collection_name="docs",
        ...     path="./qdrant_data",
        ...     embedding=VLLMEmbeddings(model="sentence-transformers/all-MiniLM-L6-v2"),
        ...     sparse_embedding=BM25SparseEmbeddings(),
        ...     retrieval_mode=RetrievalMode.HYBRID,
        ... )

    Raises:
        MissingDependencyError: At construction, if qdrant-edge-py is not installed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    settings: BM25Settings = Field(default_factory=BM25Settings)
    """Analyzer and BM25 parameters; the defaults are what `--hybrid` uses."""

    _encoder: BM25Encoder = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        """Builds the encoder (a bad setting fails here, not at the first query)."""
        self._encoder = BM25Encoder(self.settings)

    @classmethod
    def from_manifest(cls, manifest: Manifest, collection: str = "") -> BM25SparseEmbeddings:
        """Returns the encoder a hybrid Qdrant collection records in its manifest.

        Args:
            manifest: The collection's manifest, e.g. `QdrantSink("docs", path=...).read_manifest()`.
            collection: Collection name, for error messages.

        Raises:
            ValueError: If the collection has no client-side BM25 vectors.
            SparseAnalyzerError: If the installed qdrant-edge-py may tokenize otherwise than the recorded one.
        """
        if not manifest.sparse or not manifest.sparse_analyzer or "encoder" not in manifest.sparse_analyzer:
            raise ValueError(
                f"collection {collection!r} has no BM25 sparse vectors made client-side: ingest it into "
                "Qdrant with --hybrid"
            )
        encoder = BM25Encoder.from_manifest(manifest.sparse_analyzer, collection)
        return cls(settings=encoder.settings)

    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        """Returns the BM25 term weights of each document."""
        return [
            SparseVector(indices=v.indices, values=v.values) for v in self._encoder.embed_documents(texts)
        ]

    def embed_query(self, text: str) -> SparseVector:
        """Returns the query's sparse vector: weight 1 for each distinct token."""
        vector = self._encoder.embed_query(text)
        return SparseVector(indices=vector.indices, values=vector.values)
