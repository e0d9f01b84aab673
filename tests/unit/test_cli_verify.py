"""`vllm-embed verify` finds unusable stored vectors, exits 1 while any remain, and repairs them with --repair
(the engine starts only then, with the manifest's model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import FakeEngine, no_engine, run
from ingest_fixtures import FakeHashEmbedder, dump_store, open_sink, poison

from vllm_embed import cli
from vllm_embed.ingest import ingest

TEXTS = [f"text number {i}" for i in range(7)]


def poisoned_store(tmp_path: Path) -> list[str]:
    with open_sink("qdrant", tmp_path) as sink:
        ingest(TEXTS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
        bad = sorted(dump_store(sink))[:2]
        poison(sink, bad)
    return bad


def test_verify_reports_and_repairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = poisoned_store(tmp_path)
    store = ["--qdrant", str(tmp_path / "qdrant"), "-c", "docs"]

    monkeypatch.setattr(cli, "make_embedder", no_engine)
    code, out, err = run("verify", *store, "--json")
    assert code == 1 and "run again with --repair" in err
    assert json.loads(out) == {
        "checked": 7,
        "invalid": 2,
        "repaired": 0,
        "invalid_ids": bad,
        "unrepairable": 0,
    }

    engine = FakeEngine()
    monkeypatch.setattr(cli, "make_embedder", engine)
    code, out, err = run("verify", *store, "--repair")
    assert code == 0, err
    assert out.startswith("7 points checked, 2 invalid, 2 repaired")
    assert [c.model for c in engine.configs] == ["fake-model"]  # the manifest's model

    code, out, err = run("verify", *store)
    assert code == 0, err
    assert len(engine.configs) == 1  # nothing to repair: no engine


def test_verify_a_missing_collection_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "make_embedder", no_engine)
    code, _, err = run("verify", "--qdrant", str(tmp_path / "q"), "-c", "nope")
    assert code == 1 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


def test_verify_blames_a_hand_edited_manifest_size_not_the_vectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_sink("qdrant", tmp_path) as sink:
        ingest(TEXTS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
        stored = sink.read_manifest()
        assert stored is not None
        edited = stored.model_copy(update={"dimensions": 16}).model_dump()
        sink.client.update_collection(sink.collection, metadata={"vllm_embed": edited})
    monkeypatch.setattr(cli, "make_embedder", no_engine)
    code, out, err = run("verify", "--qdrant", str(tmp_path / "qdrant"), "-c", "docs", "--repair")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "says 16 dimensions but the store holds 8-dimensional vectors" in err
