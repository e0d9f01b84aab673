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
from vllm_embed.sinks import Manifest, ManifestMismatchError
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
        fields = {f["name"] for f in hybrid_sink.client.describe_collection("docs")["fields"]}
        assert fields == {"id", "vector", "text", "doc_id", "chunk_index", "metadata", "sparse"}
    points = dump_store(hybrid_sink)
    assert sorted(p["doc_id"] for p, _ in points.values()) == sorted(d.id for d in DOCS)


def test_a_term_only_bm25_knows_ranks_first_in_hybrid_and_sparse_mode(hybrid_sink) -> None:
    fake = FakeHashEmbedder()
    hybrid = search("zlib.crc32", embedder=fake, sink=hybrid_sink, top_k=3)  # hybrid: the default
    assert hybrid[0].doc_id == "crc"
    assert set(hybrid[0].found_by) == {"dense", "sparse"}
    assert all("dense" in h.found_by for h in hybrid[1:])  # only one point holds the term

    sparse = search("zlib.crc32", embedder=fake, sink=hybrid_sink, top_k=3, mode="sparse")
    assert [h.doc_id for h in sparse] == ["crc"]
    assert sparse[0].found_by == ("sparse",) and sparse[0].score > 0  # a BM25 score

    dense = search("zlib.crc32", embedder=fake, sink=hybrid_sink, top_k=3, mode="dense")
    assert len(dense) == 3 and all(h.found_by == ("dense",) for h in dense)

    if hybrid_sink.__class__.__name__ == "QdrantSink":  # Milvus Lite does not stem (a server does)
        stemmed = search("run", embedder=fake, sink=hybrid_sink, top_k=2, mode="sparse")
        assert [h.doc_id for h in stemmed] == ["dogs"]  # "running" is stemmed to "run"
    fused = search("json", embedder=fake, sink=hybrid_sink, top_k=5, mode="hybrid", candidates=5)
    assert fused[0].doc_id == "json" and fused == sorted(fused, key=lambda h: -h.score)


def test_filters_apply_to_both_searches(hybrid_sink) -> None:
    fake = FakeHashEmbedder()
    hits = search("zlib.crc32 json", embedder=fake, sink=hybrid_sink, top_k=5, filter={"lang": "en"})
    assert {h.doc_id for h in hits} == {"fox", "dogs"}
    assert all(h.found_by == ("dense",) for h in hits)  # BM25 matches are all lang=py
    hits = search("zlib.crc32 json", embedder=fake, sink=hybrid_sink, top_k=5, mode="sparse", filter={"n": 4})
    assert [h.doc_id for h in hits] == ["json"]


def test_reruns_resume_and_a_shrunk_document_leaves_no_stale_bm25_terms(hybrid_sink) -> None:
    fake = FakeHashEmbedder()
    report = ingest(DOCS, embedder=fake, sink=hybrid_sink, progress=False)
    assert (report.embedded, report.skipped, fake.embedded) == (0, 5, [])
    before = dump_store(hybrid_sink)

    ingest(
        [Document("zlib.crc32 " + "padding words " * 40, id="long")],
        embedder=fake,
        sink=hybrid_sink,
        chunk_tokens=40,
        rechunk=True,
        progress=False,
    )
    assert hybrid_sink.count() > 6
    shrunk = Document("now about adler32 only", id="long")
    ingest([shrunk], embedder=fake, sink=hybrid_sink, chunk_tokens=40, progress=False)
    assert hybrid_sink.count() == 6
    sparse = search("zlib.crc32 padding", embedder=fake, sink=hybrid_sink, top_k=5, mode="sparse")
    assert [h.doc_id for h in sparse] == ["crc"]
    hybrid_sink.delete_chunks_from("long", 0)
    assert dump_store(hybrid_sink).keys() == before.keys()


def test_search_modes_are_checked_against_the_collection(tmp_path: Path) -> None:
    fake = FakeHashEmbedder()
    with open_sink("qdrant", tmp_path) as dense_sink:
        ingest(DOCS[:2], embedder=fake, sink=dense_sink, progress=False)
        assert search("fox", embedder=fake, sink=dense_sink)[0].found_by == ("dense",)  # dense by default
        for mode in ("sparse", "hybrid"):
            with pytest.raises(ValueError, match=f"mode='{mode}' needs BM25 vectors.*--hybrid"):
                search("fox", embedder=fake, sink=dense_sink, mode=mode)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="choose one of dense, sparse, hybrid"):
            search("fox", embedder=fake, sink=dense_sink, mode="bm25")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="candidates=2 must be at least top_k=3"):
            search("fox", embedder=fake, sink=dense_sink, top_k=3, candidates=2)
        with pytest.raises(ValueError, match="dense-only"):
            dense_sink.sparse_search("fox", 3)  # type: ignore[attr-defined]


def test_hybrid_must_match_the_existing_collection(tmp_path: Path) -> None:
    fake = FakeHashEmbedder()
    with open_sink("qdrant", tmp_path, collection="dense") as sink:
        ingest(DOCS[:1], embedder=fake, sink=sink, progress=False)
    with (
        open_sink("qdrant", tmp_path, collection="dense", hybrid=True) as sink,
        pytest.raises(ManifestMismatchError, match=r"dense-only.*new collection"),
    ):
        ingest(DOCS[:1], embedder=fake, sink=sink, progress=False)
    with open_sink("qdrant", tmp_path, collection="hybrid", hybrid=True) as sink:
        ingest(DOCS[:1], embedder=fake, sink=sink, progress=False)
    with (
        open_sink("qdrant", tmp_path, collection="hybrid", hybrid=False) as sink,
        pytest.raises(ManifestMismatchError, match="is hybrid"),
    ):
        ingest(DOCS[1:2], embedder=fake, sink=sink, progress=False)
    with open_sink("qdrant", tmp_path, collection="hybrid") as sink:  # hybrid=None follows the collection
        ingest(DOCS[1:2], embedder=fake, sink=sink, progress=False)
        assert [h.doc_id for h in search("fox", embedder=fake, sink=sink, mode="sparse")] == ["fox"]


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


def test_a_rewritten_manifest_keeps_the_collections_sparse_settings(hybrid_sink) -> None:
    stored = hybrid_sink.read_manifest()
    hybrid_sink.write_manifest(Manifest.from_description(FakeHashEmbedder().describe()))
    unchunked = stored.model_copy(
        update=dict.fromkeys(("splitter", "chunk_tokens", "chunk_overlap", "storage"))
    )
    assert hybrid_sink.read_manifest() == unchunked  # the repair records no chunking nor storage settings
    hits = search("zlib.crc32", embedder=FakeHashEmbedder(), sink=hybrid_sink, top_k=1, mode="sparse")
    assert [h.doc_id for h in hits] == ["crc"]
