"""Storage-plan flags (derived from `vllm_embed.sinks.storage`), `--qdrant-edge`, `--adopt` and
`vllm-embed collections info`, without an engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
import typer
from cli_helpers import FakeEngine, no_engine, run, write_corpus
from conftest import stop_process_tree
from ingest_fixtures import FakeHashEmbedder, open_sink
from pydantic import BaseModel, ConfigDict, Field
from qdrant_client.http import models as qdrant_models
from typer.main import get_command
from typer.testing import CliRunner

from vllm_embed import cli
from vllm_embed.cli.storage_options import ITEM_FLAGS, StorageFlags, storage_options
from vllm_embed.errors import UnmanagedCollectionError
from vllm_embed.ingest import ingest
from vllm_embed.sinks import QdrantEdgeSink
from vllm_embed.sinks import milvus as milvus_module
from vllm_embed.sinks import qdrant as qdrant_module
from vllm_embed.sinks.base import BaseSink, CollectionInfo, Manifest
from vllm_embed.sinks.qdrant.edge import MANIFEST_FILE
from vllm_embed.sinks.storage import MilvusIndexSettings, QdrantCollectionSettings, QdrantSearchSettings


def options_of(*command: str) -> dict[str, Any]:
    """The click parameters of a command, by their long flags."""
    group: Any = get_command(cli.app)
    for name in command:
        group = group.commands[name]
    return {opt: param for param in group.params for opt in param.opts if opt.startswith("--")}


def help_page(*command: str) -> str:
    code, out, err = run(*command, "--help", COLUMNS="200")
    assert code == 0, err
    return out


class FakeSinkClass:
    """Stands in for a sink class: records the constructor's arguments, then stops the command (exit 3)."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        raise typer.Exit(3)


@pytest.fixture
def fake_sinks(monkeypatch) -> dict[str, FakeSinkClass]:
    fakes = {"qdrant": FakeSinkClass(), "qdrant-edge": FakeSinkClass(), "milvus": FakeSinkClass()}
    monkeypatch.setattr(qdrant_module, "QdrantSink", fakes["qdrant"])
    monkeypatch.setattr(milvus_module, "MilvusSink", fakes["milvus"])
    monkeypatch.setattr(qdrant_module, "QdrantEdgeSink", fakes["qdrant-edge"])
    monkeypatch.setattr(cli, "make_embedder", no_engine)
    return fakes


@pytest.fixture
def corpus(tmp_path: Path) -> str:
    return str(write_corpus(tmp_path))


def ingest_args(corpus: str, *store: str) -> list[str]:
    return ["ingest", corpus, "-m", "fake-model", "-c", "docs", *store]


STORE_FLAGS = {"qdrant": "--qdrant", "qdrant-edge": "--qdrant-edge", "milvus": "--milvus"}


@pytest.mark.parametrize(
    ("store", "flags", "expected"),
    [
        ("qdrant", [], {}),
        (
            "qdrant-edge",
            ["--quantization", "int8", "--hnsw-m", "32", "--hnsw-ef-construct", "200", "--on-disk"],
            {"quantization": "int8", "hnsw_m": 32, "hnsw_ef_construct": 200, "on_disk": True},
        ),
        (
            "qdrant",
            ["--quantization", "binary", "--shard-number", "2", "--replication-factor", "2"],
            {"quantization": "binary", "shard_number": 2, "replication_factor": 2},
        ),
        (
            "qdrant-edge",
            ["--index-field", "lang", "--index-field", "year:integer", "--adopt"],
            {"index_fields": ("lang", "year:integer"), "adopt": True},
        ),
        (
            "milvus",
            ["--index", "HNSW", "--index-param", "M=32", "--index-param", "efConstruction=200"],
            {"index": "HNSW", "index_params": {"M": 32, "efConstruction": 200}},
        ),
        (
            "milvus",
            ["--index", "IVF_SQ8", "--index-param", 'nlist="128"', "--search-param", "nprobe=16"],
            {"index": "IVF_SQ8", "index_params": {"nlist": "128"}, "search_params": {"nprobe": 16}},
        ),
        ("milvus", ["--index-field", "lang:keyword"], {"index_fields": ("lang:keyword",)}),
    ],
)
def test_ingest_storage_flags_reach_the_sink(store, flags, expected, fake_sinks, corpus, tmp_path) -> None:
    code, _, err = run(*ingest_args(corpus, STORE_FLAGS[store], str(tmp_path / "store")), *flags)
    assert code == 3, err
    [(args, kwargs)] = fake_sinks[store].calls
    assert args == ("docs",)
    location = {"qdrant": "path", "qdrant-edge": "path", "milvus": "uri"}[store]
    assert kwargs.pop(location) == str(tmp_path / "store")
    kwargs.pop("token", None)
    assert kwargs == {"layout": None, "hybrid": None, **expected}


