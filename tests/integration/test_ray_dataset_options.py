"""`ingest_dataset`'s choices on a local Ray, without an engine: repeated ids, per-row and custom splitters.

A single-process `ingest` with a Fake embedder (the replicas' tokenizer and limits) fills the store first;
the Ray run over the same rows must then find every chunk stored — the same ids, chunk texts and counts —
so no replica is needed: one starting is a failure (`_embedded` is replaced to say so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ingest_fixtures import FakeHashEmbedder, assert_same_store, dump_store

from vllm_embed.config import EmbedderConfig
from vllm_embed.errors import DuplicateDocumentError
from vllm_embed.ingest import Document, IngestReport, ingest
from vllm_embed.ingest.chunk_settings import make_chunker
from vllm_embed.ingest.splitters import splitter_name
from vllm_embed.ray_data import api, ingest_dataset
from vllm_embed.ray_data.blocks import PlannedEngine
from vllm_embed.ray_data.planning import plan_engine
from vllm_embed.sinks import QdrantSink

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.usefixtures("ray_local")

CHUNK_TOKENS = 32


@pytest.fixture
def no_replica(monkeypatch: pytest.MonkeyPatch) -> None:
    def replicas_would_start(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a replica would start: the Ray run chunked otherwise than ingest")

    monkeypatch.setattr(api, "_embedded", replicas_would_start)


@pytest.fixture
def config(minilm_path: str) -> EmbedderConfig:
    return EmbedderConfig(model=minilm_path, dtype="float32")


def _fake_replica(config: EmbedderConfig) -> FakeHashEmbedder:
    """A Fake embedder describing itself as the replicas' engine will, with its tokenizer and limits."""
    planned = PlannedEngine.load(config)
    description, _ = plan_engine(config)
    fake = FakeHashEmbedder(
        planned.tokenizer,
        model=config.model,
        dimension=description["dimensions"],
        max_input_tokens=planned.max_input_tokens or 0,
    )
    fake.max_model_len = planned.max_model_len  # type: ignore[attr-defined]
    fake.format_document = planned.format_document  # type: ignore[attr-defined]
    fake.describe = lambda: description  # type: ignore[method-assign]
    return fake


def _rerun_stores_nothing(report: IngestReport, reference: IngestReport) -> None:
    assert (report.documents, report.chunks, report.superseded) == (
        reference.documents,
        reference.chunks,
        reference.superseded,
    )
    assert report.skipped == report.chunks and report.embedded == report.written == 0


MARKDOWN = "# Guide\n\n" + "\n\n".join(
    f"## Part {i}\n\n" + f"Step {i} opens the file and reads it line by line. " * 3 for i in range(4)
)


def test_the_last_version_of_a_repeated_id_and_each_rows_splitter(
    tmp_path: Path, config: EmbedderConfig, no_replica: None
) -> None:
    rows = [
        {"id": f"doc-{i}", "text": f"Version one of document {i}. " * (3 + i), "kind": None, "n": i}
        for i in range(6)
    ]
    rows.append({"id": "guide", "text": MARKDOWN, "kind": "markdown", "n": 6})
    rows.append({"id": "doc-2", "text": "Version two of document 2, shorter.", "kind": None, "n": 7})
    rows.append({"id": "guide", "text": MARKDOWN + "\n\n## Last\n\nThe end.", "kind": "markdown", "n": 8})
    rows.append({"id": "doc-2", "text": "Version three of document 2. " * 9, "kind": None, "n": 9})
    documents = [Document(r["text"], r["id"], {"n": r["n"]}, r["kind"]) for r in rows]

    with QdrantSink("docs", path=str(tmp_path / "q")) as sink:
        with pytest.raises(DuplicateDocumentError, match=r"'doc-2' occurs twice .* positions 2 and 7"):
            ingest_dataset(ray.data.from_items(rows), sink=sink, config=config, splitter_column="kind")
        assert sink.read_manifest() is None  # refused before anything was written

        fake = _fake_replica(config)
        by_hint = make_chunker(fake, chunk_tokens=CHUNK_TOKENS).split(
            [MARKDOWN, MARKDOWN], ["markdown", None]
        )
        assert by_hint[0] != by_hint[1]  # a row's splitter changes its chunks
        reference = ingest(
            documents,
            embedder=fake,
            sink=sink,
            chunk_tokens=CHUNK_TOKENS,
            on_duplicate="last",
            progress=False,
        )
        assert reference.superseded == 3
        stored = dump_store(sink)
        report = ingest_dataset(
            ray.data.from_items(rows, override_num_blocks=3),
            sink=sink,
            config=config,
            chunk_tokens=CHUNK_TOKENS,
            splitter_column="kind",
            on_duplicate="last",
            progress=False,
        )
        _rerun_stores_nothing(report, reference)
        assert_same_store(dump_store(sink), stored)


def test_a_splitter_function_is_sent_to_the_workers_and_recorded(
    tmp_path: Path, config: EmbedderConfig, no_replica: None
) -> None:
    rows = [
        {"id": str(i), "text": " | ".join(f"part {i}.{k} of the text" for k in range(4))} for i in range(5)
    ]

    def pipes(text: str) -> list[str]:
        return text.split(" | ")

    with QdrantSink("docs", path=str(tmp_path / "q")) as sink:
        reference = ingest(rows, embedder=_fake_replica(config), sink=sink, splitter=pipes, progress=False)
        assert reference.chunks == 4 * len(rows)  # the function's chunks, not the text splitter's one each
        report = ingest_dataset(
            ray.data.from_items(rows), sink=sink, config=config, splitter=pipes, progress=False
        )
        _rerun_stores_nothing(report, reference)
        manifest = sink.read_manifest()
        assert manifest is not None and manifest.splitter == splitter_name(pipes)
        assert manifest.splitter.endswith(
            "test_a_splitter_function_is_sent_to_the_workers_and_recorded.<locals>.pipes"
        )


def test_one_file_reaches_the_replicas_in_batch_sized_blocks() -> None:
    import ray

    one_block = ray.data.from_items([{"id": str(i), "text": f"row {i}"} for i in range(1000)]).repartition(1)
    assert one_block.materialize().num_blocks() == 1
    blocks = api.replica_batches(one_block, 64).materialize()
    assert blocks.num_blocks() >= 1000 // 64  # every replica of an actor pool can take a share
    assert sorted(int(r["id"]) for r in blocks.take_all()) == list(range(1000))
