"""`vllm-embed ingest --hybrid` and `vllm-embed search --mode/--candidates`, with a Fake engine."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import FakeEngine, no_engine, run, write_corpus

from vllm_embed import cli


def test_hybrid_ingest_then_each_search_mode(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(cli, "make_embedder", FakeEngine())
    store, target = "--qdrant", str(tmp_path / "q")  # Milvus: the same sink calls, in test_hybrid_sinks.py
    corpus = str(write_corpus(tmp_path))
    code, _, err = run("ingest", corpus, "-m", "fake-model", "-c", "docs", store, target, "--hybrid")
    assert code == 0, err

    def hits(*options: str) -> list[dict]:
        code, out, err = run("search", "borrow checker", "-c", "docs", store, target, "--json", *options)
        assert code == 0, err
        return list(json.loads(out))

    sparse = hits("--mode", "sparse")
    assert [h["doc_id"] for h in sparse] == ["rust"] and sparse[0]["found_by"] == ["sparse"]
    fused = hits("--top-k", "2", "--candidates", "3")  # hybrid by default on a hybrid collection
    assert fused[0]["doc_id"] == "rust" and fused[0]["found_by"] == ["dense", "sparse"]
    assert len(fused) == 2
    weighted = hits("--fusion", "weighted", "--dense-weight", "0", "--sparse-weight", "1", "--top-k", "1")
    assert [h["doc_id"] for h in weighted] == ["rust"] and weighted[0]["score"] == 1.0  # BM25's best, alone
    assert {tuple(h["found_by"]) for h in hits("--mode", "dense")} == {("dense",)}


def test_mistakes_are_refused_before_the_engine_starts(tmp_path: Path, monkeypatch) -> None:
    corpus = str(write_corpus(tmp_path))
    store = ["--qdrant", str(tmp_path / "q")]
    monkeypatch.setattr(cli, "make_embedder", FakeEngine())
    assert run("ingest", corpus, "-m", "fake-model", "-c", "dense", *store)[0] == 0

    monkeypatch.setattr(cli, "make_embedder", no_engine)
    code, _, err = run("search", "tea", "-c", "dense", *store, "--mode", "hybrid")
    assert code == 1 and "mode='hybrid' needs sparse vectors" in err and "--hybrid" in err
    code, _, err = run("ingest", corpus, "-m", "fake-model", "-c", "dense", *store, "--hybrid")
    assert code == 1 and "is dense-only" in err
    code, _, err = run(
        "ingest", corpus, "-m", "fake-model", "-c", "new", *store, "--hybrid", "--layout", "llama-index"
    )
    assert code == 1 and "the llama-index layout stores no sparse vector" in err
    code, _, err = run("search", "tea", "-c", "dense", *store, "--dense-weight", "-1")
    assert code == 2 and "--dense-weight" in err
    code, _, err = run("search", "tea", "-c", "dense", *store, "--fusion", "max")
    assert code == 2 and "--fusion" in err
    code, _, err = run("search", "tea", "-c", "dense", *store, "--mode", "bm25")
    assert code == 2 and "bm25" in err


def test_sparse_and_multivector_flag_mistakes_are_one_line_before_any_engine(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(cli, "make_embedder", no_engine)
    corpus = str(write_corpus(tmp_path))
    base = ("ingest", corpus, "-m", "fake-model", "--qdrant", str(tmp_path / "q"))
    cases = [
        (("-c", "new", "--hybrid", "--sparse-model", "naver/splade-v3"), "leave out --hybrid"),
        (("-c", "new", "--sparse-model", "naver/splade-v3", "--ray", "local"), "leave out --ray"),
        (("-c", "new", "--layout", "llama-index", "--sparse-model", "naver/splade-v3"), "no sparse vector"),
    ]
    for flags, fix in cases:
        code, _, err = run(*base, *flags)
        assert code == 1 and fix in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "q" / "collection" / "new").exists()
