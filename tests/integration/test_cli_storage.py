"""Storage plans through the CLI on real stores: `ingest` with quantization, HNSW and payload-index flags,
`collections info` reading them back from the engine, `search` settings, refusals and `--adopt`.

No vLLM engine: the CLI's `make_embedder` is a Fake hash embedder (the vectors' meaning does not matter here);
the stores are real (qdrant-edge shards in a temporary directory, Milvus Lite files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import FakeEngine, no_engine, run, write_corpus
from ingest_fixtures import FakeHashEmbedder, open_sink

from vllm_embed import cli
from vllm_embed.ingest import ingest


@pytest.fixture
def corpus(tmp_path: Path) -> str:
    return str(write_corpus(tmp_path))


def infos(*store: str) -> list[dict[str, Any]]:
    code, out, err = run("collections", "info", *store, "--json")
    assert code == 0, err
    data: list[dict[str, Any]] = json.loads(out)
    return data


def test_a_quantized_edge_collection_is_created_searched_and_shown_as_the_engine_keeps_it(
    corpus, tmp_path, monkeypatch
) -> None:
    store = ["--qdrant-edge", str(tmp_path / "edge")]
    ingest_args = ["ingest", corpus, "-m", "fake-model", "-c", "docs", *store, "--no-progress"]
    monkeypatch.setattr(cli, "make_embedder", FakeEngine())
    code, _, err = run(*ingest_args, "--quantization", "int8", "--hnsw-m", "32", "--index-field", "lang")
    assert code == 0, err

    [info] = infos(*store)
    assert (info["name"], info["points"], info["dimensions"], info["distance"]) == ("docs", 3, 8, "cosine")
    assert info["storage"]["quantization"] == "int8" and info["storage"]["hnsw_m"] == 32
    assert info["payload_indexes"] == {"doc_id": "keyword", "metadata.lang": "keyword"}
    assert info["manifest"]["storage"]["quantization"] == "int8"
    assert info["manifest"]["storage"]["index_fields"] == ["lang:keyword"]
    assert info["disk_bytes"] > 0

    code, out, err = run("collections", "info", *store, COLUMNS="250")
    assert code == 0 and "quantization=int8, hnsw_m=32" in out and "metadata.lang (keyword)" in out, err

    code, out, err = run(
        "search", "green tea", "-c", "docs", *store, "--ef", "64", "--oversampling", "2", "--json"
    )
    assert code == 0, err
    assert {hit["doc_id"] for hit in json.loads(out)} == {"tea", "rust", "alps"}

    monkeypatch.setattr(cli, "make_embedder", no_engine)
    code, _, err = run(*ingest_args, "--quantization", "binary")
    assert code == 1 and "other storage settings" in err and "quantization: collection has 'int8'" in err, err

    monkeypatch.setattr(cli, "make_embedder", FakeEngine())
    code, out, err = run(*ingest_args, "--json")  # no storage flags: the collection's settings
    assert code == 0 and json.loads(out)["skipped"] == 3, err


def test_a_collection_vllm_embed_did_not_create_is_adopted_only_with_adopt_and_when_it_fits(
    corpus, tmp_path, monkeypatch
) -> None:
    root = tmp_path / "qdrant-edge"
    for name, dimension in (("theirs", 8), ("narrow", 4)):
        with open_sink("qdrant-edge", tmp_path, name) as sink:
            documents = [{"id": "x", "text": "someone else's point"}]
            ingest(documents, embedder=FakeHashEmbedder(dimension=dimension), sink=sink, progress=False)
        (root / name / "vllm_embed.json").unlink()  # as if made without vllm-embed
    store = ["--qdrant-edge", str(root)]
    assert [i["manifest"] for i in infos(*store)] == [None, None]
    code, out, err = run("collections", "info", *store, COLUMNS="250")
    assert code == 0 and out.count("— (not vllm-embed; --adopt)") == 2, err

    monkeypatch.setattr(cli, "make_embedder", no_engine)
    ingest_args = ["ingest", corpus, "-m", "fake-model", *store, "--no-progress"]
    code, _, err = run(*ingest_args, "-c", "theirs")
    assert code == 1 and "no vllm-embed manifest" in err and "--adopt" in err, err

    monkeypatch.setattr(cli, "make_embedder", FakeEngine())
    code, _, err = run(*ingest_args, "-c", "narrow", "--adopt")
    assert code == 1 and "cannot be adopted" in err and "collection has 4, this run has 8" in err, err
    code, _, err = run(*ingest_args, "-c", "theirs", "--adopt", "--index-field", "lang")
    assert code == 0, err

    theirs, narrow = infos(*store, "-c", "theirs")[0], infos(*store, "-c", "narrow")[0]
    assert theirs["manifest"]["adopted"] is True and theirs["points"] == 4
    assert "metadata.lang" in theirs["payload_indexes"] and narrow["manifest"] is None
    code, out, err = run("collections", "info", *store, "-c", "theirs")
    assert code == 0 and "model: fake-model (adopted)" in out, err


def test_milvus_index_flags_create_that_index(corpus, tmp_path, monkeypatch) -> None:
    store = ["--milvus", str(tmp_path / "milvus.db")]
    ingest_args = ["ingest", corpus, "-m", "fake-model", "-c", "docs", *store, "--no-progress"]
    monkeypatch.setattr(cli, "make_embedder", FakeEngine())
    index = ["--index", "HNSW", "--index-param", "M=16", "--index-param", "efConstruction=64"]
    code, _, err = run(*ingest_args, *index)
    assert code == 0, err
    [info] = infos(*store)
    assert info["storage"]["index"] == "HNSW" and "doc_id" in info["payload_indexes"]
    # Milvus Lite's describe_index does not report build parameters; the manifest records them
    assert info["manifest"]["storage"]["index_params"] == {"M": 16, "efConstruction": 64}

    code, out, err = run("search", "tea", "-c", "docs", *store, "--search-param", "ef=32", "--json")
    assert code == 0 and len(json.loads(out)) == 3, err

    monkeypatch.setattr(cli, "make_embedder", no_engine)
    code, _, err = run(*ingest_args, "--index", "IVF_FLAT")
    assert code == 1 and "other storage settings" in err and "index: collection has 'HNSW'" in err, err
    code, _, err = run(*ingest_args, "--index-field", "lang")
    assert code == 1 and "Milvus Lite cannot index metadata field 'lang'" in err, err
