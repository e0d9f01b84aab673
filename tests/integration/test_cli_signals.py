"""Ctrl-C and SIGTERM end a real `vllm-embed ingest` in a few seconds, with one line, and nothing left behind.

Ctrl-C is sent as a terminal sends it, to the whole process group (the CLI and vLLM's engine processes);
SIGTERM as a job scheduler or `docker stop` sends it, to the CLI's process only. Each case checks: the exit,
the one stderr line, that every process the CLI started is gone (none re-parented to PID 1), and that no
shared-memory segment leaked (no resource-tracker warning, no segment left in /dev/shm).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from process_helpers import shared_memory_of, written_points

from vllm_embed.datasets import python_docstrings

STARTUP_LIMIT_SECONDS = 600  # a safety net for a wedged subprocess, not a timing assertion
EXIT_LIMIT_SECONDS = 30  # "a few seconds" on an idle machine; generous for a loaded 2-core one


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "docstrings.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in python_docstrings(limit=400)))
    return path


def start_ingest(root: Path, corpus: Path, model: str, *flags: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "vllm_embed.cli", *flags, "ingest", str(corpus), "--model", model]
    command += ["--dtype", "float32", "-c", "docs", "--batch-size", "16", "--no-progress"]
    command += ["--qdrant", str(root / "qdrant")]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "XDG_STATE_HOME": str(root / "state"),  # the engine log file goes under it
    }
    env.pop("VLLM_EMBED_LOG_LEVEL", None)
    with (root / "stdout").open("wb") as out, (root / "stderr").open("wb") as err:
        return subprocess.Popen(command, env=env, stdout=out, stderr=err, start_new_session=True)


def wait_until(process: subprocess.Popen[bytes], root: Path, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
    while not ready():
        assert process.poll() is None, (root / "stderr").read_text(errors="replace")[-2000:]
        assert time.monotonic() < deadline, "the CLI never reached the state to interrupt"
        time.sleep(0.05)


def engine_started(pid: int) -> bool:
    """Whether vLLM's engine-core process exists (start-up has begun, the handshake is pending or done)."""
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "EngineCore" in child.name() or "EngineCore" in " ".join(child.cmdline()):
                    return True
    return False


def engine_log(root: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in (root / "state").rglob("engine-*.log"))


# Each case starts an engine in a CLI process: Ctrl-C mid-ingest and SIGTERM at start-up (a container stopped
# while it starts) run in `make test`, the other two pairings with `make test-slow`.
@pytest.mark.parametrize(
    ("signum", "moment"),
    [
        pytest.param(signal.SIGINT, "mid-ingest", id="SIGINT-mid-ingest"),
        pytest.param(signal.SIGTERM, "start-up", id="SIGTERM-start-up"),
        pytest.param(signal.SIGINT, "start-up", id="SIGINT-start-up", marks=pytest.mark.slow),
        pytest.param(signal.SIGTERM, "mid-ingest", id="SIGTERM-mid-ingest", marks=pytest.mark.slow),
    ],
)
def test_an_interrupt_ends_the_cli_with_one_line_and_nothing_left_behind(
    signum: signal.Signals, moment: str, tmp_path: Path, corpus_file: Path, minilm_path: str
) -> None:
    model = minilm_path
    process = start_ingest(tmp_path, corpus_file, model)
    try:
        if moment == "start-up":
            wait_until(process, tmp_path, lambda: engine_started(process.pid))
        else:
            wait_until(process, tmp_path, lambda: written_points(tmp_path) > 0)
        started = psutil.Process(process.pid).children(recursive=True)
        segments = shared_memory_of(process.pid)
        if signum == signal.SIGINT:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole group
        else:
            process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=EXIT_LIMIT_SECONDS)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    stdout = (tmp_path / "stdout").read_text(errors="replace")
    stderr = (tmp_path / "stderr").read_text(errors="replace")
    assert code == 130, stderr[-2000:]
    assert stdout == ""
    expected = "interrupted; run the same command again to resume"
    # The CLI's own progress line, then the one line of the interrupt: no vLLM output, no traceback.
    assert stderr.splitlines() == [f"starting the vLLM engine for {model}…", f"error: {expected}"], stderr[
        -3000:
    ]
    _, alive = psutil.wait_procs(started, timeout=5)
    assert not alive, [(p.pid, p.name()) for p in alive]
    assert not [s for s in segments if s.exists()]
    assert "leaked shared_memory" not in stderr + engine_log(tmp_path)
