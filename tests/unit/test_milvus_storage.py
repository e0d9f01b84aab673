"""MilvusSink storage plans on Milvus Lite: index types and parameters, the doc_id index, adopt, info."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ingest_fixtures import FakeHashEmbedder, reload_when_built

from vllm_embed import Document, ingest, search
from vllm_embed.errors import UnmanagedCollectionError
from vllm_embed.sinks import MilvusSink
from vllm_embed.sinks.base import CollectionNotFoundError, Manifest, ManifestMismatchError
from vllm_embed.sinks.milvus_index import MilvusIndexError

DOCS = [
    Document(
        f"Document {i} is about topic {i % 3}.", id=f"doc-{i}", metadata={"lang": "en" if i % 2 else "de"}
    )
    for i in range(12)
]
MANIFEST = Manifest.from_description(FakeHashEmbedder().describe())


def built_indexes(root: Path, collection: str) -> set[tuple[str, str]]:
    """(field, index type) of every index file Milvus Lite built for `collection` (it records any type)."""
    files = (root / "milvus.db" / "collections" / collection).rglob("*idx")
    return {tuple(path.name.split(".")[1:3]) for path in files}  # type: ignore[misc]


def lite(root: Path, collection: str = "docs", **kwargs: Any) -> MilvusSink:
    return MilvusSink(collection, uri=str(root / "milvus.db"), **kwargs)


@pytest.mark.parametrize(
    ("index", "params", "search_params"),
    [
        ("AUTOINDEX", {}, {"ef": 32}),
        ("FLAT", {}, {}),
        ("HNSW", {"M": 8, "efConstruction": 64}, {"ef": 32}),
        ("HNSW_SQ", {"M": 8}, {"ef": 32}),
        ("IVF_FLAT", {"nlist": 4}, {"nprobe": 4}),
        ("ivf_sq8", {"nlist": 4}, {"nprobe": 4}),
    ],
)
def test_each_index_type_milvus_lite_builds_is_built_recorded_and_searched(
    tmp_path: Path, index: str, params: dict[str, Any], search_params: dict[str, Any]
) -> None:
    with lite(tmp_path, index=index, index_params=params, search_params=search_params) as sink:
        ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
        sink.client.flush(sink.collection)
        reload_when_built(sink)  # built in the background after a flush; loading sooner reads a partial file
        hits = search(DOCS[4].text, embedder=FakeHashEmbedder(), sink=sink, top_k=3)
        info = sink.info()
    kind = index.upper()
    assert hits[0].doc_id == "doc-4"
    assert info.storage["index"] == kind and info.payload_indexes == {"doc_id": "INVERTED"}
    assert info.manifest is not None and info.manifest.storage == {
        "index": kind,
        "index_params": params,
        "search_params": search_params,
        "index_fields": [],
    }
    built = built_indexes(tmp_path, "docs")
    assert ("doc_id", "inverted") in built
    assert ("vector", kind.lower()) in built


def test_an_unknown_index_type_is_refused_listing_the_types_before_anything_is_written(
    tmp_path: Path,
) -> None:
    with pytest.raises(
        MilvusIndexError, match=r"unknown Milvus index type 'BOGUS': use one of AUTOINDEX, .*HNSW"
    ):
        lite(tmp_path, index="BOGUS")
    assert not (tmp_path / "milvus.db").exists()


@pytest.mark.parametrize("index", ["IVF_PQ", "DISKANN", "SCANN", "HNSW_PQ"])
def test_a_server_only_index_type_is_refused_on_milvus_lite_saying_a_server_builds_it(
    tmp_path: Path, index: str
) -> None:
    with pytest.raises(MilvusIndexError, match=rf"Milvus Lite does not build {index} indexes") as caught:
        lite(tmp_path, index=index)
    message = str(caught.value)
    assert "it builds AUTOINDEX, FLAT, HNSW, HNSW_SQ, IVF_FLAT, IVF_SQ8" in message
    assert "a Milvus server also builds" in message and index in message.split("also builds")[1]
    assert not (tmp_path / "milvus.db").exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"index": "HNSW", "index_params": {"efconstruction": 64}},
            r"'efconstruction' .* \(it takes: efConstruction, M\)",
        ),
        (
            {"index": "HNSW", "search_params": {"nprobe": 4}},
            r"search parameter 'nprobe' .* HNSW .* \(it takes: ef\)",
        ),
        ({"index": "FLAT", "index_params": {"nlist": 4}}, r"takes: none"),
        ({"index": "IVF_FLAT", "index_params": {"nlist": 0}}, r"nlist=0 .* integer from 1 to 65536"),
        ({"index": "HNSW", "index_params": {"M": "16"}}, r"M='16' .* integer"),
        ({"index": "HNSW_SQ", "index_params": {"sq_type": "SQ8"}}, r"'sq_type' is not one Milvus Lite takes"),
    ],
)
def test_bad_index_params_are_refused_before_anything_is_written(
    tmp_path: Path, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(MilvusIndexError, match=match):
        lite(tmp_path, **kwargs)
    assert not (tmp_path / "milvus.db").exists()


class SearchSpy:
    """Passes every call to the real client, recording the search parameters each search sends."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.params: list[dict[str, Any]] = []

    def search(self, *args: Any, **kwargs: Any) -> Any:
        self.params.append(kwargs["search_params"])
        return self._client.search(*args, **kwargs)

    def hybrid_search(self, collection: str, requests: list[Any], *args: Any, **kwargs: Any) -> Any:
        self.params.extend(request.param for request in requests)
        return self._client.hybrid_search(collection, requests, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_search_params_go_into_every_dense_search_and_the_recorded_ones_apply_later(tmp_path: Path) -> None:
    hnsw = {"metric_type": "COSINE", "params": {"ef": 40}}
    with lite(tmp_path, index="HNSW", search_params={"ef": 40}, hybrid=True) as sink:
        ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
        spy = SearchSpy(sink.client)
        sink.client = spy  # type: ignore[assignment]
        vector = FakeHashEmbedder().embed_query("topic")
        sink.search(vector, 2)
        sink.hybrid_search("topic", vector, 2)
        sink.client = spy._client
    # search, then hybrid's dense and sparse candidates: no other search (found_by comes from them)
    assert spy.params == [hnsw, hnsw, {"metric_type": "BM25"}]
    with lite(tmp_path) as sink:  # no search_params: the recorded ones
        spy = SearchSpy(sink.client)
        sink.client = spy  # type: ignore[assignment]
        sink.search(vector, 2)
        sink.client = spy._client
    with lite(tmp_path, search_params={"ef": 80}) as sink:  # given ones win
        spy2 = SearchSpy(sink.client)
        sink.client = spy2  # type: ignore[assignment]
        sink.search(vector, 2)
        sink.client = spy2._client
    assert spy.params == [hnsw] and spy2.params == [{"metric_type": "COSINE", "params": {"ef": 80}}]


def test_an_existing_collection_keeps_its_index_and_refuses_a_different_one(tmp_path: Path) -> None:
    with lite(tmp_path, index="IVF_FLAT", index_params={"nlist": 4}) as sink:
        ingest(DOCS[:4], embedder=FakeHashEmbedder(), sink=sink, progress=False)
    with (
        lite(tmp_path, index="HNSW") as sink,
        pytest.raises(
            ManifestMismatchError, match=r"index: collection has 'IVF_FLAT', this run asks for 'HNSW'"
        ),
    ):
        sink.prepare(MANIFEST)
    with (
        lite(tmp_path, search_params={"ef": 10}) as sink,  # the collection's IVF_FLAT takes nprobe
        pytest.raises(MilvusIndexError, match=r"search parameter 'ef' .* IVF_FLAT .* \(it takes: nprobe\)"),
    ):
        sink.check_storage(sink.read_manifest())  # type: ignore[arg-type]
    with lite(tmp_path, search_params={"nprobe": 2}) as sink:  # left at the default: follows the collection
        report = ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
        assert (report.skipped, report.embedded) == (4, 8)
        assert sink.info().storage["index"] == "IVF_FLAT"


def test_resume_and_rerun_on_a_non_default_index(tmp_path: Path) -> None:
    with lite(tmp_path, index="HNSW", index_params={"M": 8}) as sink:
        ingest(DOCS[:5], embedder=FakeHashEmbedder(), sink=sink, progress=False)
        changed = [*DOCS[:2], Document("A changed text.", id="doc-2", metadata={}), *DOCS[3:]]
        fake = FakeHashEmbedder()
        report = ingest(changed, embedder=fake, sink=sink, progress=False)
        assert (report.skipped, report.embedded) == (4, 8) and "A changed text." in fake.embedded
        rerun = FakeHashEmbedder()
        report = ingest(changed, embedder=rerun, sink=sink, progress=False)
        assert rerun.embedded == [] and report.skipped == 12 and sink.count() == 12
        assert search("A changed text.", embedder=rerun, sink=sink, top_k=1)[0].doc_id == "doc-2"


def test_metadata_index_fields_are_refused_on_milvus_lite_before_anything_is_written(tmp_path: Path) -> None:
    with lite(tmp_path, index_fields=["lang"]) as sink:
        with pytest.raises(
            MilvusIndexError,
            match=r"cannot index metadata field 'lang': the vllm-embed layout keeps metadata in the JSON "
            r"field 'metadata'",
        ):
            sink.prepare(MANIFEST)
        assert sink.read_manifest() is None
    with (
        lite(tmp_path, layout="langchain", index_fields=["lang"]) as sink,
        pytest.raises(MilvusIndexError, match=r"keeps metadata in dynamic fields \(JSON\)"),
    ):
        sink.prepare(MANIFEST.model_copy(update={"layout": "langchain"}))


def test_an_index_field_on_a_schema_field_is_added_to_an_existing_collection_and_recorded(
    tmp_path: Path,
) -> None:
    manifest = MANIFEST.model_copy(update={"layout": "langchain"})
    with lite(tmp_path, layout="langchain") as sink:
        ingest(DOCS[:4], embedder=FakeHashEmbedder(), sink=sink, progress=False)
    with lite(tmp_path, index_fields=["chunk_index:integer"]) as sink:
        sink.prepare(manifest)
        info = sink.info()
        assert info.payload_indexes == {"doc_id": "INVERTED", "chunk_index": "INVERTED"}
        assert info.manifest is not None and info.manifest.storage["index_fields"] == ["chunk_index:integer"]
        assert search(DOCS[1].text, embedder=FakeHashEmbedder(), sink=sink, top_k=1)[0].doc_id == "doc-1"


def hand_made(root: Path, *, dim: int = 8, metric: str = "COSINE", chunk_index: bool = True) -> None:
    """A collection in the vllm-embed layout's shape made without vllm-embed: HNSW, no doc_id index."""
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(uri=str(root / "milvus.db"))
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("text", DataType.VARCHAR, max_length=1000)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=512)
    if chunk_index:
        schema.add_field("chunk_index", DataType.INT64)
    schema.add_field("metadata", DataType.JSON)
    index_params = MilvusClient.prepare_index_params()
    index_params.add_index(field_name="vector", index_type="HNSW", metric_type=metric, params={"M": 8})
    client.create_collection("mine", schema=schema, index_params=index_params)
    row = {"id": "x", "vector": [1.0] * dim, "text": "hand", "doc_id": "h", "metadata": {}}
    client.insert("mine", [{**row, "chunk_index": 0} if chunk_index else row])
    client.close()


