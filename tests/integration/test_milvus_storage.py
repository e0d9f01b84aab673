"""MilvusSink storage plans on the Milvus server process (`python -m milvus_lite server`, `milvus_server`).

That process serves Milvus Lite's engine over gRPC, so it builds the same index types as a Milvus Lite file
(none beyond them); the sink recognises it by its version and refuses the types only a Milvus server builds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest_fixtures import FakeHashEmbedder, reload_when_built

from vllm_embed import Document, ingest, search
from vllm_embed.sinks import MilvusSink
from vllm_embed.sinks.base import Manifest
from vllm_embed.sinks.milvus import _LITE_GRPC_OPTIONS
from vllm_embed.sinks.milvus_index import LITE_INDEXES, MilvusIndexError

# The server process is Milvus Lite's engine, which answers keepalive pings with GOAWAY "too many pings"
# (and then refuses the next connection) as a Lite file does: its clients send none.
NO_PINGS = _LITE_GRPC_OPTIONS

DOCS = [
    Document(f"Document {i} is about topic {i % 3}.", id=f"doc-{i}", metadata={"i": i}) for i in range(12)
]


def server_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data directory of the session's `milvus_server` (see `start_milvus_server`)."""
    (directory,) = tmp_path_factory.getbasetemp().glob("milvus-server[0-9]*/data")
    return directory


def test_the_server_process_builds_the_index_types_milvus_lite_builds_and_refuses_the_others(
    milvus_server: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = server_data(tmp_path_factory)
    for index in LITE_INDEXES:
        collection = f"storage_{index.lower()}"
        with MilvusSink(collection, uri=milvus_server, grpc_options=NO_PINGS, index=index) as sink:
            ingest(DOCS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
            sink.client.flush(collection)
            reload_when_built(sink)
            assert search(DOCS[7].text, embedder=FakeHashEmbedder(), sink=sink, top_k=1)[0].doc_id == "doc-7"
            info = sink.info()
            assert info.storage["index"] == index and info.payload_indexes == {"doc_id": "INVERTED"}
            files = (data / "collections" / collection).rglob("*idx")
            built = {tuple(path.name.split(".")[1:3]) for path in files}
            assert ("vector", index.lower()) in built and ("doc_id", "inverted") in built
            sink.client.drop_collection(collection)

    # a server's kind is asked on prepare
    sink = MilvusSink("storage_pq", uri=milvus_server, grpc_options=NO_PINGS, index="IVF_PQ")
    with sink, pytest.raises(MilvusIndexError, match="Milvus Lite does not build IVF_PQ indexes"):
        sink.prepare(Manifest.from_description(FakeHashEmbedder().describe()))
    with MilvusSink("storage_pq", uri=milvus_server, grpc_options=NO_PINGS) as sink:
        assert sink.read_manifest() is None  # nothing was written


def test_resume_and_rerun_on_an_ivf_collection_of_the_server(milvus_server: str) -> None:
    with MilvusSink(
        "storage_resume",
        uri=milvus_server,
        grpc_options=NO_PINGS,
        index="IVF_SQ8",
        search_params={"nprobe": 8},
    ) as sink:
        ingest(DOCS[:6], embedder=FakeHashEmbedder(), sink=sink, progress=False)
    changed = [*DOCS[:3], Document("A changed text.", id="doc-3"), *DOCS[4:]]
    with MilvusSink("storage_resume", uri=milvus_server, grpc_options=NO_PINGS) as sink:
        fake = FakeHashEmbedder()
        report = ingest(changed, embedder=fake, sink=sink, progress=False)
        assert (report.skipped, report.embedded) == (5, 7) and "A changed text." in fake.embedded
        assert ingest(changed, embedder=FakeHashEmbedder(), sink=sink, progress=False).embedded == 0
        manifest = sink.read_manifest()
        assert manifest is not None and manifest.storage == {
            "index": "IVF_SQ8",
            "index_params": {},
            "search_params": {"nprobe": 8},
            "index_fields": [],
        }
        assert search("A changed text.", embedder=fake, sink=sink, top_k=1)[0].doc_id == "doc-3"
        sink.client.drop_collection("storage_resume")
