"""Store-level rules checked before any I/O: collection names, local store paths; and the edge engine's
optimize, resumed after a kill.

The scenarios every store shares are in tests/contract; these are the store-specific rules.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ingest_fixtures import FakeHashEmbedder

from vllm_embed.errors import ManifestError, VllmEmbedError
from vllm_embed.ingest import ingest
from vllm_embed.sinks import BaseSink, MilvusSink, QdrantEdgeSink, QdrantSink
from vllm_embed.sinks.names import CollectionNameError, StorePathError
from vllm_embed.sinks.qdrant.edge import MANIFEST_FILE


@pytest.mark.parametrize(
    ("sink", "name", "rule"),
    [
        ("edge", "a" * 240, "over the 232-byte limit"),
        ("edge", "é" * 120, "over the 232-byte limit"),
        ("edge", ".hidden", "must not start with '.'"),
        ("edge", "a/b", "must not contain /"),
        ("qdrant", "a" * 256, "over the 255-byte limit"),
        ("qdrant", 'a:b"c', 'must not contain " :'),
        ("qdrant", "line\nbreak", "must not contain control characters"),
        ("qdrant", " padded", "white space"),
        ("milvus", "has-dash", "only ASCII letters, digits and '_'"),
        ("milvus", "9lives", "must start with a letter or '_'"),
        ("milvus", "a" * 256, "over Milvus's limit of 255"),
        ("milvus", "", "non-empty"),
    ],
)
def test_collection_names_are_checked_once_at_construction_before_any_io(
    sink: str, name: str, rule: str, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    with pytest.raises(CollectionNameError) as failure:
        if sink == "edge":
            QdrantEdgeSink(name, path=store)
        elif sink == "qdrant":
            QdrantSink(name, path=str(store))
        else:
            MilvusSink(name, uri=str(store / "milvus.db"))
    message = str(failure.value)
    assert isinstance(failure.value, VllmEmbedError) and "\n" not in message
    assert rule in message and "choose another name" in message
    assert not store.exists()  # nothing was created


def test_the_longest_edge_name_is_created_and_read_back(tmp_path: Path) -> None:
    name = "n" * 232  # its hidden build directory `.<name>.creating-<12 hex>` is 255 bytes
    with QdrantEdgeSink(name, path=tmp_path) as sink:
        ingest(["one"], embedder=FakeHashEmbedder(), sink=sink, progress=False)
        assert sink.collection_names() == [name]


def test_an_edge_path_that_is_a_file_and_a_manifest_that_is_a_directory_are_one_line_each(
    tmp_path: Path,
) -> None:
    file = tmp_path / "file"
    file.write_text("not a store")
    with pytest.raises(StorePathError, match="is a file, not a directory of collections"):
        QdrantEdgeSink("docs", path=file)
    with QdrantEdgeSink("docs", path=tmp_path / "edge") as sink:
        ingest(["one"], embedder=FakeHashEmbedder(), sink=sink, progress=False)
    manifest = tmp_path / "edge" / "docs" / MANIFEST_FILE
    manifest.unlink()
    manifest.mkdir()
    with QdrantEdgeSink("docs", path=tmp_path / "edge") as sink:
        with pytest.raises(
            ManifestError, match="is a directory, not a file: move that directory away"
        ) as failure:
            ingest(["one"], embedder=FakeHashEmbedder(), sink=sink, progress=False)
        assert "\n" not in str(failure.value)
    (tmp_path / "edge" / "taken").write_text("a file where the collection would go")
    with (
        QdrantEdgeSink("taken", path=tmp_path / "edge") as sink,
        pytest.raises(ValueError, match="move it away"),
    ):
        ingest(["one"], embedder=FakeHashEmbedder(), sink=sink, progress=False)


KILLED_BEFORE_CLOSE = """
import os, signal, sys
import numpy as np
from vllm_embed.sinks import QdrantEdgeSink
from vllm_embed.sinks.chunks import Chunk
from vllm_embed.sinks.manifest import Manifest