@pytest.mark.parametrize(
    ("store", "flags", "expected"),
    [
        (
            "qdrant",
            ["--ef", "64", "--oversampling", "3", "--no-rescore"],
            {"ef": 64, "oversampling": 3.0, "rescore": False},
        ),
        ("qdrant-edge", ["--ef", "128", "--rescore"], {"ef": 128}),
        (
            "milvus",
            ["--search-param", "ef=64", "--search-param", "radius=0.5"],
            {"search_params": {"ef": 64, "radius": 0.5}},
        ),
    ],
)
def test_search_settings_reach_the_sink(store, flags, expected, fake_sinks, tmp_path) -> None:
    code, _, err = run("search", "tea", "-c", "docs", STORE_FLAGS[store], str(tmp_path / "store"), *flags)
    assert code == 3, err
    [(_, kwargs)] = fake_sinks[store].calls
    assert {
        k: v for k, v in kwargs.items() if k not in ("path", "uri", "token", "layout", "hybrid")
    } == expected


@pytest.mark.parametrize(
    ("command", "store", "flags", "message"),
    [
        (
            "ingest",
            "milvus",
            ["--quantization", "int8"],
            "--quantization is a Qdrant setting, not one of --milvus: on Milvus choose a quantized index, "
            "e.g. --index IVF_SQ8",
        ),
        ("ingest", "milvus", ["--on-disk"], "--index DISKANN"),
        ("ingest", "milvus", ["--hnsw-m", "32"], "--index HNSW --index-param M=N"),
        (
            "ingest",
            "qdrant",
            ["--index", "HNSW"],
            "--index is a Milvus setting, not one of --qdrant: on Qdrant use --quantization int8|binary",
        ),
        (
            "ingest",
            "qdrant-edge",
            ["--index-param", "M=16"],
            "--index-param is a Milvus setting, not one of --qdrant-edge",
        ),
        ("ingest", "qdrant", ["--search-param", "ef=16"], "on Qdrant use --ef N"),
        (
            "search",
            "milvus",
            ["--ef", "64"],
            "--ef is a Qdrant setting, not one of --milvus: on Milvus use --search-param ef=N",
        ),
        ("search", "milvus", ["--no-rescore"], "--no-rescore is a Qdrant setting"),
        ("search", "qdrant-edge", ["--search-param", "nprobe=4"], "--search-param is a Milvus setting"),
        (
            "ingest",
            "milvus",
            ["--index-param", "M"],
            "--index-param takes KEY=VALUE (e.g. --index-param M=32), got 'M'",
        ),
    ],
)
def test_flags_of_the_other_store_are_refused_before_the_sink_opens(
    command, store, flags, message, fake_sinks, corpus, tmp_path
) -> None:
    args = ingest_args(corpus) if command == "ingest" else ["search", "tea", "-c", "docs"]
    code, out, err = run(*args, STORE_FLAGS[store], str(tmp_path / "store"), *flags)
    assert code == 1 and out == "" and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert message in err
    assert all(not fake.calls for fake in fake_sinks.values())


def test_exactly_one_store_flag(fake_sinks, corpus, tmp_path) -> None:
    for stores in ([], ["--qdrant", "q", "--qdrant-edge", "e"], ["--qdrant-edge", "e", "--milvus", "m.db"]):
        code, _, err = run(*ingest_args(corpus, *stores))
        assert code == 1 and "exactly one of --qdrant, --qdrant-edge or --milvus" in err, err
    for command in (["verify", "-c", "docs"], ["collections", "info"]):
        code, _, err = run(*command, "--qdrant", "q", "--qdrant-edge", "e")
        assert code == 1 and "exactly one of --qdrant, --qdrant-edge or --milvus" in err, err


def test_verify_opens_a_qdrant_edge_store(fake_sinks, tmp_path) -> None:
    code, _, err = run("verify", "-c", "docs", "--qdrant-edge", str(tmp_path / "edge"))
    assert code == 3, err
    assert fake_sinks["qdrant-edge"].calls == [
        (("docs",), {"path": str(tmp_path / "edge"), "layout": None, "hybrid": None})
    ]


