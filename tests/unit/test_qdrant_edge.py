"""`QdrantEdgeSink` on Qdrant's real engine in-process (qdrant-edge-py): every sink feature, the storage plan
(quantization with rescoring, HNSW, on-disk, payload indexes) read back from the engine, adoption, locking.

Collections are small and made with `indexing_threshold_kb=1`, so the engine's optimizer builds HNSW graphs
and quantized vectors for them too (by default it only indexes segments above 10 MB of vectors).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import qdrant_edge as qe
from ingest_fixtures import FakeHashEmbedder, open_sink

from vllm_embed.errors import StorageSettingsError, StoreBusyError, UnmanagedCollectionError
from vllm_embed.ingest import ingest
from vllm_embed.sinks import (
    Chunk,
    HybridSink,
    Manifest,
    ManifestMismatchError,
    QdrantEdgeSink,
    VerifiableSink,
)
from vllm_embed.sinks.layouts import LAYOUTS
from vllm_embed.sinks.qdrant.edge import MANIFEST_FILE

DIM = 32


def documents(n: int = 12) -> list[dict[str, Any]]:
    return [
        {
            "id": f"doc-{i}",
            "text": f"note {i}: the {'zebra' if i == 3 else 'horse'} runs across field {i}",
            "metadata": {
                "lang": "en" if i % 2 else "de",
                "year": 2000 + i % 3,
                "score": 0.5 * (i % 2),
                "ok": i > 5,
            },
        }
        for i in range(n)
    ]


def random_chunks(n: int, seed: int = 0) -> tuple[list[Chunk], np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [
        Chunk(id=str(uuid.UUID(int=i + 1)), doc_id=f"d{i // 4}", chunk_index=i % 4, text=f"t{i}")
        for i in range(n)
    ]
    return chunks, vectors


def manifest(dimensions: int = DIM, **update: Any) -> Manifest:
    return Manifest(model="fake-model", dimensions=dimensions, **update)


def recall_at(sink: QdrantEdgeSink, vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :k]
    found = 0
    for query, truth in zip(queries, exact, strict=True):
        ids = {h.id for h in sink.search(query, k)}
        found += len(ids & {str(uuid.UUID(int=int(i) + 1)) for i in truth})
    return found / (k * len(queries))


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_ingest_search_filter_delete_and_resume_in_every_layout(layout: str, tmp_path: Path) -> None:
    fake = FakeHashEmbedder()
    with open_sink("qdrant-edge", tmp_path, layout=layout) as sink:
        assert isinstance(sink, VerifiableSink) and isinstance(sink, HybridSink)
        assert sink.read_manifest() is None
        report = ingest(documents(), embedder=fake, sink=sink, progress=False)
        assert (report.embedded, sink.count()) == (12, 12)
        assert (tmp_path / "qdrant-edge" / "docs" / MANIFEST_FILE).is_file()

        query = fake.embed_query("note 3: the zebra runs across field 3")
        top = sink.search(query, 3)
        assert (top[0].doc_id, top[0].chunk_index, top[0].found_by) == ("doc-3", 0, ("dense",))
        assert top[0].score == pytest.approx(1.0, abs=1e-5)
        assert top[0].metadata == {"lang": "en", "year": 2000, "score": 0.5, "ok": False}
        for condition in ({"lang": "de"}, {"year": 2001}, {"score": 0.5}, {"ok": True}):
            hits = sink.search(query, 12, filter=condition)
            expected = {
                d["id"] for d in documents() if all(d["metadata"][k] == v for k, v in condition.items())
            }
            assert {h.doc_id for h in hits} == expected, condition

        assert sink.fetch_texts([top[0].id, str(uuid.uuid4())]) == {top[0].id: top[0].text}
        sink.delete_chunks_from("doc-3", 0)
        assert sink.count() == 11 and "doc-3" not in {h.doc_id for h in sink.search(query, 12)}

    with open_sink("qdrant-edge", tmp_path) as sink:  # the layout comes from the manifest
        assert sink.layout.name == layout
        report = ingest(documents(), embedder=fake, sink=sink, progress=False)
        assert (report.embedded, report.skipped, sink.count()) == (1, 11, 12)


@pytest.mark.parametrize("quantization", ["int8", "binary"])
def test_quantized_collections_are_built_and_searched_with_rescoring(
    quantization: str, tmp_path: Path
) -> None:
    chunks, vectors = random_chunks(600)
    queries = random_chunks(20, seed=1)[1]
    by_id = {c.id: v for c, v in zip(chunks, vectors, strict=True)}
    root = tmp_path / "edge"
    with QdrantEdgeSink("q", path=root, quantization=quantization, indexing_threshold_kb=1) as sink:
        sink.prepare(manifest())
        sink.upsert(chunks, vectors)
    with QdrantEdgeSink("q", path=root, ef=128) as sink:  # settings left out follow the collection
        info = sink.info()
        assert info.storage["quantization"] == quantization
        assert {"index": "hnsw", "quantization": quantization} in [
            {k: s[k] for k in ("index", "quantization")} for s in info.storage["segments"]
        ], info.storage["segments"]
        recall = recall_at(sink, vectors, queries)
        hits = sink.search(queries[0], 5)  # rescored: the scores are the float32 cosine similarities
        np.testing.assert_allclose(
            [h.score for h in hits], [by_id[h.id] @ queries[0] for h in hits], atol=1e-4
        )
    if quantization == "int8":
        assert recall >= 0.9
        return
    # 32-dimensional binary codes are coarse: recall grows with the candidates rescored (the default
    # oversampling for binary is 2), which shows the search settings reach the engine.
    with QdrantEdgeSink("q", path=root, oversampling=1.0) as sink:
        assert recall_at(sink, vectors, queries) < recall
    with QdrantEdgeSink("q", path=root, oversampling=8.0) as sink:
        assert recall_at(sink, vectors, queries) > recall
    with QdrantEdgeSink("q", path=root, rescore=False) as sink:
        unrescored = sink.search(queries[0], 5)
        assert any(abs(h.score - by_id[h.id] @ queries[0]) > 1e-3 for h in unrescored)


def test_hnsw_settings_on_disk_and_payload_indexes_are_read_back_from_the_engine(tmp_path: Path) -> None:
    chunks, vectors = random_chunks(300)
    with QdrantEdgeSink(
        "h",
        path=tmp_path,
        layout="langchain",
        on_disk=True,
        hnsw_m=8,
        hnsw_ef_construct=32,
        index_fields=["lang", "year:integer"],
        indexing_threshold_kb=1,
    ) as sink:
        sink.prepare(manifest(layout="langchain"))
        sink.upsert(chunks, vectors)
        assert sink.optimize() is True
        info = sink.info()
    assert (info.points, info.dimensions, info.distance) == (300, DIM, "cosine")
    assert info.payload_indexes == {
        "metadata.doc_id": "keyword",
        "metadata.lang": "keyword",
        "metadata.year": "integer",
    }
    assert (info.storage["on_disk"], info.storage["hnsw_m"], info.storage["hnsw_ef_construct"]) == (
        True,
        8,
        32,
    )
    indexed = [s for s in info.storage["segments"] if s["index"] == "hnsw"]
    assert indexed and all((s["m"], s["ef_construct"]) == (8, 32) for s in indexed)
    assert all("InRam" not in s["storage_type"] for s in indexed)  # memory-mapped, not loaded
    assert info.disk_bytes is not None and info.disk_bytes > vectors.nbytes
    assert info.manifest is not None and info.manifest.storage == {
        "quantization": None,
        "on_disk": True,
        "hnsw_m": 8,
        "hnsw_ef_construct": 32,
        "shard_number": None,
        "replication_factor": None,
        "index_fields": ["lang:keyword", "year:integer"],
    }


def test_storage_settings_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(StorageSettingsError, match="single shard"):
        QdrantEdgeSink("c", path=tmp_path, shard_number=2)
    with pytest.raises(StorageSettingsError, match="quantization"):
        QdrantEdgeSink("c", path=tmp_path, quantization="int4")
    with pytest.raises(StorageSettingsError, match="oversampling"):
        QdrantEdgeSink("c", path=tmp_path, oversampling=0.5)
    with pytest.raises(ValueError, match="must not start with"):
        QdrantEdgeSink("../c", path=tmp_path)
    with (
        open_sink("qdrant-edge", tmp_path, index_fields=['a"b']) as sink,
        pytest.raises(ValueError, match="cannot filter on a key containing"),
    ):
        ingest(["one"], embedder=FakeHashEmbedder(), sink=sink, progress=False)
    assert not (tmp_path / "qdrant-edge").exists() or list((tmp_path / "qdrant-edge").iterdir()) == []
    fake = FakeHashEmbedder()
    with open_sink("qdrant-edge", tmp_path, quantization="int8") as sink:
        ingest(["one", "two"], embedder=fake, sink=sink, progress=False)
    with open_sink("qdrant-edge", tmp_path, quantization="binary") as sink:
        with pytest.raises(
            ManifestMismatchError, match="quantization: collection has 'int8', this run asks for 'binary'"
        ):
            ingest(["three"], embedder=fake, sink=sink, progress=False)
        assert sink.count() == 2
    with open_sink("qdrant-edge", tmp_path, index_fields=["lang"]) as sink:  # a new index field is added
        report = ingest(["one", "two", "three"], embedder=fake, sink=sink, progress=False)
        assert (report.embedded, report.skipped) == (1, 2)
        assert "metadata.lang" in sink.info().payload_indexes
        stored = sink.read_manifest()
        assert stored is not None and stored.storage is not None
        assert (stored.storage["quantization"], stored.storage["index_fields"]) == ("int8", ["lang:keyword"])


def raw_shard(directory: Path, dimensions: int, name: str = "") -> None:
    """A collection someone made with qdrant-edge itself (no vllm-embed manifest)."""
    config = qe.EdgeConfig(vectors={name: qe.EdgeVectorParams(size=dimensions, distance=qe.Distance.Cosine)})
    shard = qe.EdgeShard.create(str(directory), config)
    shard.update(
        qe.UpdateOperation.upsert_points([qe.Point(str(uuid.uuid4()), {name: [1.0] * dimensions}, {})])
    )
    shard.close()


def test_a_shard_made_elsewhere_is_adopted_when_it_fits_and_refused_when_not(tmp_path: Path) -> None:
    raw_shard(tmp_path / "theirs", 8)
    fake = FakeHashEmbedder()
    with (
        QdrantEdgeSink("theirs", path=tmp_path) as sink,
        pytest.raises(UnmanagedCollectionError, match="--adopt"),
    ):
        ingest(["one"], embedder=fake, sink=sink, progress=False)
    with QdrantEdgeSink("theirs", path=tmp_path, adopt=True) as sink:
        unmanaged = sink.info()  # listed as it is, without a manifest
        assert (unmanaged.manifest, unmanaged.points, unmanaged.dimensions) == (None, 1, 8)
        with pytest.raises(ManifestMismatchError, match="vector size: collection has 8, this run has 16"):
            ingest(["one"], embedder=FakeHashEmbedder(dimension=16), sink=sink, progress=False)
        assert not (tmp_path / "theirs" / MANIFEST_FILE).exists()
        ingest(["one", "two"], embedder=fake, sink=sink, progress=False)
        assert sink.count() == 3
        info = sink.info()
    assert info.manifest is not None and info.manifest.adopted
    assert info.manifest.storage is not None and info.manifest.storage["quantization"] is None
    assert info.payload_indexes == {"doc_id": "keyword"}
    with QdrantEdgeSink("theirs", path=tmp_path) as sink:  # adopted for good
        assert sink.read_manifest() == info.manifest

    raw_shard(tmp_path / "named", 8, name="other")
    with (
        QdrantEdgeSink("named", path=tmp_path, adopt=True) as sink,
        pytest.raises(ManifestMismatchError, match="no dense vector where the vllm-embed layout keeps it"),
    ):
        ingest(["one"], embedder=fake, sink=sink, progress=False)


def test_one_sink_at_a_time_per_collection(tmp_path: Path) -> None:
    fake = FakeHashEmbedder()
    with open_sink("qdrant-edge", tmp_path) as sink:
        ingest(["one"], embedder=fake, sink=sink, progress=False)
        with pytest.raises(StoreBusyError, match=r"is open elsewhere \(PID [0-9]+: this process\)"):
            open_sink("qdrant-edge", tmp_path)
        other = sink.for_collection("other")
        with other:
            ingest(["two", "three"], embedder=fake, sink=other, progress=False)
            assert other.count() == 2 and sink.collection_names() == ["docs", "other"]
    with open_sink("qdrant-edge", tmp_path) as sink:
        assert sink.count() == 1
