"""Learned sparse and multi-vector collections end to end: real engines (MiniLM dense, the SPLADE and
ColBERT fixtures), real stores, from Python and from the CLI.

The stores' rankings are checked against brute force over the embedders' own vectors of the stored texts:
sparse search against the dot product, the late-interaction stage against numpy MaxSim.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run
from ingest_fixtures import maxsim, open_sink

from vllm_embed import Embedder, MultiVectorEmbedder, SparseEmbedder
from vllm_embed.ingest import Document, ingest, search

TOPICS = [
    "Green tea is made from unoxidised leaves of Camellia sinensis.",
    "Rust's borrow checker enforces memory safety at compile time.",
    "The Alps are the highest mountain range in Europe.",
    "Qdrant stores dense, sparse and multi-vector embeddings with payloads.",
    "Milvus Lite keeps a whole vector database in one local file.",
    "SPLADE expands a text into weighted vocabulary terms with a masked language model head.",
    "ColBERT scores a query against a document by late interaction over token vectors.",
    "Espresso is brewed by forcing hot water through finely ground coffee.",
    "The Danube flows through ten countries before reaching the Black Sea.",
    "Python's garbage collector frees reference cycles that counting alone cannot.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "A suspension bridge hangs its deck from cables slung between towers.",
]
DOCS = [Document(text, id=f"t{i}", metadata={"n": i}) for i, text in enumerate(TOPICS)]
QUERIES = ["which drink comes from leaves", "memory safety in a compiled language", "token level matching"]


@pytest.fixture(scope="module")
def colbert(colbert_path: Path) -> Iterator[MultiVectorEmbedder]:
    with MultiVectorEmbedder(str(colbert_path), dtype="float32") as embedder:
        yield embedder


@pytest.mark.parametrize("kind", ["qdrant-edge", "qdrant", "milvus"])
def test_stored_vectors_rank_as_brute_force_over_the_embedders_vectors(
    kind: str,
    tmp_path: Path,
    minilm_embedder: Embedder,
    splade_embedder: SparseEmbedder,
    colbert: MultiVectorEmbedder,
) -> None:
    late = None if kind == "milvus" else colbert  # Milvus refuses per-token vectors (the contract suite)
    with open_sink(kind, tmp_path) as sink:
        report = ingest(DOCS, embedder=minilm_embedder, sink=sink, sparse=splade_embedder, multivector=late)
        assert report.written == len(DOCS)
        manifest = sink.read_manifest()
        assert manifest.sparse_model["model"] == splade_embedder.config.model
        assert (manifest.multivector is None) == (late is None)
        sparse_docs = splade_embedder.embed_documents(TOPICS)
        for query in QUERIES:
            vector = splade_embedder.embed_query(query)
            scores = np.asarray([vector.dot(doc) for doc in sparse_docs])
            hits = search(query, embedder=minilm_embedder, sink=sink, sparse=splade_embedder, mode="sparse",
                          multivector=False, top_k=5)  # fmt: skip
            assert [h.doc_id for h in hits] == [f"t{i}" for i in np.argsort(-scores, kind="stable")[:5]]
            assert [h.score for h in hits] == pytest.approx(np.sort(scores)[::-1][:5], rel=1e-3)
            if late is None:
                continue
            docs = late.embed_documents(TOPICS)
            matrix = late.embed_query(query)
            expected = np.asarray([maxsim(matrix, doc) for doc in docs])
            hits = search(query, embedder=minilm_embedder, sink=sink, sparse=splade_embedder,
                          multivector=late, top_k=5, candidates=len(DOCS))  # fmt: skip
            assert [h.doc_id for h in hits] == [f"t{i}" for i in np.argsort(-expected, kind="stable")[:5]]
            assert [h.maxsim_score for h in hits] == pytest.approx(np.sort(expected)[::-1][:5], rel=1e-3)
            assert all(h.score != h.maxsim_score for h in hits)  # `score` stays the first stage's
    with open_sink(kind, tmp_path) as sink:  # a re-run embeds nothing and needs the same models
        report = ingest(DOCS, embedder=minilm_embedder, sink=sink, sparse=splade_embedder, multivector=late)
        assert (report.embedded, report.skipped) == (0, len(DOCS))


def test_the_cli_ingests_with_both_models_and_search_builds_them_from_the_manifest(
    tmp_path: Path,
    minilm_path: str,
    minilm_embedder: Embedder,
    splade_embedder: SparseEmbedder,
    colbert: MultiVectorEmbedder,
    splade_path: Path,
    colbert_path: Path,
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in DOCS))
    store = ("--qdrant-edge", str(tmp_path / "edge"), "-c", "docs", "--dtype", "float32")
    code, out, err = run(
        "ingest", str(corpus), "-m", minilm_path, *store, "--sparse-model", str(splade_path),
        "--multivector-model", str(colbert_path), "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    assert "12 documents" in out or "12 document" in out
    code, out, err = run("search", QUERIES[0], *store, "--json", "-k", "3")
    assert code == 0, err
    hits = json.loads(out)
    assert len(hits) == 3 and all("maxsim_score" in hit for hit in hits)
    assert {tuple(hit["found_by"]) for hit in hits} <= {("dense",), ("sparse",), ("dense", "sparse")}
    code, out, err = run("search", QUERIES[1], *store, "--json", "--mode", "sparse", "--no-multivector")
    assert code == 0, err
    assert all("maxsim_score" not in hit for hit in json.loads(out))
    # a re-run without the models the collection names is refused before any engine, naming them
    code, out, err = run("ingest", str(corpus), "-m", minilm_path, *store, "--no-progress")
    assert code == 1 and str(splade_path) in err and "--sparse-model" in err
    code, out, err = run(
        "ingest", str(corpus), "-m", minilm_path, *store, "--hybrid", "--sparse-model", str(splade_path)
    )
    assert code == 1 and "not BM25: leave out --hybrid" in err and len(err.strip().splitlines()) == 1
