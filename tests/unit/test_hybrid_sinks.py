"""Hybrid (dense + BM25) collections on real embedded stores (Qdrant local mode, Milvus Lite).

The Fake embedder's vectors carry no meaning, so whatever a test finds by a word was found by BM25: Qdrant's
analyzer (qdrant_edge.Bm25) with the IDF modifier, or Milvus's own BM25 function. Retrieval quality with the
real engine is in tests/integration/test_hybrid_search.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ingest_fixtures import STORES, FakeHashEmbedder, dump_store, open_sink

from vllm_embed.ingest import Document, ingest, search
from vllm_embed.sinks import Manifest
from vllm_embed.sinks.base import BaseSink

DOCS = [
    Document("Compute a checksum with zlib.crc32 over the bytes.", id="crc", metadata={"lang": "py", "n": 1}),
    Document("The quick brown fox jumps over the lazy dog.", id="fox", metadata={"lang": "en", "n": 2}),
    Document("Running dogs ran faster than the running cats.", id="dogs", metadata={"lang": "en", "n": 3}),
    Document(
        "Parse JSON documents with json.loads and json.dumps.", id="json", metadata={"lang": "py", "n": 4}
    ),
    Document("Sorting lists in place with list.sort and a key function.", id="sort", metadata={"lang": "py"}),
]


@pytest.fixture(params=STORES)
def hybrid_sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseSink]:
    """A hybrid collection in each store holding `DOCS`."""
    with open_sink(request.param, tmp_path, hybrid=True) as sink:
        ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
        yield sink


def test_the_manifest_records_the_sparse_vectors_and_the_dense_layout_is_unchanged(
    hybrid_sink, tmp_path: Path
) -> None:
    manifest = hybrid_sink.read_manifest()
    assert manifest is not None and manifest.sparse == "bm25"
    dense = Manifest.from_description(FakeHashEmbedder().describe())
    assert (
        manifest.model_copy(
            update={
                "sparse": None,
                "sparse_vector": None,
                "sparse_analyzer": None,
                **dict.fromkeys(("splitter", "chunk_tokens", "chunk_overlap", "storage")),
            }
        )
        == dense
    )
    analyzer = manifest.sparse_analyzer or {}
    if hybrid_sink.__class__.__name__ == "QdrantSink":
        assert manifest.sparse_vector == "bm25"
        assert analyzer["encoder"] == "qdrant-edge-py" and analyzer["version"] and analyzer["language"]
        config = hybrid_sink.client.get_collection("docs").config.params
        assert config.sparse_vectors["bm25"].modifier.value == "idf"
        assert config.vectors.size == 8  # still the unnamed dense vector of the vllm-embed layout
    else:
        assert manifest.sparse_vector == "sparse" and analyzer["function"] == "BM25"
        assert analyzer["analysis"] == "qdrant-bm25-terms" and analyzer["fingerprint"]
        fields = {f["name"] for f in hybrid_sink.client.describe_collection("docs")["fields"]}
        assert fields == {"id", "vector", "text", "doc_id", "chunk_index", "metadata", "bm25_terms", "sparse"}
    points = dump_store(hybrid_sink)
    assert sorted(p["doc_id"] for p, _ in points.values()) == sorted(d.id for d in DOCS)


def test_search_modes_are_checked_against_the_collection(tmp_path: Path) -> None:
    fake = FakeHashEmbedder()
    with open_sink("qdrant", tmp_path) as dense_sink:
        ingest(DOCS[:2], embedder=fake, sink=dense_sink, progress=False)
        assert search("fox", embedder=fake, sink=dense_sink)[0].found_by == ("dense",)  # dense by default
        for mode in ("sparse", "hybrid"):
            with pytest.raises(ValueError, match=f"mode='{mode}' needs sparse vectors.*--hybrid"):
                search("fox", embedder=fake, sink=dense_sink, mode=mode)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="choose one of dense, sparse, hybrid"):
            search("fox", embedder=fake, sink=dense_sink, mode="bm25")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="candidates=2 must be at least top_k=3"):
            search("fox", embedder=fake, sink=dense_sink, top_k=3, candidates=2)
        with pytest.raises(ValueError, match="dense-only"):
            dense_sink.sparse_search("fox", 3)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kind", "layout"), [("qdrant", "llama-index"), ("milvus", "llama-index"), ("milvus", "langchain")]
)
def test_layouts_without_a_sparse_vector_refuse_hybrid(kind: str, layout: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"the {layout} layout stores no sparse .* leave out --hybrid"):
        open_sink(kind, tmp_path, layout=layout, hybrid=True)


def test_langchain_layout_on_qdrant_uses_langchain_qdrants_sparse_vector_name(tmp_path: Path) -> None:
    with open_sink("qdrant", tmp_path, layout="langchain", hybrid=True) as sink:
        ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
        config = sink.client.get_collection("docs").config.params
        assert set(config.sparse_vectors) == {"langchain-sparse"}
        hits = search("zlib.crc32", embedder=FakeHashEmbedder(), sink=sink, top_k=2)
        assert hits[0].doc_id == "crc" and hits[0].metadata == {"lang": "py", "n": 1}


def test_milvus_vectors_can_be_replaced_in_a_hybrid_collection(tmp_path: Path) -> None:
    with open_sink("milvus", tmp_path, hybrid=True) as sink:
        ingest(DOCS[:2], embedder=FakeHashEmbedder(), sink=sink, progress=False)
        ((point_id, vector), _) = next(sink.iter_vectors(10))  # type: ignore[attr-defined]
        sink.replace_vectors([point_id], -vector[None, :])  # type: ignore[attr-defined]
        assert dump_store(sink)[point_id][1][0] == pytest.approx(-vector[0])
        assert sink.sparse_search("zlib.crc32", 2)[0].doc_id == "crc"  # type: ignore[attr-defined]