vectors = np.random.default_rng(0).normal(size=(600, 32)).astype(np.float32)
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
chunks = [Chunk(id=f"00000000-0000-0000-0000-{i + 1:012d}", doc_id=f"d{i}", chunk_index=0, text="t")
          for i in range(600)]
sink = QdrantEdgeSink("docs", path=sys.argv[1], quantization="int8", indexing_threshold_kb=1)
sink.prepare(Manifest(model="fake-model", dimensions=32))
sink.upsert(chunks, vectors)
os.kill(os.getpid(), signal.SIGKILL)  # before close(), which would optimize
"""


def test_an_optimize_a_kill_prevented_is_run_by_the_next_run(tmp_path: Path) -> None:
    from vllm_embed.sinks.manifest import Manifest

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_BEFORE_CLOSE), str(tmp_path)], env=env, check=False
    )
    assert killed.returncode == -signal.SIGKILL
    with QdrantEdgeSink("docs", path=tmp_path) as sink:
        assert {s["index"] for s in sink.info().storage["segments"]} == {"plain"}
        sink.prepare(Manifest(model="fake-model", dimensions=32))  # a re-run with nothing new to write
    with QdrantEdgeSink("docs", path=tmp_path) as sink:
        assert "hnsw" in {s["index"] for s in sink.info().storage["segments"]}
        assert sink.count() == 600
    with QdrantEdgeSink("docs", path=tmp_path) as sink:  # done: nothing is pending any more
        sink.prepare(Manifest(model="fake-model", dimensions=32))
        assert not sink._dirty


def test_for_collection_has_one_meaning_on_every_store(tmp_path: Path) -> None:
    """Same store and client, this sink's storage and search settings; the other collection's own choices."""
    sinks = [
        QdrantEdgeSink("docs", path=tmp_path / "edge", layout="langchain", ef=64, hybrid=True),
        QdrantSink("docs", path=str(tmp_path / "q"), layout="langchain", ef=64, hybrid=True),
        MilvusSink("docs", uri=str(tmp_path / "m.db"), layout="langchain", search_params={"ef": 64}),
    ]
    for sink in sinks:
        with sink:
            other = sink.for_collection("other")
            try:
                assert (other._layout, other._hybrid, other.index_fields, other.adopt) == (
                    None,
                    None,
                    (),
                    False,
                )
                assert other.spec() == sink.spec().for_collection("other") or isinstance(
                    other, QdrantEdgeSink
                )
                settings = getattr(other, "search_settings", None) or other.index_settings  # type: ignore[attr-defined]
                assert "64" in repr(settings)
                if not isinstance(sink, QdrantEdgeSink):
                    assert other.client is sink.client  # type: ignore[attr-defined]
            finally:
                other.close()


@pytest.mark.parametrize("kind", ["edge", "qdrant", "milvus"])
def test_reading_a_local_store_that_does_not_exist_creates_nothing(kind: str, tmp_path: Path) -> None:
    from vllm_embed.ingest import search
    from vllm_embed.sinks import CollectionNotFoundError

    store = tmp_path / "nested" / "store"

    def open_sink() -> BaseSink:
        if kind == "edge":
            return QdrantEdgeSink("docs", path=store)
        if kind == "qdrant":
            return QdrantSink("docs", path=str(store))
        return MilvusSink("docs", uri=str(store / "milvus.db"))

    fake = FakeHashEmbedder()
    with open_sink() as sink:
        assert sink.read_manifest() is None and sink.collection_names() == []
        with pytest.raises(CollectionNotFoundError, match=f"does not exist in .*{store}"):
            search("q", embedder=fake, sink=sink)
        with pytest.raises(CollectionNotFoundError):
            sink.info()
    assert not (tmp_path / "nested").exists()
    with open_sink() as sink:  # the first write creates it
        ingest(["one"], embedder=fake, sink=sink, progress=False)
    with open_sink() as sink:
        assert sink.count() == 1