def test_every_storage_setting_is_a_flag_with_help() -> None:
    ingest_options, search_options = options_of("ingest"), options_of("search")
    for models, options in (
        ((QdrantCollectionSettings, MilvusIndexSettings), ingest_options),
        ((QdrantSearchSettings,), search_options),
    ):
        for model in models:
            for field in model.model_fields:
                flag = ITEM_FLAGS[field][0] if field in ITEM_FLAGS else "--" + field.replace("_", "-")
                assert flag in options and (options[flag].help or "").strip(), (model.__name__, field)
    assert {"--index-field", "--adopt", "--qdrant-edge"} <= ingest_options.keys()
    assert "--search-param" in search_options and "--index" not in search_options
    assert "--no-rescore" in search_options["--rescore"].secondary_opts
    assert "--qdrant-edge" in options_of("verify") and "--qdrant-edge" in options_of("collections", "info")


class FakeStorageSettings(BaseModel):
    """A storage settings model with new fields, as `vllm_embed.sinks.storage` might grow."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    segments: int | None = Field(default=None, ge=1)
    """Segments of the collection [per shard]."""
    compact: bool = True
    """Compact after `upsert`."""
    search_params: dict[str, Any] = Field(default_factory=dict)
    """Parameters."""


def test_a_new_storage_setting_becomes_a_flag() -> None:
    app = typer.Typer()
    received: list[StorageFlags] = []

    @app.command()
    @storage_options(FakeStorageSettings, shared=True)
    def command(name: str, storage: StorageFlags) -> None:
        received.append(storage | {"name": name})

    runner = CliRunner()
    result = runner.invoke(
        app, ["x", "--segments", "4", "--no-compact", "--search-param", "ef=8", "--index-field", "lang"]
    )
    assert result.exit_code == 0, result.output
    assert received == [
        {
            "segments": 4,
            "compact": False,
            "search_params": ["ef=8"],
            "index_fields": ("lang",),
            "adopt": False,
            "name": "x",
        }
    ]
    page = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).stdout
    assert "Segments of the collection [per shard]." in page and "Compact after upsert." in page
    assert runner.invoke(app, ["x", "--segments", "0"]).exit_code == 2


@pytest.mark.parametrize(
    "command", [["ingest"], ["search"], ["collections"], ["collections", "info"]], ids=" ".join
)
def test_storage_help_pages(command) -> None:
    page = help_page(*command)
    assert "\\[" not in page and "[/" not in page and "[bold" not in page
    if command == ["ingest"]:
        assert "Qdrant storage options (--qdrant, --qdrant-edge)" in page
        assert "Milvus storage options (--milvus)" in page and "[default: AUTOINDEX]" in page
        assert "<int8|binary>" in page and "doc_id is always indexed" in page
    if command == ["search"]:
        assert "--no-rescore" in page and "[default: rescore]" in page
    if command == ["collections", "info"]:
        assert "[default: every collection]" in page


# -- checks before the engine starts --------------------------------------------------------------------


class FakeUnmanagedSink(BaseSink):
    """A collection someone else created: no manifest."""

    def __init__(self, collection: str, **kwargs: Any) -> None:
        super().__init__(
            collection,
            layout=kwargs.get("layout"),
            max_attempts=1,
            retry_wait=0,
            adopt=kwargs.get("adopt", False),
        )

    def read_manifest(self) -> Manifest | None:
        raise UnmanagedCollectionError(
            f"collection {self.collection!r} was not created by vllm-embed: ingest with --adopt (adopt=True)"
        )


def test_an_unmanaged_collection_is_refused_before_the_engine_unless_adopted(
    monkeypatch, corpus, tmp_path
) -> None:
    monkeypatch.setattr(qdrant_module, "QdrantSink", FakeUnmanagedSink)
    monkeypatch.setattr(cli, "make_embedder", no_engine)
    args = ingest_args(corpus, "--qdrant", str(tmp_path / "q"))
    code, _, err = run(*args)
    assert code == 1 and "was not created by vllm-embed" in err and "--adopt" in err, err

    started: list[Any] = []

    def record(config: Any) -> None:
        started.append(config)
        raise typer.Exit(3)

    monkeypatch.setattr(cli, "make_embedder", record)
    code, _, err = run(*args, "--adopt")
    assert code == 3 and len(started) == 1, err


# -- collections info ------------------------------------------------------------------------------------


def make_collections(kind: str, root: Path) -> None:
    """A hybrid vllm-embed collection made with the Fake embedder, and one made by the store's own client."""
    documents = [{"id": f"d{i}", "text": f"document number {i}", "lang": "en"} for i in range(3)]
    with open_sink(kind, root, "docs", hybrid=True) as sink:
        ingest(documents, embedder=FakeHashEmbedder(), sink=sink, progress=False)
        if kind == "milvus":
            sink.client.create_collection("theirs", dimension=8)
        else:
            vectors = qdrant_models.VectorParams(size=8, distance=qdrant_models.Distance.COSINE)
            sink.client.create_collection("theirs", vectors_config=vectors)


