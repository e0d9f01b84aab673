"""`vllm-embed ingest` without an engine: the JSON report, rejected documents, new flags, clean errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import FakeClosableEmbedder, FakeEngine, no_engine, run, write_corpus

from vllm_embed import cli
from vllm_embed.cli import commands
from vllm_embed.errors import DuplicateDocumentError, InvalidVectorError, VllmEmbedError
from vllm_embed.ingest.loaders import DEFAULT_MAX_DOCUMENT_BYTES
from vllm_embed.ingest.options import IngestOptions
from vllm_embed.ingest.report import IngestReport


@dataclass(frozen=True)
class FakeRejectingReport(IngestReport):
    """An `IngestReport` with the `rejected` pairs the pipeline reports for documents the store refused."""

    rejected: tuple[tuple[str, str], ...] = ()


class FakeIngest:
    """Stands in for the pipeline: records its arguments and returns a fixed report."""

    def __init__(self, report: IngestReport) -> None:
        self.report = report
        self.kwargs: dict[str, Any] = {}

    def __call__(self, documents: Any, **kwargs: Any) -> IngestReport:
        self.kwargs = kwargs
        return self.report


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    return write_corpus(tmp_path)


@pytest.fixture
def ingest_args(tmp_path: Path, corpus_file: Path) -> list[str]:
    return ["ingest", str(corpus_file), "-m", "fake-model", "-c", "docs", "--qdrant", str(tmp_path / "q")]


def test_json_report_is_the_only_thing_on_stdout(ingest_args, monkeypatch) -> None:
    monkeypatch.setattr(cli, "make_embedder", FakeEngine())
    code, out, err = run(*ingest_args, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["documents"], report["chunks"], report["embedded"], report["written"]) == (3, 3, 3, 3)
    assert report["rejected"] == [] and out.count("\n") == 1

    code, out, err = run(*ingest_args, "--json", "--no-progress")
    assert code == 0 and json.loads(out)["skipped"] == 3


def test_rejected_documents_go_to_stderr_and_the_json_and_exit_1(ingest_args, monkeypatch) -> None:
    report = FakeRejectingReport(
        documents=3,
        chunks=2,
        embedded=2,
        skipped=0,
        written=2,
        seconds=0.1,
        rejected=(("big [x]", "too long"),),
    )
    monkeypatch.setattr(cli, "make_embedder", FakeEngine())
    monkeypatch.setattr(commands, "run_ingest", FakeIngest(report))

    code, out, err = run(*ingest_args)
    assert code == 1 and "2 written" in out
    assert 'rejected: "big [x]": too long' in err
    assert err.strip().splitlines()[-1].startswith("error: 1 document(s) were not stored")

    code, out, err = run(*ingest_args, "--json")
    assert code == 1 and json.loads(out)["rejected"] == [{"doc_id": "big [x]", "reason": "too long"}]


def test_new_flags_reach_the_loaders_and_the_pipeline(ingest_args, monkeypatch) -> None:
    fake_ingest = FakeIngest(IngestReport(documents=0, chunks=0, embedded=0, skipped=0, written=0, seconds=0))
    loaded: list[dict[str, Any]] = []
    monkeypatch.setattr(commands, "load_paths", lambda paths, **kwargs: loaded.append(kwargs) or [])
    monkeypatch.setattr(commands, "run_ingest", fake_ingest)
    monkeypatch.setattr(cli, "make_embedder", FakeEngine())

    assert run(*ingest_args)[0] == 0
    assert loaded[-1]["max_document_bytes"] == DEFAULT_MAX_DOCUMENT_BYTES  # the loaders' own default
    assert loaded[-1]["encoding"] == "utf-8" and loaded[-1]["errors"] is None
    assert fake_ingest.kwargs["options"] == IngestOptions()  # the CLI's flags default as the library

    code, _, err = run(
        "--quiet", *ingest_args, "--max-document-bytes", "1000", "--on-duplicate", "last",
        "--max-metadata-bytes", "300",
        "--encoding", "latin-1", "--encoding-errors", "replace",
    )  # fmt: skip
    assert code == 0, err
    assert loaded[-1]["max_document_bytes"] == 1000
    assert loaded[-1]["encoding"] == "latin-1" and loaded[-1]["errors"] == "replace"
    options = fake_ingest.kwargs["options"]
    assert options == IngestOptions(
        max_document_bytes=1000, max_metadata_bytes=300, on_duplicate="last", progress=False
    )


@pytest.mark.parametrize(
    "error",
    [
        InvalidVectorError("the server returned a 8-d vector for input 3, expected 16-d"),
        DuplicateDocumentError("document 'a' occurs at positions 0 and 2: pass --on-duplicate last"),
        VllmEmbedError("something the user\ncan fix"),
    ],
)
def test_every_vllm_embed_error_is_one_line_without_traceback(error, ingest_args, monkeypatch) -> None:
    def fail(config: Any) -> None:
        raise error

    monkeypatch.setattr(cli, "make_embedder", fail)
    code, out, err = run(*ingest_args)
    assert code == 1 and out == ""
    assert err == f"error: {' '.join(str(error).split())}\n"


def test_the_engine_does_not_start_for_a_mismatched_dimension(ingest_args, monkeypatch) -> None:
    monkeypatch.setattr(cli, "make_embedder", FakeEngine())
    assert run(*ingest_args, "--no-progress")[0] == 0
    monkeypatch.setattr(cli, "make_embedder", no_engine)
    code, _, err = run(*ingest_args, "-d", "4")
    assert code == 1 and "dimensions: collection has 8, this run has 4" in err


def test_a_broken_line_and_a_bad_collection_name_fail_before_any_embedding(
    tmp_path, corpus_file, monkeypatch
) -> None:
    monkeypatch.setattr(cli, "make_embedder", no_engine)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(corpus_file.read_text() + '{"id": "x", "text": }\n')
    code, _, err = run(
        "ingest", str(broken), "-m", "fake-model", "-c", "docs", "--qdrant", str(tmp_path / "q")
    )
    assert code == 1 and err.strip().splitlines() == [
        f"error: {broken}:4:21: not valid JSON (Expecting value)"
    ]

    built: list[FakeClosableEmbedder] = []
    monkeypatch.setattr(
        cli,
        "make_embedder",
        lambda config: built.append(FakeClosableEmbedder(model=config.model)) or built[-1],
    )
    code, _, err = run(
        "ingest", str(corpus_file), "-m", "fake-model", "-c", "a/b", "--qdrant", str(tmp_path / "q")
    )
    assert code == 1 and "must not contain /" in err and len(err.strip().splitlines()) == 1
    assert built == []  # refused with the store, before the model is even loaded
