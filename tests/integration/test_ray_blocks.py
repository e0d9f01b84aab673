"""The Ray ingest's per-block work, without Ray or an engine: the same points as `ingest`, resumable.

In the integration tier for its time only (loading the tokenizer takes seconds); it starts no engine.

A Fake embedder stands in for the replicas; the blocks go through the functions the Ray tasks run.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from ingest_fixtures import FakeHashEmbedder, dump_store

from vllm_embed.config import EmbedderConfig
from vllm_embed.ingest import IngestReport, ingest
from vllm_embed.ingest.chunk_settings import chunking_fields, make_chunker
from vllm_embed.ingest.core import Counters
from vllm_embed.ingest.splitters import DEFAULT_CHUNK_TOKENS
from vllm_embed.ray_data.blocks import (
    DocumentPlan,
    PlannedEngine,
    chunk_block,
    chunk_texts,
    chunk_token_ids,
    document_ids,
    plan_chunker,
    select_block,
    with_vectors,
    write_block,
)
from vllm_embed.sinks import QdrantSink

CHUNK_TOKENS = 16


def _documents() -> list[dict[str, Any]]:
    return [
        {"id": f"doc-{i}", "text": f"paragraph {i} " + "words of the document " * (i % 4) * 2, "lang": "en"}
        for i in range(12)
    ] + [{"id": "blank", "text": "   ", "lang": "en"}]


def _run_blocks(
    sink: QdrantSink, plan: DocumentPlan, embedder: FakeHashEmbedder, rows: list[dict[str, Any]]
) -> Counters:
    """What `ingest_dataset` does with two blocks, with the Fake embedder as the replica."""
    counts = Counters()
    for block in (rows[:7], rows[7:]):
        selected = select_block(sink, chunk_block(pa.Table.from_pylist(block), plan))
        positions, texts = chunk_texts(selected)
        vectors = np.zeros((selected.num_rows, embedder.dimension), np.float32)
        if texts:
            vectors[positions] = embedder.embed_documents(texts)
        counts.add(write_block(sink, with_vectors(selected, vectors)))
    return counts


@pytest.fixture
def plan(minilm_path: str) -> DocumentPlan:
    return DocumentPlan(
        config=EmbedderConfig(model=minilm_path),
        chunk_tokens=CHUNK_TOKENS,
        chunk_overlap=0,
        splitter=None,
        text_column="text",
        id_column="id",
        metadata_columns=None,
        max_document_bytes=None,
        layout="vllm-embed",
    )


def _fake_engine(planned: PlannedEngine) -> FakeHashEmbedder:
    """A Fake embedder with the tokenizer and input limits the replicas' engine will have."""
    fake = FakeHashEmbedder(planned.tokenizer, max_input_tokens=planned.max_input_tokens or 0, dimension=8)
    fake.max_model_len = planned.max_model_len  # type: ignore[attr-defined]
    return fake


def test_blocks_store_the_points_ingest_stores_and_resume(plan: DocumentPlan) -> None:
    planned = PlannedEngine.load(plan.config)
    reference_embedder = _fake_engine(planned)
    reference = QdrantSink("docs", location=":memory:")
    expected = ingest(
        _documents(), embedder=reference_embedder, sink=reference, progress=False, chunk_tokens=CHUNK_TOKENS
    )
    assert expected.chunks > expected.documents  # several chunks per document: the chunking is compared

    embedder = _fake_engine(planned)
    sink = QdrantSink("docs", location=":memory:")
    from vllm_embed.sinks import Manifest

    sink.prepare(Manifest.from_description(embedder.describe()))
    first = _run_blocks(sink, plan, embedder, _documents())
    assert (first.documents, first.chunks, first.written) == (
        expected.documents,
        expected.chunks,
        expected.written,
    )
    stored, wanted = dump_store(sink), dump_store(reference)
    assert sorted(stored) == sorted(wanted)
    for point, (payload, vector) in wanted.items():
        assert stored[point][0] == payload
        np.testing.assert_allclose(stored[point][1], vector, atol=1e-6)

    again = _run_blocks(sink, plan, embedder, _documents())
    assert (again.written, again.skipped, again.chunks) == (0, expected.chunks, expected.chunks)
    assert sink.count() == expected.chunks

    # Changed metadata converges to what the pipeline leaves, without embedding (issue 23 item 3).
    changed = [{**d, "lang": "de"} if d["id"] == "doc-3" else d for d in _documents()]
    calls = len(embedder.calls)
    third = _run_blocks(sink, plan, embedder, changed)
    assert (third.written, len(embedder.calls), sink.count()) == (0, calls, expected.chunks)
    ingest(changed, embedder=reference_embedder, sink=reference, progress=False, chunk_tokens=CHUNK_TOKENS)
    stored, wanted = dump_store(sink), dump_store(reference)
    assert {p: payload for p, (payload, _) in stored.items()} == {
        p: payload for p, (payload, _) in wanted.items()
    }


