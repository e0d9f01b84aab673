"""The Ray ingest's per-block work, without Ray or an engine: the same points as `ingest`, resumable.

A Fake embedder stands in for the replicas; the blocks go through the functions the Ray tasks run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from ingest_fixtures import FakeHashEmbedder, dump_store

from vllm_embed.config import EmbedderConfig
from vllm_embed.ingest import IngestReport, ingest
from vllm_embed.ray_data.api import _recipe
from vllm_embed.ray_data.blocks import (
    DocumentPlan,
    WriteCounts,
    chunk_block,
    chunk_texts,
    document_ids,
    select_block,
    with_vectors,
    write_block,
)
from vllm_embed.sinks import QdrantSink

CHUNK_TOKENS = 8


def _documents() -> list[dict[str, Any]]:
    return [
        {"id": f"doc-{i}", "text": f"paragraph {i} " + "words of the document " * (i % 4), "lang": "en"}
        for i in range(12)
    ] + [{"id": "blank", "text": "   ", "lang": "en"}]


def _run_blocks(
    sink: QdrantSink, plan: DocumentPlan, embedder: FakeHashEmbedder, rows: list[dict[str, Any]]
) -> WriteCounts:
    """What `ingest_dataset` does with two blocks, with the Fake embedder as the replica."""
    counts = WriteCounts()
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
        text_column="text",
        id_column="id",
        metadata_columns=None,
        max_document_bytes=None,
        layout="vllm-embed",
    )


def test_blocks_store_the_points_ingest_stores_and_resume(plan: DocumentPlan) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(plan.config.model)
    reference_embedder = FakeHashEmbedder(tokenizer, max_input_tokens=CHUNK_TOKENS, dimension=8)
    reference = QdrantSink("docs", location=":memory:")
    expected = ingest(_documents(), embedder=reference_embedder, sink=reference, progress=False)

    embedder = FakeHashEmbedder(tokenizer, max_input_tokens=CHUNK_TOKENS, dimension=8)
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


def test_document_ids_match_the_pipeline_ids(plan: DocumentPlan) -> None:
    ids = document_ids(pa.Table.from_pylist(_documents()), plan).column("doc_id").to_pylist()
    assert ids == [d["id"] for d in _documents()]


def test_workers_reopen_only_store_servers() -> None:
    server = QdrantSink("docs", url="http://127.0.0.1:1", check_compatibility=False)
    memory = QdrantSink("docs", location=":memory:")
    recipe = _recipe(server)
    assert recipe is not None and recipe[0] is QdrantSink and recipe[2]["url"].endswith(":1")
    assert _recipe(memory) is None
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