def store_flag(kind: str, root: Path) -> list[str]:
    return ["--qdrant", str(root / "qdrant")] if kind == "qdrant" else ["--milvus", str(root / "milvus.db")]


@pytest.mark.parametrize("kind", ["qdrant", "milvus"])
def test_collections_info_lists_a_real_store(kind, tmp_path) -> None:
    make_collections(kind, tmp_path)
    code, out, err = run("collections", "info", *store_flag(kind, tmp_path), "--json")
    assert code == 0, err
    docs, theirs = json.loads(out)
    assert [(i["name"], i["points"], i["dimensions"], i["distance"]) for i in (docs, theirs)] == [
        ("docs", 3, 8, "cosine"),
        ("theirs", 0, 8, "cosine"),
    ]
    assert docs["manifest"]["model"] == "fake-model" and docs["manifest"]["sparse"] == "bm25"
    assert theirs["manifest"] is None

    code, out, err = run("collections", "info", *store_flag(kind, tmp_path), COLUMNS="250")
    assert code == 0, err
    assert "fake-model" in out and "— (not vllm-embed; --adopt)" in out
    if kind == "milvus":  # Qdrant's local mode keeps no payload index, and says so by reporting none
        assert "index=AUTOINDEX" in out and "doc_id (INVERTED)" in out
    else:
        assert "hnsw_m=16, hnsw_ef_construct=100" in out

    code, out, err = run("collections", "info", *store_flag(kind, tmp_path), "-c", "docs")
    assert code == 0, err
    assert "collection: docs" in out and "points: 3" in out and "sparse: bm25" in out

    code, _, err = run("collections", "info", *store_flag(kind, tmp_path), "-c", "nothing")
    assert code == 1 and "'nothing' does not exist" in err, err


def test_collections_info_refuses_a_missing_local_store(tmp_path) -> None:
    for flags in (
        ["--qdrant", str(tmp_path / "q")],
        ["--qdrant-edge", str(tmp_path / "e")],
        ["--milvus", str(tmp_path / "m.db")],
    ):
        code, _, err = run("collections", "info", *flags)
        assert code == 1 and "no such store" in err, err
    assert list(tmp_path.iterdir()) == []


HOLDER = """
import sys, time
from vllm_embed.sinks import QdrantEdgeSink
sink = QdrantEdgeSink(sys.argv[2], path=sys.argv[1])
sink.count()
print("ready", flush=True)
time.sleep(600)
"""


def test_collections_info_lists_the_rest_when_one_collection_is_busy_or_damaged(tmp_path) -> None:
    root = tmp_path / "edge"
    for name in ("alpha", "busy", "damaged"):
        with QdrantEdgeSink(name, path=str(root)) as sink:
            ingest(["one", "two"], embedder=FakeHashEmbedder(), sink=sink, progress=False)
    (root / "damaged" / MANIFEST_FILE).write_text("{not json")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root), "busy"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        code, out, err = run("collections", "info", "--qdrant-edge", str(root), COLUMNS="250")
        assert code == 0, err
        rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│ ")}
        assert set(rows) == {"alpha", "busy", "damaged"} and "fake-model" in rows["alpha"]
        assert "busy (open elsewhere)" in rows["busy"] and "damaged manifest" in rows["damaged"]
        warnings = err.strip().splitlines()
        assert len(warnings) == 2, err
        assert warnings[0].startswith("warning: collection 'busy': ") and f"PID {holder.pid}" in warnings[0]
        assert warnings[1].startswith("warning: collection 'damaged': ") and "is damaged" in warnings[1]

        code, out, err = run("collections", "info", "--qdrant-edge", str(root), "--json")
        assert code == 0, err
        alpha, busy, damaged = json.loads(out)
        assert alpha["points"] == 2 and "error" not in alpha
        assert busy["name"] == "busy" and "is open elsewhere" in busy["error"]
        assert damaged["name"] == "damaged" and "is damaged" in damaged["error"]
    finally:
        stop_process_tree(holder.pid)


