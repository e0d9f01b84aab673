"""The local Ray that `--ray local` starts is the command's: a driver killed by SIGKILL leaves none of it.

No vLLM engine: the replicas embed through the OpenAI-compatible stub (tests/remote_stub.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import stop_process_tree
from remote_stub import STUB_DIMENSION, STUB_MODEL, StubServer

pytest.importorskip("ray")

START_SECONDS = 240.0
"""How long Ray and the replicas may take to start on a loaded 2-core machine."""
EXIT_SECONDS = 45.0
"""How long the Ray processes get to be gone after the driver's death (Ray's own agents take ~60 s)."""


def running(processes: set[psutil.Process]) -> set[psutil.Process]:
    """Those of `processes` still running (a zombie has exited: only its parent's wait is missing)."""
    alive = set()
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.add(process)
    return alive


@pytest.mark.slow  # a real cluster killed mid-ingest; unit/test_ray_watchdog.py checks the watchdog
def test_a_ray_ingest_killed_by_sigkill_leaves_no_ray_process(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"id": f"d{i}", "text": f"document {i} " + "words " * 40}) + "\n" for i in range(300)
        )
    )
    server = StubServer(delay=3.0)  # slow answers: the replicas are mid-ingest when the driver is killed
    driver = subprocess.Popen(
        [
            sys.executable, "-m", "vllm_embed.cli", "ingest", str(corpus), "-c", "docs",
            "--qdrant-edge", str(tmp_path / "edge"), "-m", STUB_MODEL, "--dimensions", str(STUB_DIMENSION),
            "--max-model-len", "128", "--backend", "openai", "--base-url", server.url, "--no-progress",
            "--ray", "local", "--replicas", "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    seen: set[psutil.Process] = set()
    try:
        deadline = time.monotonic() + START_SECONDS
        while not (server.in_flight and any("IngestReplica" in p.name() for p in running(seen))):
            assert driver.poll() is None, driver.stderr.read().decode() if driver.stderr else ""
            assert time.monotonic() < deadline, sorted(p.name() for p in running(seen))
            with contextlib.suppress(psutil.Error):
                seen |= set(psutil.Process(driver.pid).children(recursive=True))
            time.sleep(0.2)
        names = {p.name() for p in running(seen)}
        assert {"raylet", "gcs_server", "ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= names, names

        driver.send_signal(signal.SIGKILL)
        driver.wait()
        deadline = time.monotonic() + EXIT_SECONDS
        while running(seen) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = sorted(f"{p.pid} {p.name()}" for p in running(seen))
        assert left == [], f"still running {EXIT_SECONDS:.0f} s after the driver's SIGKILL: {left}"
    finally:
        for process in running(seen):
            stop_process_tree(process.pid)
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        server.stop()


@pytest.mark.slow  # a Ray run against a vLLM server; test_cli_remote checks the plan in the fast tier
def test_a_ray_ingest_of_a_served_model_without_local_files_equals_the_ingest_without_ray(
    tmp_path: Path,
) -> None:
    """The Ray plan takes the served size and longest input from the server, as `ingest` does (item 8)."""
    from cli_helpers import run

    from vllm_embed.sinks import QdrantEdgeSink

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"id": f"d{i}", "text": f"document {i} " + "words " * 300}) + "\n" for i in range(6)
        )
    )
    server = StubServer()
    served = ["-m", STUB_MODEL, "--backend", "openai", "--base-url", server.url, "--no-progress"]
    try:
        code, _, err = run(
            "ingest", str(corpus), "-c", "plain", "--qdrant-edge", str(tmp_path / "e"), *served
        )
        assert code == 0, err
        driver = subprocess.run(
            [
                sys.executable, "-m", "vllm_embed.cli", "ingest", str(corpus), "-c", "ray",
                "--qdrant-edge", str(tmp_path / "e"), *served, "--ray", "local", "--replicas", "1",
            ],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            timeout=START_SECONDS,
        )  # fmt: skip
        assert driver.returncode == 0, driver.stderr
    finally:
        server.stop()
    manifests = []
    for name in ("plain", "ray"):
        with QdrantEdgeSink(name, path=str(tmp_path / "e")) as sink:
            manifest = sink.read_manifest()
            assert manifest is not None
            manifests.append((manifest.model_dump(exclude={"vllm_embed_version"}), sink.count()))
    assert manifests[0] == manifests[1]  # same size, same chunking, same number of chunks
