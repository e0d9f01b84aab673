"""The ingest core every runner shares: `IngestOptions`, the checks before the engine, counters, report."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
from ingest_fixtures import FakeHashEmbedder
from transformers import AutoTokenizer

from vllm_embed.errors import InputFileError
from vllm_embed.ingest import Document, ingest, load_paths
from vllm_embed.ingest.core import Counters, InputScan, check_collection, scan_input
from vllm_embed.ingest.options import IngestOptions
from vllm_embed.sinks import ManifestMismatchError, QdrantSink


@pytest.fixture(scope="module")
def tokenizer(minilm_path: str):
    return AutoTokenizer.from_pretrained(minilm_path)


def test_each_public_function_defaults_its_options_as_the_options_model() -> None:
    pytest.importorskip("ray")
    from vllm_embed.ray_data import ingest_dataset, ingest_paths

    defaults = {f.name: f.default for f in dataclasses.fields(IngestOptions)}
    for function in (ingest, ingest_dataset, ingest_paths):
        parameters = inspect.signature(function).parameters
        shared = {name: parameters[name].default for name in defaults if name in parameters}
        assert shared == {name: defaults[name] for name in shared}, function.__qualname__
        assert len(shared) >= len(defaults) - 1, function.__qualname__  # every option but one at most


def test_options_are_frozen_and_refuse_bad_values_and_unknown_names() -> None:
    options = IngestOptions(chunk_tokens=64, splitter="markdown")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.batch_size = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="batch_size=0 must be at least 1"):
        IngestOptions(batch_size=0)
    with pytest.raises(ValueError, match="on_duplicate='first' must be one of"):
        IngestOptions(on_duplicate="first")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="chunk_size"):
        IngestOptions(chunk_size=3)  # type: ignore[call-arg]
    assert options.chunking == {"splitter": "markdown", "chunk_overlap": 0, "chunk_tokens": 64}
    assert IngestOptions().chunking == {"splitter": "text", "chunk_overlap": 0}


def test_the_scan_reports_a_broken_line_with_its_column(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "a", "text": "one"}\n{"id": "b", "text": "two"}\n{"id": "c", "text": tw}\n')
    documents = load_paths([path])
    with pytest.raises(InputFileError, match=r"c\.jsonl:3:21: not valid JSON \(Expecting value\)"):
        scan_input(documents, IngestOptions())


def test_the_scan_reads_lists_ahead_and_leaves_iterators_to_the_run() -> None:
    docs = [Document("one", id="a"), Document("two", id="b"), Document("one again", id="a")]
    assert scan_input(docs, IngestOptions(on_duplicate="last")) == InputScan(frozenset({0}))
    assert scan_input(iter(docs), IngestOptions()) == InputScan(None)
    with pytest.raises(ValueError, match="reads the input twice"):
        scan_input(iter(docs), IngestOptions(on_duplicate="last"))


def test_counters_add_up_and_report_each_replica_rate() -> None:
    first = Counters(documents=2, chunks=5, embedded=4, written=4, skipped=1, rejected=[("x", "too big")])
    first.embedded_by["r1"] += 4
    first.seconds_by["r1"] = 2.0
    second = Counters(documents=1, chunks=1, skipped=1, deleted_from=1, superseded=2)
    second.embedded_by["r2"] += 0
    second.seconds_by["r2"] = 1.0
    first.add(second)
    report = first.report(3.0)
    assert (report.documents, report.chunks, report.embedded, report.skipped) == (3, 6, 4, 2)
    assert (report.deleted_from, report.superseded, report.rejected) == (1, 2, (("x", "too big"),))
    assert report.replica_chunks_per_second == (2.0,)  # a replica that embedded nothing is left out


def test_what_is_known_before_the_model_is_checked_against_the_collection(tokenizer) -> None:
    sink = QdrantSink("docs", location=":memory:")
    fake = FakeHashEmbedder(tokenizer)
    ingest([Document("one", id="a")], embedder=fake, sink=sink, progress=False, chunk_tokens=16)
    check_collection(sink, {"model": "fake-model", "chunk_tokens": 16}, rechunk=False)
    with pytest.raises(ManifestMismatchError, match="model: collection has 'fake-model'"):
        check_collection(sink, {"model": "other"}, rechunk=False)
    with pytest.raises(ManifestMismatchError, match="chunked differently"):
        check_collection(sink, {"model": "fake-model", "chunk_tokens": 32}, rechunk=False)
    check_collection(sink, {"model": "fake-model", "chunk_tokens": 32}, rechunk=True)
    sink.close()


def test_a_rerun_with_everything_stored_asks_the_embedder_for_nothing(tokenizer) -> None:
    sink = QdrantSink("docs", location=":memory:")
    docs = [Document(f"document {i} " * (i + 1), id=f"d{i}") for i in range(20)]
    first = FakeHashEmbedder(tokenizer)
    ingest(docs, embedder=first, sink=sink, progress=False, batch_size=4)
    again = FakeHashEmbedder(tokenizer)
    report = ingest(docs, embedder=again, sink=sink, progress=False, batch_size=4)
    assert again.calls == [] and report.embedded == 0 and report.skipped == report.chunks > 0
    sink.close()