def test_a_fitting_hand_made_collection_is_adopted_with_its_index_and_a_doc_id_index(tmp_path: Path) -> None:
    hand_made(tmp_path)
    with lite(tmp_path, "mine") as sink:
        with pytest.raises(UnmanagedCollectionError, match=r"--adopt \(adopt=True\)"):
            sink.read_manifest()
        with pytest.raises(UnmanagedCollectionError):
            ingest(DOCS[:2], embedder=FakeHashEmbedder(), sink=sink, progress=False)
        assert sink.info().manifest is None and sink.info().payload_indexes == {}
    with lite(tmp_path, "mine", adopt=True) as sink:
        report = ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
        assert report.written == 12 and sink.count() == 13
        manifest = sink.read_manifest()
        assert manifest is not None and manifest.adopted and manifest.model == "fake-model"
        assert manifest.storage == {
            "index": "HNSW",
            "index_params": {},
            "search_params": {},
            "index_fields": [],
        }
        assert sink.info().payload_indexes == {"doc_id": "INVERTED"}
        assert search(DOCS[5].text, embedder=FakeHashEmbedder(), sink=sink, top_k=1)[0].doc_id == "doc-5"
    with lite(tmp_path, "mine") as sink:  # adopted: an ordinary managed collection from now on
        assert ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False).skipped == 12


