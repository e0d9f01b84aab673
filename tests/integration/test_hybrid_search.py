"""Hybrid (dense + BM25) search with the real engine (the session's MiniLM) on every real store."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest_fixtures import STORES, open_sink

from vllm_embed.ingest import Document, ingest, search
from vllm_embed.sinks import MilvusSink

CORPUS = [
    Document(text, id=key, metadata={"kind": kind})
    for key, kind, text in [
        ("e4012", "error", "Error E4012: the disk quota of the account was exceeded."),
        ("e4021", "error", "Error E4021: the upload was rejected because the file is too large."),
        ("e4102", "error", "Error E4102: the session token expired; sign in again."),
        ("e4120", "error", "Error E4120: the server is busy, retry in a minute."),
        ("e4201", "error", "Error E4201: the storage bucket does not exist."),
        ("writer", "code", "The storage writer calls zlib.crc32 on every block before it is flushed."),
        ("adler", "code", "zlib.adler32 computes an Adler-32 checksum of data, faster than a CRC."),
        ("crc", "concept", "Cyclic redundancy checks detect accidental corruption of data blocks on disk."),
    ]
]


def check_hybrid_search(sink, embedder) -> None:
    report = ingest(CORPUS, embedder=embedder, sink=sink, progress=False)
    assert report.written == len(CORPUS)

    # MiniLM places E4120 above E4102 (the codes differ by one transposition); only BM25 matches the token
    dense = search("E4102", embedder=embedder, sink=sink, top_k=3, mode="dense")
    assert dense[0].doc_id != "e4102"
    sparse = search("E4102", embedder=embedder, sink=sink, top_k=3, mode="sparse")
    assert [h.doc_id for h in sparse] == ["e4102"]
    hybrid = search("E4102", embedder=embedder, sink=sink, top_k=3)  # hybrid: the collection's default
    assert hybrid[0].doc_id == "e4102" and set(hybrid[0].found_by) == {"dense", "sparse"}
    assert hybrid[0].score > hybrid[1].score and hybrid[1].found_by == ("dense",)

    hybrid = search("zlib.crc32", embedder=embedder, sink=sink, top_k=2, candidates=4)
    assert hybrid[0].doc_id == "writer" and "sparse" in hybrid[0].found_by

    filtered = search("E4102 zlib.crc32", embedder=embedder, sink=sink, top_k=3, filter={"kind": "code"})
    assert {h.doc_id for h in filtered} == {"writer", "adler"}
    assert all(h.metadata == {"kind": "code"} for h in filtered)


@pytest.mark.parametrize("kind", STORES)
def test_an_identifier_only_bm25_finds_ranks_first_in_hybrid(
    kind: str, tmp_path: Path, minilm_embedder
) -> None:
    with open_sink(kind, tmp_path, hybrid=True) as sink:
        check_hybrid_search(sink, minilm_embedder)


def test_hybrid_search_on_a_milvus_server(milvus_server: str, minilm_embedder) -> None:
    with MilvusSink("hybrid_docs", uri=milvus_server, hybrid=True) as sink:
        check_hybrid_search(sink, minilm_embedder)
        sink.client.drop_collection("hybrid_docs")