def test_document_ids_match_the_pipeline_ids(plan: DocumentPlan) -> None:
    ids = document_ids(pa.Table.from_pylist(_documents()), plan).column("doc_id").to_pylist()
    assert ids == [d["id"] for d in _documents()]


def test_workers_reopen_only_store_servers() -> None:
    server = QdrantSink("docs", url="http://127.0.0.1:1", check_compatibility=False)
    memory = QdrantSink("docs", location=":memory:")
    spec = pickle.loads(pickle.dumps(server.spec()))
    assert spec.shared and spec.options["url"].endswith(":1")
    reopened = spec.open()
    assert isinstance(reopened, QdrantSink) and reopened.collection == "docs"
    reopened.close()
    assert not memory.spec().shared
    server.close()
    memory.close()


def test_report_lists_replica_throughput() -> None:
    report = IngestReport(
        documents=1,
        chunks=2,
        embedded=2,
        skipped=0,
        written=2,
        seconds=1.0,
        replica_chunks_per_second=(10.0, 12.0),
    )
    assert "replicas: 10, 12 chunks/s each" in str(report)
    assert report.to_dict()["replica_chunks_per_second"] == (10.0, 12.0)


def test_the_plan_chunks_as_ingest_does_with_token_ids_and_document_hints(plan: DocumentPlan) -> None:
    planned = PlannedEngine.load(plan.config)
    reference = make_chunker(_fake_engine(planned), chunk_tokens=CHUNK_TOKENS)  # type: ignore[arg-type]
    assert chunking_fields(plan_chunker(plan)) == chunking_fields(reference)
    default = DocumentPlan(**{**plan.__dict__, "chunk_tokens": None})
    default_size = min(DEFAULT_CHUNK_TOKENS, planned.max_model_len or DEFAULT_CHUNK_TOKENS)
    fake = _fake_engine(planned)
    assert plan_chunker(default).chunk_tokens == make_chunker(fake).chunk_tokens == default_size  # type: ignore[arg-type]

    markdown = "# Title\n\nFirst part of the text.\n\n## Section\n\nSecond part, a little longer than that."
    rows = [
        {"id": "md", "text": markdown, "metadata": "{}", "splitter": "markdown"},
        {"id": "txt", "text": markdown, "metadata": "{}", "splitter": None},
    ]
    json_plan = DocumentPlan(**{**plan.__dict__, "metadata_columns": "__vllm_embed_metadata_json__"})
    table = chunk_block(pa.Table.from_pylist(rows), json_plan)
    positions, texts = chunk_texts(table)
    doc_ids = table.column("doc_id").to_pylist()
    by_doc = {d: [texts[k] for k, i in enumerate(positions) if doc_ids[i] == d] for d in ("md", "txt")}
    hints = ["markdown", None]
    wanted = reference.split([markdown, markdown], hints)
    assert by_doc == {d: [p.text for p in pieces] for d, pieces in zip(("md", "txt"), wanted, strict=True)}
    assert chunk_token_ids(table, positions) == [p.token_ids for pieces in wanted for p in pieces]


def test_blocks_reject_metadata_too_deep_or_too_large_as_ingest_does(plan: DocumentPlan) -> None:
    import json

    from vllm_embed.ingest.documents import MAX_METADATA_DEPTH

    deep: Any = 1
    for _ in range(MAX_METADATA_DEPTH):
        deep = {"a": deep}
    rows = [
        {"id": "ok", "text": "fine", "m": "small"},
        {"id": "deep", "text": "deep", "m": deep},
        {"id": "big", "text": "big", "m": "x" * 200},
    ]
    json_plan = DocumentPlan(**{**plan.__dict__, "metadata_columns": "__vllm_embed_metadata_json__"})
    small = DocumentPlan(**{**json_plan.__dict__, "max_metadata_bytes": 100})
    table = pa.Table.from_pylist(
        [{"id": r["id"], "text": r["text"], "metadata": json.dumps({"m": r["m"]})} for r in rows]
    )
    block = chunk_block(table, small).to_pylist()
    assert sorted({row["doc_id"] for row in block if row["chunk_index"] >= 0}) == ["ok"]
    reasons = {row["doc_id"]: row["rejected"] for row in block if row["rejected"] is not None}
    assert reasons["deep"] == f"metadata nested deeper than {MAX_METADATA_DEPTH} levels; flatten it"
    assert "larger than max_metadata_bytes=100" in reasons["big"]
