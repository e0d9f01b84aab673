"""Crash and resume: a CLI ingest killed with SIGKILL mid-run, then re-run, leaves exactly what an
uninterrupted run leaves (same points, payloads and vectors; nothing duplicated or lost).

Each case starts one engine in a subprocess (the CLI); the re-run and the reference run use the session's
engine in-process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ingest_fixtures import assert_same_store, dump_store, open_sink
from process_helpers import shared_memory_of, written_points

from vllm_embed.datasets import python_docstrings
from vllm_embed.ingest import ingest, load_path

BATCH = 16
STARTUP_LIMIT_SECONDS = 600  # a safety net for a wedged subprocess, not a timing assertion


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "docstrings.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in python_docstrings(limit=400)))
    return path


# The store side of a kill (every store, no engine) is in tests/contract; here the CLI and its engine die.
@pytest.mark.parametrize("kind", ["qdrant"])
def test_sigkill_mid_ingest_then_rerun_equals_an_uninterrupted_run(
    kind: str, tmp_path: Path, corpus_file: Path, minilm_path: str, minilm_embedder
) -> None:
    crashed, reference = tmp_path / "crashed", tmp_path / "reference"
    crashed.mkdir()
    target = ["--qdrant", str(crashed / "qdrant")]
    command = [sys.executable, "-m", "vllm_embed.cli", "ingest", str(corpus_file), "--model", minilm_path]
    command += [
        "--dtype",
        "float32",
        "--collection",
        "docs",
        "--batch-size",
        str(BATCH),
        "--no-progress",
        *target,
    ]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
        while written_points(crashed) == 0:
            assert process.poll() is None, stderr.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "the ingest never wrote anything"
            time.sleep(0.02)
    finally:
        # The whole session: the CLI and its engine processes die together, as in a power cut.
        segments = shared_memory_of(process.pid)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        for segment in segments:  # a killed engine cannot unlink its shared-memory queues
            segment.unlink(missing_ok=True)
    # stdout carries the CLI's results only (none before the report): vLLM logs to its log file.
    assert stdout.read_text() == "", stdout.read_text()[:500]
    engine_log = "".join(p.read_text(errors="replace") for p in (tmp_path / "state").rglob("engine-*.log"))
    assert "Initializing a V1 LLM engine" in engine_log

    with open_sink(kind, crashed) as sink:
        partial = sink.count()
        report = ingest(
            load_path(corpus_file), embedder=minilm_embedder, sink=sink, batch_size=BATCH, progress=False
        )
        assert 0 < partial < report.chunks, "the kill must land mid-ingest"
        assert report.skipped >= partial and report.embedded == report.chunks - report.skipped
        resumed = dump_store(sink)

    with open_sink(kind, reference) as sink:
        ingest(load_path(corpus_file), embedder=minilm_embedder, sink=sink, batch_size=BATCH, progress=False)
        expected = dump_store(sink)

    assert len(resumed) == report.chunks
    assert_same_store(resumed, expected)