@pytest.mark.parametrize(
    ("made", "match"),
    [
        ({"dim": 16}, r"vector size: collection has 16, this run has 8"),
        ({"metric": "L2"}, r"distance: collection has 'l2', this run has 'cosine'"),
        (
            {"chunk_index": False},
            r"field 'chunk_index': collection has none, the vllm-embed layout needs INT64",
        ),
    ],
)
def test_a_mismatching_hand_made_collection_is_not_adopted(
    tmp_path: Path, made: dict[str, Any], match: str
) -> None:
    hand_made(tmp_path, **made)
    with lite(tmp_path, "mine", adopt=True) as sink:
        with pytest.raises(ManifestMismatchError, match=match):
            sink.prepare(MANIFEST)
        with pytest.raises(UnmanagedCollectionError):  # nothing was written
            sink.read_manifest()
        assert sink.info().payload_indexes == {}


def test_info_collection_names_and_for_collection(tmp_path: Path) -> None:
    with lite(tmp_path, "a", index="HNSW") as sink:
        with pytest.raises(CollectionNotFoundError, match="'a' does not exist"):
            sink.info()
        ingest(DOCS[:4], embedder=FakeHashEmbedder(), sink=sink, progress=False)
        ingest(DOCS[:3], embedder=FakeHashEmbedder(dimension=4), sink=lite_shared(sink, "b"), progress=False)
        assert sink.collection_names() == ["a", "b"]
        other = sink.for_collection("b")
        assert other.client is sink.client and other.collection == "b"
        info = other.info()
        assert (info.name, info.points, info.dimensions, info.distance) == ("b", 3, 4, "cosine")
        assert info.storage == {"index": "AUTOINDEX", "index_params": {}}
        assert info.disk_bytes is not None and info.disk_bytes > 0
        data = sink.info().to_dict()
        assert data["points"] == 4 and data["storage"]["index"] == "HNSW" and data["manifest"]["storage"]


