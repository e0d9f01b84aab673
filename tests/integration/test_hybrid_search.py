"""Hybrid (dense + BM25) search with the real engine (the session's MiniLM) on every real store."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest_fixtures import STORES, open_sink

from vllm_embed.ingest import Document, ingest, search
from vllm_embed.sinks import MilvusSink

CORPUS = [
    Document(
        "Cyclic redundancy checks detect accidental corruption of data blocks on disk.",
        id="crc-theory",
        metadata={"kind": "concept"},
    ),
    Document(
        "Checksums and hash digests let a download be verified against tampering.",
        id="hashes",
        metadata={"kind": "concept"},
    ),
    Document(
        "The storage writer calls zlib.crc32 on every block before it is flushed.",
        id="writer",
        metadata={"kind": "code"},
    ),
    Document(
        "Error-detecting codes add a few redundant bits to each transmitted frame.",
        id="codes",
        metadata={"kind": "concept"},
    ),
    Document(
        "Parity bits and checksums catch single-bit errors in memory and on networks.",
        id="parity",
        metadata={"kind": "concept"},
    ),
    Document("Espresso is brewed by forcing hot water through ground coffee.", id="coffee"),
]
QUERY = "zlib.crc32"


def check_hybrid_search(sink, embedder) -> None:
    report = ingest(CORPUS, embedder=embedder, sink=sink, progress=False)
    assert report.written == len(CORPUS)

    dense = search(QUERY, embedder=embedder, sink=sink, top_k=2, mode="dense")
    sparse = search(QUERY, embedder=embedder, sink=sink, top_k=2, mode="sparse")
    assert [h.doc_id for h in sparse] == ["writer"]  # the only chunk with the identifier
    hybrid = search(QUERY, embedder=embedder, sink=sink, top_k=2)  # hybrid: the collection's default
    assert hybrid[0].doc_id == "writer" and "sparse" in hybrid[0].found_by
    assert hybrid[0].score > hybrid[1].score
    print(
        "DENSE",
        [(h.doc_id, round(h.score, 3)) for h in dense],
        "HYBRID",
        [(h.doc_id, h.found_by) for h in hybrid],
    )

    filtered = search(QUERY, embedder=embedder, sink=sink, top_k=3, filter={"kind": "concept"})
    assert filtered and all(h.metadata == {"kind": "concept"} for h in filtered)
    assert all(h.found_by == ("dense",) for h in filtered)


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
