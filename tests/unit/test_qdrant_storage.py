"""Storage plans on `QdrantSink`: creation and search settings, payload indexes, adopting, `info()`.

A Qdrant server's side is checked through `qdrant_stub.QdrantStub`, which records the requests qdrant-client
sends (the points live in a local-mode store behind it); local mode itself is the real qdrant-client one.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ingest_fixtures import FakeHashEmbedder
from qdrant_client.http import models
from qdrant_stub import QdrantStub, qdrant_stub

from vllm_embed.errors import UnmanagedCollectionError
from vllm_embed.ingest import Document, ingest, search
from vllm_embed.sinks import Manifest, ManifestMismatchError, QdrantSink
from vllm_embed.sinks.base import CollectionNotFoundError
from vllm_embed.sinks.storage import QdrantCollectionSettings, StorageSettingsError

DOCS = [
    Document("Compute a checksum with zlib.crc32 over the bytes.", id="crc", metadata={"lang": "py"}),
    Document("The quick brown fox jumps over the lazy dog.", id="fox", metadata={"lang": "en"}),
    Document("Parse JSON documents with json.loads.", id="json", metadata={"lang": "py", "year": 2024}),
]
DEFAULTS = QdrantCollectionSettings().model_dump()
DIMENSIONS = FakeHashEmbedder().describe()["dimensions"]


@pytest.fixture
def stub() -> Iterator[QdrantStub]:
    with qdrant_stub() as server:
        yield server


def server_sink(stub: QdrantStub, collection: str = "docs", **kwargs: Any) -> QdrantSink:
    return QdrantSink(collection, url=stub.url, max_attempts=1, check_compatibility=False, **kwargs)


def fake_manifest(**update: Any) -> Manifest:
    return Manifest.from_description(FakeHashEmbedder().describe()).model_copy(update=update)


# -- creation settings on a server ---------------------------------------------------------------------


def test_a_server_collection_is_created_with_the_settings_and_its_payload_indexes(stub: QdrantStub) -> None:
    settings = {
        "quantization": "int8",
        "on_disk": True,
        "hnsw_m": 32,
        "hnsw_ef_construct": 200,
        "shard_number": 2,
        "replication_factor": 3,
    }
    with server_sink(stub, index_fields=["lang", "year:integer"], **settings) as sink:
        ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
        manifest = sink.read_manifest()
        info = sink.info()

    [create] = stub.calls("PUT", "/collections/docs")
    body = create.body
    assert body["vectors"] == {"size": DIMENSIONS, "distance": "Cosine", "on_disk": True}
    assert body["quantization_config"] == {"scalar": {"type": "int8", "always_ram": True}}
    assert body["hnsw_config"] == {"m": 32, "ef_construct": 200}
    assert (body["shard_number"], body["replication_factor"]) == (2, 3)
    indexes = [
        (r.body["field_name"], r.body["field_schema"]) for r in stub.calls("PUT", "/collections/docs/index")
    ]
    assert indexes == [("doc_id", "keyword"), ("metadata.lang", "keyword"), ("metadata.year", "integer")]
    first_index = stub.requests.index(stub.calls("PUT", "/collections/docs/index")[0])
    assert (
        stub.requests.index(create)
        < first_index
        < stub.requests.index(stub.calls("PUT", "/collections/docs/points")[0])
    )

    assert manifest is not None
    assert manifest.storage == {**settings, "index_fields": ["lang:keyword", "year:integer"]}
    assert info.storage == settings  # read back from the collection's config
    assert info.payload_indexes == {
        "doc_id": "keyword",
        "metadata.lang": "keyword",
        "metadata.year": "integer",
    }
    assert (info.points, info.dimensions, info.distance, info.disk_bytes) == (3, DIMENSIONS, "cosine", None)


def test_a_default_server_collection_sends_no_storage_settings(stub: QdrantStub) -> None:
    with server_sink(stub) as sink:
        ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
        search("fox", embedder=FakeHashEmbedder(), sink=sink, top_k=2)
        assert sink.read_manifest().storage == {**DEFAULTS, "index_fields": []}
    [create] = stub.calls("PUT", "/collections/docs")
    assert create.body["vectors"] == {"size": DIMENSIONS, "distance": "Cosine"}
    assert not {"quantization_config", "hnsw_config", "shard_number"} & set(create.body)
    assert [r.body["field_name"] for r in stub.calls("PUT", "/collections/docs/index")] == ["doc_id"]
    [query] = stub.calls("POST", "/collections/docs/points/query")
    assert "params" not in query.body


@pytest.mark.parametrize(
    ("settings", "params"),
    [
        ({"quantization": "int8"}, {"quantization": {"rescore": True}}),
        ({"quantization": "int8", "ef": 128}, {"hnsw_ef": 128, "quantization": {"rescore": True}}),
        ({"quantization": "binary"}, {"quantization": {"rescore": True, "oversampling": 2.0}}),
        (
            {"quantization": "binary", "rescore": False, "oversampling": 4.0},
            {"quantization": {"rescore": False, "oversampling": 4.0}},
        ),
        ({"ef": 32}, {"hnsw_ef": 32}),
    ],
)
def test_searches_carry_the_search_settings_for_the_collections_quantization(
    stub: QdrantStub, settings: dict[str, Any], params: dict[str, Any]
) -> None:
    quantization = {key: settings.pop(key) for key in ("quantization",) if key in settings}
    with server_sink(stub, **quantization) as sink:
        ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
    # a new sink, without the creation settings: the quantization comes from the collection's manifest
    with server_sink(stub, **settings) as sink:
        hits = search("fox", embedder=FakeHashEmbedder(), sink=sink, top_k=2, filter={"lang": "en"})
    assert [h.doc_id for h in hits] == ["fox"]
    [query] = stub.calls("POST", "/collections/docs/points/query")
    assert query.body["params"] == params


def test_the_dense_half_of_a_hybrid_search_carries_the_search_settings(stub: QdrantStub) -> None:
    with server_sink(stub, hybrid=True, quantization="binary", ef=50) as sink:
        ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
        hits = search("zlib crc32", embedder=FakeHashEmbedder(), sink=sink, top_k=1, mode="hybrid")
    assert hits[0].doc_id == "crc"
    # one request for both candidate lists, fused client-side: no other search (found_by comes from them)
    [batch] = stub.calls("POST", "/collections/docs/points/query/batch")
    assert stub.calls("POST", "/collections/docs/points/query") == []
    dense, sparse = batch.body["searches"]
    assert dense["params"] == {"hnsw_ef": 50, "quantization": {"rescore": True, "oversampling": 2.0}}
    assert "params" not in sparse and "prefetch" not in dense


def test_resume_and_re_run_work_on_a_quantized_server_collection(stub: QdrantStub) -> None:
    with server_sink(stub, quantization="binary", index_fields=["lang"]) as sink:
        ingest(DOCS[:2], embedder=FakeHashEmbedder(), sink=sink, progress=False)
    fake = FakeHashEmbedder()
    with server_sink(stub, quantization="binary", index_fields=["lang"]) as sink:
        report = ingest(DOCS, embedder=fake, sink=sink, progress=False)
        assert (report.skipped, report.written, sink.count()) == (2, 1, 3)
        again = ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
        assert (again.skipped, again.embedded) == (3, 0)
    assert len(stub.calls("PUT", "/collections/docs")) == 1
    assert len(stub.calls("PUT", "/collections/docs/index")) == 2  # doc_id and lang, once each


# -- existing collections ------------------------------------------------------------------------------


def test_differing_creation_settings_are_refused_before_anything_is_written(stub: QdrantStub) -> None:
    with server_sink(stub, quantization="int8", hnsw_m=32) as sink:
        ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
    seen = len(stub.requests)
    with (
        server_sink(stub, quantization="binary", hnsw_m=32) as sink,
        pytest.raises(
            ManifestMismatchError, match="quantization: collection has 'int8', this run asks for 'binary'"
        ),
    ):
        ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
    assert [r.method for r in stub.requests[seen:] if r.method not in ("GET",)] == []
    with (
        server_sink(stub, hnsw_ef_construct=64) as sink,
        pytest.raises(ManifestMismatchError, match="hnsw_ef_construct"),
    ):
        sink.prepare(fake_manifest())
    with server_sink(stub) as sink:  # settings left out follow the collection
        report = ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
        assert report.skipped == 3


def test_a_manifest_without_storage_settings_is_checked_against_the_collections_config(
    stub: QdrantStub,
) -> None:
    with server_sink(stub, quantization="int8") as sink:
        ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
        # as a repaired manifest (or one from before storage settings were recorded)
        sink.write_manifest(sink.read_manifest().model_copy(update={"storage": None}))
        assert sink.read_manifest().storage is None
    with server_sink(stub, quantization="int8") as sink:
        assert ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False).skipped == 3
    with (
        server_sink(stub, quantization="binary") as sink,
        pytest.raises(
            ManifestMismatchError, match="quantization: collection has 'int8', this run asks for 'binary'"
        ),
    ):
        sink.prepare(fake_manifest())


def test_index_fields_are_added_to_an_existing_collection_and_its_manifest(stub: QdrantStub) -> None:
    with server_sink(stub) as sink:
        ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
    with server_sink(stub, index_fields=["year:integer"]) as sink:
        ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
        assert sink.read_manifest().storage["index_fields"] == ["year:integer"]
    with server_sink(stub, index_fields=["lang"]) as sink:
        sink.prepare(fake_manifest())
        assert sink.read_manifest().storage["index_fields"] == ["year:integer", "lang:keyword"]
        assert sink.info().payload_indexes == {
            "doc_id": "keyword",
            "metadata.year": "integer",
            "metadata.lang": "keyword",
        }
    seen = len(stub.requests)
    with (
        server_sink(stub, index_fields=["year:float"]) as sink,
        pytest.raises(
            ManifestMismatchError, match="'year': collection indexes it as integer, this run asks for float"
        ),
    ):
        sink.prepare(fake_manifest())
    assert [r.method for r in stub.requests[seen:] if r.method != "GET"] == []
    fields = [r.body["field_name"] for r in stub.calls("PUT", "/collections/docs/index")]
    assert fields == ["doc_id", "metadata.year", "metadata.lang"]


def test_an_index_field_qdrant_cannot_key_is_refused_before_the_collection_exists(stub: QdrantStub) -> None:
    with server_sink(stub, index_fields=['say "hi"']) as sink:
        with pytest.raises(ValueError, match="key containing"):
            sink.prepare(fake_manifest())
        assert sink.read_manifest() is None
    assert stub.calls("PUT", "/collections/docs") == []


def test_a_collection_from_before_payload_indexes_gets_its_doc_id_index(stub: QdrantStub) -> None:
    with server_sink(stub) as sink:
        sink.prepare(fake_manifest())
    stub._collections["docs"].payload_schema.clear()  # as made by an older vllm-embed
    with server_sink(stub) as sink:
        sink.prepare(fake_manifest())
        assert sink.info().payload_indexes == {"doc_id": "keyword"}


# -- local mode ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"quantization": "int8"},
        {"on_disk": True},
        {"hnsw_m": 8, "hnsw_ef_construct": 50},
        {"shard_number": 2},
    ],
)
def test_local_mode_refuses_creation_settings_naming_the_real_engine(
    tmp_path: Path, settings: dict[str, Any]
) -> None:
    path = tmp_path / "q"
    given = ", ".join(f"{k}={v!r}" for k, v in settings.items())
    for target in ({"path": str(path)}, {"location": ":memory:"}):
        with pytest.raises(
            StorageSettingsError, match=f"cannot apply {given}.*QdrantEdgeSink.*--qdrant-edge DIR"
        ):
            QdrantSink("docs", **target, **settings)
    with QdrantSink("docs", path=str(path)) as sink:  # the refused sink released the store's lock
        assert sink.collection_names() == []
        with pytest.raises(StorageSettingsError, match="QdrantEdgeSink"):
            QdrantSink("docs", client=sink.client, **settings)


def test_invalid_settings_name_what_is_accepted() -> None:
    with pytest.raises(StorageSettingsError, match="quantization: Input should be 'int8' or 'binary'"):
        QdrantSink("docs", location=":memory:", quantization="int4")  # type: ignore[arg-type]
    with pytest.raises(StorageSettingsError, match="ef: Input should be greater than or equal to 1"):
        QdrantSink("docs", location=":memory:", ef=0)
    with pytest.raises(ValueError, match="index field 'year:int'"):
        QdrantSink("docs", location=":memory:", index_fields=["year:int"])


def test_local_mode_records_index_fields_without_creating_indexes_or_warnings(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # what local mode warns with
        with QdrantSink(
            "docs", path=str(tmp_path / "q"), index_fields=["lang"], ef=64, oversampling=3.0
        ) as sink:
            ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
            hits = search("fox", embedder=FakeHashEmbedder(), sink=sink, top_k=1, filter={"lang": "en"})
            assert [h.doc_id for h in hits] == ["fox"]  # search settings: accepted, no effect
            assert sink.read_manifest().storage == {**DEFAULTS, "index_fields": ["lang:keyword"]}
        with QdrantSink("docs", path=str(tmp_path / "q"), index_fields=["year:integer"]) as sink:
            sink.prepare(fake_manifest())
            assert sink.read_manifest().storage["index_fields"] == ["lang:keyword", "year:integer"]
            info = sink.info()
            files = [f for f in (tmp_path / "q" / "collection" / "docs").rglob("*") if f.is_file()]
            assert info.disk_bytes == sum(f.stat().st_size for f in files) > 0
    assert info.payload_indexes == {}
    assert info.storage["quantization"] is None and info.points == 3


# -- adopting ------------------------------------------------------------------------------------------


def test_a_collection_without_manifest_is_refused_unless_adopted(tmp_path: Path) -> None:
    with QdrantSink("docs", path=str(tmp_path / "q")) as sink:
        sink.client.create_collection(
            "theirs", vectors_config=models.VectorParams(size=DIMENSIONS, distance=models.Distance.COSINE)
        )
        theirs = QdrantSink("theirs", client=sink.client, index_fields=["lang"])
        with pytest.raises(UnmanagedCollectionError, match=r"no vllm-embed manifest.*--adopt \(adopt=True\)"):
            ingest(DOCS, embedder=FakeHashEmbedder(), sink=theirs, progress=False)
        info = theirs.info()
        assert (info.manifest, info.dimensions, info.distance, info.points) == (None, DIMENSIONS, "cosine", 0)

        adopted = QdrantSink("theirs", client=sink.client, index_fields=["lang"], adopt=True)
        report = ingest(DOCS, embedder=FakeHashEmbedder(), sink=adopted, progress=False)
        assert report.written == 3
        manifest = adopted.read_manifest()
        assert manifest is not None and manifest.adopted and manifest.model == "fake-model"
        assert manifest.storage == {
            **DEFAULTS,
            "hnsw_m": 16,  # local mode reports Qdrant's defaults
            "hnsw_ef_construct": 100,
            "shard_number": manifest.storage["shard_number"],
            "replication_factor": manifest.storage["replication_factor"],
            "index_fields": ["lang:keyword"],
        }
        again = ingest(
            DOCS, embedder=FakeHashEmbedder(), sink=QdrantSink("theirs", client=sink.client), progress=False
        )
        assert again.skipped == 3  # now a managed collection: resumes like any other


@pytest.mark.parametrize(
    ("vectors", "problem"),
    [
        (
            models.VectorParams(size=16, distance=models.Distance.COSINE),
            "vector size: collection has 16, this run has 8",
        ),
        (
            models.VectorParams(size=8, distance=models.Distance.DOT),
            "distance: collection has 'dot', this run has 'cosine'",
        ),
        (
            {"other": models.VectorParams(size=8, distance=models.Distance.COSINE)},
            "it has no dense vector where the vllm-embed layout keeps it",
        ),
    ],
)
def test_a_collection_that_does_not_fit_is_not_adopted(vectors: Any, problem: str) -> None:
    with QdrantSink("docs", location=":memory:") as sink:
        sink.client.create_collection("theirs", vectors_config=vectors)
        theirs = QdrantSink("theirs", client=sink.client, adopt=True)
        with pytest.raises(ManifestMismatchError, match=f"cannot be adopted \\({problem}"):
            theirs.prepare(fake_manifest())
        assert sink.client.get_collection("theirs").config.metadata in (None, {})


def test_adopting_as_hybrid_needs_the_layouts_sparse_vector() -> None:
    with QdrantSink("docs", location=":memory:") as sink:
        dense = models.VectorParams(size=DIMENSIONS, distance=models.Distance.COSINE)
        sink.client.create_collection("dense", vectors_config=dense)
        with pytest.raises(ManifestMismatchError, match="no sparse vector 'bm25' with the IDF modifier"):
            QdrantSink("dense", client=sink.client, adopt=True, hybrid=True).prepare(fake_manifest())
        sink.client.create_collection(
            "hybrid",
            vectors_config=dense,
            sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        adopted = QdrantSink("hybrid", client=sink.client, adopt=True, hybrid=True)
        ingest(DOCS, embedder=FakeHashEmbedder(), sink=adopted, progress=False)
        assert adopted.read_manifest().sparse == "bm25"
        hits = search("zlib crc32", embedder=FakeHashEmbedder(), sink=adopted, top_k=1, mode="sparse")
        assert hits[0].doc_id == "crc"


def test_adopting_a_quantized_server_collection_reads_its_settings_back(stub: QdrantStub) -> None:
    with server_sink(stub, "seed") as sink:
        sink.client.create_collection(
            "theirs",
            vectors_config=models.VectorParams(
                size=DIMENSIONS, distance=models.Distance.COSINE, on_disk=True
            ),
            quantization_config=models.BinaryQuantization(binary=models.BinaryQuantizationConfig()),
            hnsw_config=models.HnswConfigDiff(m=24),
        )
    with (
        server_sink(stub, "theirs", quantization="int8", adopt=True) as sink,
        pytest.raises(
            ManifestMismatchError, match="quantization: collection has 'binary', this run asks for 'int8'"
        ),
    ):
        sink.prepare(fake_manifest())
    assert stub.calls("PUT", "/collections/theirs/index") == []
    with server_sink(stub, "theirs", adopt=True) as sink:
        ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
        search("fox", embedder=FakeHashEmbedder(), sink=sink, top_k=1)
        manifest = sink.read_manifest()
    assert manifest.adopted
    assert {k: manifest.storage[k] for k in ("quantization", "on_disk", "hnsw_m")} == {
        "quantization": "binary",
        "on_disk": True,
        "hnsw_m": 24,
    }
    assert [r.body["field_name"] for r in stub.calls("PUT", "/collections/theirs/index")] == ["doc_id"]
    [query] = stub.calls("POST", "/collections/theirs/points/query")
    assert query.body["params"] == {"quantization": {"rescore": True, "oversampling": 2.0}}


def test_an_unmanaged_collection_is_searched_with_its_own_quantization(stub: QdrantStub) -> None:
    with server_sink(stub) as sink:
        sink.client.create_collection(
            "theirs",
            vectors_config=models.VectorParams(size=DIMENSIONS, distance=models.Distance.COSINE),
            quantization_config=models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8)
            ),
        )
        theirs = QdrantSink("theirs", client=sink.client, layout="vllm-embed", ef=20)
        assert theirs.search(np.ones(DIMENSIONS, dtype=np.float32), top_k=3) == []
    [query] = stub.calls("POST", "/collections/theirs/points/query")
    assert query.body["params"] == {"hnsw_ef": 20, "quantization": {"rescore": True}}


# -- the store ------------------------------------------------------------------------------------------


def test_collection_names_and_sinks_on_other_collections_share_the_client(stub: QdrantStub) -> None:
    with server_sink(stub, "a", ef=40, index_fields=["lang"]) as sink:
        ingest(DOCS[:1], embedder=FakeHashEmbedder(), sink=sink, progress=False)
        assert sink.collection_names() == ["a"]
        other = sink.for_collection("b")
        assert other.client is sink.client and other.search_settings == sink.search_settings
        assert (
            other.settings == sink.settings
            and repr(other) == f"QdrantSink(collection='b', target={stub.url!r})"
        )
        with pytest.raises(CollectionNotFoundError, match="'b' does not exist"):
            other.info()
        ingest(DOCS[1:], embedder=FakeHashEmbedder(), sink=other, progress=False)
        other.close()  # leaves the shared client open
        assert sink.collection_names() == ["a", "b"]
        assert sink.for_collection("b").info().points == 2
    with QdrantSink("docs", location=":memory:") as memory:
        ingest(DOCS, embedder=FakeHashEmbedder(), sink=memory, progress=False)
        assert memory.info().disk_bytes is None