def lite_shared(sink: MilvusSink, name: str) -> MilvusSink:
    return MilvusSink(name, client=sink.client)


class FakeMilvusServer:
    """Stands for a Milvus server (2.6) without collections: records the collection it is asked for."""

    def __init__(self) -> None:
        self.created: dict[str, Any] = {}

    def get_server_version(self) -> str:
        return "v2.6.3"

    def has_collection(self, name: str) -> bool:
        return False

    def create_collection(self, name: str, **kwargs: Any) -> None:
        self.created = kwargs


def test_on_a_milvus_server_metadata_fields_get_json_path_indexes_and_pq_gets_m(tmp_path: Path) -> None:
    server = FakeMilvusServer()
    sink = MilvusSink("docs", client=server, index="IVF_PQ", index_fields=["lang", "year:integer"])  # type: ignore[arg-type]
    sink.prepare(MANIFEST)
    indexes = {
        index.index_name or index.field_name: index.to_dict() for index in server.created["index_params"]
    }
    assert indexes["vector"] == {
        "field_name": "vector",
        "index_type": "IVF_PQ",
        "index_name": "",
        "metric_type": "COSINE",
        "m": 2,
    }
    assert indexes["doc_id"]["index_type"] == "INVERTED"
    assert indexes["meta_lang"] == {
        "field_name": "metadata",
        "index_type": "INVERTED",
        "index_name": "meta_lang",
        "json_path": 'metadata["lang"]',
        "json_cast_type": "VARCHAR",
    }
    assert indexes["meta_year"]["json_path"] == 'metadata["year"]'
    assert indexes["meta_year"]["json_cast_type"] == "DOUBLE"
    stored = Manifest.model_validate_json(server.created["properties"]["vllm_embed.manifest"])
    assert stored.storage == {
        "index": "IVF_PQ",
        "index_params": {"m": 2},
        "search_params": {},
        "index_fields": ["lang:keyword", "year:integer"],
    }
    with pytest.raises(MilvusIndexError, match=r"m=3 of a IVF_PQ index must divide the vector size 8"):
        MilvusSink("docs", client=FakeMilvusServer(), index="IVF_PQ", index_params={"m": 3}).prepare(MANIFEST)  # type: ignore[arg-type]


def test_on_a_milvus_server_a_dynamic_field_key_is_indexed_by_its_name() -> None:
    server = FakeMilvusServer()
    sink = MilvusSink("docs", client=server, layout="langchain", index_fields=["lang"])  # type: ignore[arg-type]
    sink.prepare(MANIFEST.model_copy(update={"layout": "langchain"}))
    (index,) = [i.to_dict() for i in server.created["index_params"] if i.index_name == "meta_lang"]
    assert (index["field_name"], index["json_path"], index["json_cast_type"]) == ("lang", "lang", "VARCHAR")
