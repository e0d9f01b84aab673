"""The `vllm-embed` CLI on a real engine: ingest then search in-process on the session's engine (the
subprocess runs are in test_ingest_crash.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import CORPUS_ROWS, SharedEngine, no_engine, run, write_corpus

from vllm_embed import cli
from vllm_embed.embedder import Embedder


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    return write_corpus(tmp_path)


@pytest.mark.parametrize("store", ["--qdrant", "--milvus", "milvus-server"])
def test_ingest_then_search_without_model(
    store, tmp_path, corpus_file, monkeypatch, minilm_embedder, minilm_path, request
) -> None:
    if store == "milvus-server":
        store, target = "--milvus", request.getfixturevalue("milvus_server")
    else:
        target = str(tmp_path / ("q" if store == "--qdrant" else "m.db"))
    engine = SharedEngine(minilm_embedder, minilm_path)
    monkeypatch.setattr(cli, "make_embedder", engine)

    code, out, err = run(
        "ingest",
        str(corpus_file),
        "-m",
        minilm_path,
        "-c",
        "docs",
        store,
        target,
        "--dtype",
        "float32",
        "--no-progress",
    )
    assert code == 0, err
    assert "3 documents, 3 chunks: 3 embedded, 0 already stored, 3 written" in out
    assert engine.configs[-1].dtype == "float32"

    # A re-run with everything stored builds the command's own Embedder, and never starts its engine.
    built: list[Embedder] = []
    monkeypatch.setattr(
        cli, "make_embedder", lambda config: built.append(Embedder._unstarted(config)) or built[-1]
    )
    code, out, err = run(
        "ingest", str(corpus_file), "-m", minilm_path, "-c", "docs", store, target, "--dtype", "float32"
    )
    assert code == 0, err
    assert "3 documents, 3 chunks: 0 embedded, 3 already stored, 0 written" in out
    assert built[0]._backend is None and built[0].closed
    monkeypatch.setattr(cli, "make_embedder", engine)

    code, out, err = run(
        "search", "which language prevents memory bugs?", "-c", "docs", store, target, "--json", "-k", "2"
    )
    assert code == 0, err
    hits = json.loads(out)
    assert hits[0]["doc_id"] == "rust" and len(hits) == 2
    assert set(hits[0]) == {"id", "doc_id", "chunk_index", "score", "text", "metadata", "found_by"}
    assert engine.configs[-1].dimensions == 384

    code, out, err = run("search", "mountains", "-c", "docs", store, target, "--filter", 'lang=fr "quoted"')
    assert code == 0, err
    assert "1. " in out and "alps #0" in out and "2. " not in out

    monkeypatch.setattr(cli, "make_embedder", no_engine)
    code, _, err = run("search", "q", "-c", "docs", store, target, "--model", "other/model")
    assert code == 1 and "model: collection has" in err and "this run has 'other/model'" in err


def test_search_reranks_with_the_rerank_flag(
    tmp_path, corpus_file, monkeypatch, minilm_embedder, minilm_path, cross_encoder_reranker
) -> None:
    engine = SharedEngine(minilm_embedder, minilm_path)
    monkeypatch.setattr(cli, "make_embedder", engine)
    reranker = SharedEngine(cross_encoder_reranker, "CE")
    monkeypatch.setattr(cli, "make_reranker", reranker)
    target = str(tmp_path / "q")
    code, _, err = run(
        "ingest", str(corpus_file), "-m", minilm_path, "-c", "docs", "--qdrant", target, "--no-progress"
    )
    assert code == 0, err
    query = "which language prevents memory bugs?"
    code, out, err = run(
        "search",
        query,
        "-c",
        "docs",
        "--qdrant",
        target,
        "--json",
        "-k",
        "2",
        "--rerank",
        "CE",
        "--candidates",
        "3",
    )
    assert code == 0, err
    hits = json.loads(out)
    texts = [row["text"] for row in CORPUS_ROWS]
    expected = cross_encoder_reranker.rerank(query, texts, top_k=2)
    assert [hit["text"] for hit in hits] == [texts[index] for index, _ in expected]
    assert [hit["rerank_score"] for hit in hits] == pytest.approx([score for _, score in expected], abs=1e-5)
    assert reranker.configs[0].dtype == engine.configs[-1].dtype
    code, out, err = run("search", query, "-c", "docs", "--qdrant", target, "--rerank", "CE")
    assert code == 0, err
    assert "(first " in out