class FakeListingSink(BaseSink):
    """A store of two collections, one of them not vllm-embed's, as `info()` reports them."""

    INFOS: ClassVar[dict[str, CollectionInfo]] = {
        "docs": CollectionInfo(
            name="docs",
            store="FakeListingSink()",
            manifest=Manifest(model="m [x]", dimensions=4, adopted=True, storage={"quantization": "int8"}),
            points=1234,
            dimensions=4,
            distance="cosine",
            storage={
                "quantization": "int8",
                "on_disk": False,
                "hnsw_m": 32,
                "sparse_vectors": {"bm25": {"modifier": "idf"}},
                "segments": [{"index": "hnsw", "m": 32, "quantization": "int8"}],
            },
            payload_indexes={"doc_id": "keyword", "lang": "keyword"},
            disk_bytes=2_500_000,
        ),
        "theirs": CollectionInfo(
            name="theirs", store="FakeListingSink()", manifest=None, points=7, dimensions=4, distance="dot"
        ),
    }

    def __init__(self, collection: str, **kwargs: Any) -> None:
        super().__init__(collection, layout=None, max_attempts=1, retry_wait=0)

    def collection_names(self) -> list[str]:
        return list(self.INFOS)

    def for_collection(self, name: str) -> FakeListingSink:
        return FakeListingSink(name)

    def info(self) -> CollectionInfo:
        return self.INFOS[self.collection]


def test_collections_info_table_and_details(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(qdrant_module, "QdrantSink", FakeListingSink)
    (tmp_path / "q").mkdir()
    code, out, err = run("collections", "info", "--qdrant", str(tmp_path / "q"), COLUMNS="250")
    assert code == 0, err
    assert "m [x] (adopted)" in out and "— (not vllm-embed; --adopt)" in out and "1,234" in out
    assert "quantization=int8, hnsw_m=32 " in out and "segments" not in out
    assert "doc_id (keyword), lang (keyword)" in out and "2.5 MB" in out

    code, out, err = run("collections", "info", "--qdrant", str(tmp_path / "q"), "-c", "docs")
    assert code == 0, err
    assert "collection: docs in FakeListingSink()" in out and "model: m [x] (adopted)" in out
    assert "storage: quantization=int8, hnsw_m=32\n" in out and "  sparse_vectors: bm25.modifier=idf\n" in out
    assert "  segments[0]: index=hnsw, m=32, quantization=int8\n" in out
    assert "  storage: quantization=int8\n" in out  # as the manifest records it

    code, out, _ = run("collections", "info", "--qdrant", str(tmp_path / "q"), "--json")
    assert json.loads(out) == [info.to_dict() for info in FakeListingSink.INFOS.values()]


def test_a_qdrant_server_gets_the_storage_flags_as_requests(corpus, monkeypatch) -> None:
    from qdrant_stub import qdrant_stub

    monkeypatch.setattr(cli, "make_embedder", FakeEngine())
    with qdrant_stub() as stub:
        code, _, err = run(
            *ingest_args(corpus, "--qdrant", stub.url), "--no-progress",
            "--quantization", "binary", "--hnsw-m", "32", "--shard-number", "2", "--index-field", "lang",
        )  # fmt: skip
        assert code == 0, err
        [create] = stub.calls("PUT", "/collections/docs")
        assert "binary" in create.body["quantization_config"] and create.body["hnsw_config"] == {"m": 32}
        assert create.body["shard_number"] == 2
        assert [r.body["field_name"] for r in stub.calls("PUT", "/collections/docs/index")] == [
            "doc_id",
            "metadata.lang",
        ]
        [info] = json.loads(run("collections", "info", "--qdrant", stub.url, "--json")[1])
        assert (info["storage"]["quantization"], info["storage"]["hnsw_m"]) == ("binary", 32)

        code, _, err = run("search", "tea", "-c", "docs", "--qdrant", stub.url, "--ef", "64", "--no-rescore")
        assert code == 0, err
        [query] = stub.calls("POST", "/collections/docs/points/query")
        assert query.body["params"] == {
            "hnsw_ef": 64,
            "quantization": {"rescore": False, "oversampling": 2.0},
        }


def test_an_index_field_milvus_lite_cannot_index_is_refused_before_the_engine_on_a_new_collection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "make_embedder", no_engine)
    corpus = write_corpus(tmp_path)
    store = tmp_path / "milvus.db"
    args = ["ingest", str(corpus), "-c", "docs", "-m", "fake-model", "--milvus", str(store), "--no-progress"]
    code, _, err = run(*args, "--index-field", "lang")
    assert code != 0 and "Milvus Lite cannot index metadata field 'lang'" in err, err
    with open_sink("milvus", tmp_path, "docs") as sink:
        assert sink.read_manifest() is None
