"""The stores the contract suite runs on: one `Store` line each (a new store adds one line to `STORES`).

Each line gives the spec that opens a sink on that store (a `SinkSpec`, what `sink.spec()` returns) and the
few facts the scenarios need: a creation setting it records (and one that differs), a metadata field it
can index (and in which layout), how to write (or take away) a collection's manifest behind the sink's back,
a vector it accepts that `verify` must find invalid, and the fixture of its server, if any.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vllm_embed.sinks import MilvusSink, QdrantEdgeSink, QdrantSink
from vllm_embed.sinks.base import BaseSink
from vllm_embed.sinks.milvus import _LITE_GRPC_OPTIONS  # the Milvus server process is Milvus Lite's
from vllm_embed.sinks.qdrant.edge import MANIFEST_FILE
from vllm_embed.sinks.spec import SinkSpec


def _put_qdrant_manifest(sink: BaseSink, stored: Any) -> None:
    assert isinstance(sink, QdrantSink)
    sink.client.update_collection(sink.collection, metadata={"vllm_embed": stored})


def _put_edge_manifest(sink: BaseSink, stored: Any) -> None:
    assert isinstance(sink, QdrantEdgeSink)
    file = sink.path / sink.collection / MANIFEST_FILE
    if stored is None:
        file.unlink()
    else:
        file.write_text(stored if isinstance(stored, str) else json.dumps(stored))


def _put_milvus_manifest(sink: BaseSink, stored: Any) -> None:
    assert isinstance(sink, MilvusSink)
    if stored is None:
        sink.client.drop_collection_properties(sink.collection, property_keys=["vllm_embed.manifest"])
    else:
        text = stored if isinstance(stored, str) else json.dumps(stored)
        sink.client.alter_collection_properties(sink.collection, properties={"vllm_embed.manifest": text})


@dataclass(frozen=True)
class Store:
    """How the scenarios use one store."""

    name: str
    spec: Callable[[Any, str], SinkSpec]
    """(place, collection) → the spec of a sink there; `place` is the `fixture`'s value, else `tmp_path`."""
    put_manifest: Callable[[BaseSink, Any], None]
    """Writes a manifest (JSON text or data) with the store's own client, as another tool (or a bug) could;
    `None` takes it away (as if someone else had made the collection)."""
    storage: tuple[dict[str, Any], dict[str, Any]] | None
    """A creation setting the store records, and one differing from it (`None`: the store takes none)."""
    index_field: tuple[str, str] = ("vllm-embed", "year")
    """(layout, metadata field) the store can index in that layout."""
    invalid_vector: float = 0.0
    """A value every component of a stored vector may take that `verify` must refuse (0: zero norm)."""
    fixture: str | None = None
    """The pytest fixture of the store's server (its URL)."""

    @property
    def embedded(self) -> bool:
        """One process at a time (a local directory or file), as opposed to a server."""
        return self.fixture is None


def _spec(sink: type[BaseSink], **options: Any) -> Callable[[Any, str], SinkSpec]:
    def spec(place: Any, collection: str) -> SinkSpec:
        where = {k: v(place) if callable(v) else v for k, v in options.items()}
        shared = "url" in where or "://" in str(where.get("uri", ""))
        return SinkSpec(f"{sink.__module__}:{sink.__qualname__}", collection, where, shared)

    return spec


QDRANT_STORAGE = ({"quantization": "int8"}, {"quantization": "binary"})
MILVUS_STORAGE = ({"index": "HNSW"}, {"index": "IVF_FLAT"})
# Milvus Lite (a file, or its server process) indexes schema fields only: langchain's `chunk_index` is one.
MILVUS_LITE_FIELD = ("langchain", "chunk_index")

STORES = [
    Store("qdrant-edge", _spec(QdrantEdgeSink, path=lambda root: str(root / "edge")), _put_edge_manifest,
          QDRANT_STORAGE),
    Store("qdrant-local", _spec(QdrantSink, path=lambda root: str(root / "qdrant")), _put_qdrant_manifest,
          None),
    Store("qdrant-server", _spec(QdrantSink, url=lambda url: url, max_attempts=1, check_compatibility=False),
          _put_qdrant_manifest, QDRANT_STORAGE, fixture="qdrant_url"),
    Store("milvus-lite", _spec(MilvusSink, uri=lambda root: str(root / "milvus.db")), _put_milvus_manifest,
          MILVUS_STORAGE, MILVUS_LITE_FIELD, np.nan),
    Store("milvus-server", _spec(MilvusSink, uri=lambda uri: uri, grpc_options=_LITE_GRPC_OPTIONS),
          _put_milvus_manifest, MILVUS_STORAGE, MILVUS_LITE_FIELD, np.nan, fixture="milvus_server"),
]  # fmt: skip
"""Every store the contract holds on. The Qdrant server is `tests/qdrant_stub.QdrantStub` (a recording
stand-in; its points live in a local-mode store), the Milvus server `python -m milvus_lite server`."""


@dataclass
class OpenStore:
    """A store for one test: `sink()` opens a sink on it (a fresh collection name per test by default)."""

    store: Store
    place: Any
    collection: str = field(default_factory=lambda: "c_" + uuid.uuid4().hex[:12])
    opened: list[BaseSink] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.store.name

    def spec(self, collection: str | None = None, **options: Any) -> SinkSpec:
        """The spec of a sink on `collection` (this test's by default) with constructor `options` added."""
        spec = self.store.spec(self.place, collection or self.collection)
        return dataclasses.replace(spec, options={**spec.options, **options})

    def sink(self, collection: str | None = None, **options: Any) -> BaseSink:
        sink = self.spec(collection, **options).open()
        self.opened.append(sink)
        return sink

    def close(self) -> None:
        for sink in self.opened:
            sink.close()


def open_store(store: Store, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """The `store` fixture's body: the store's server (its fixture) or `tmp_path`; every sink closed after."""
    place = request.getfixturevalue(store.fixture) if store.fixture else tmp_path
    opened = OpenStore(store, place)
    try:
        yield opened
    finally:
        opened.close()
