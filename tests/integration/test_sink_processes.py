"""Embedded stores across processes: an unclosed sink exits cleanly; a store held by another process is
reported as busy, naming that process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import stop_process_tree
from ingest_fixtures import STORES, open_sink

from vllm_embed.errors import StoreBusyError

UNCLOSED = """
import gc, sys
from pathlib import Path
from ingest_fixtures import FakeHashEmbedder, open_sink
from vllm_embed.ingest import ingest

gc.disable()
class App:  # an application object in a reference cycle holds the sink until the interpreter's exit
    pass
app = App()
app.itself, app.sink = app, open_sink(sys.argv[1], Path(sys.argv[2]))
ingest(["one", "two"], embedder=FakeHashEmbedder(), sink=app.sink, progress=False)
print(app.sink.count())
"""  # the sink is never closed: the exit must release it, before the modules it needs are torn down


HOLDER = """
import sys, time
kind, root = sys.argv[1], sys.argv[2]
if kind == "qdrant":  # the stores' own clients, as a notebook would hold them
    from qdrant_client import QdrantClient
    client = QdrantClient(path=root + "/qdrant")
else:
    from pymilvus import MilvusClient
    client = MilvusClient(uri=root + "/milvus.db")
print("ready", flush=True)
time.sleep(600)
"""


def python(script: str, *args: str, **kwargs) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*sys.path])}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args], text=True, env=env, **kwargs
    )


@pytest.mark.parametrize("kind", STORES)
def test_an_unclosed_sink_releases_its_store_at_exit_without_a_traceback(kind: str, tmp_path: Path) -> None:
    process = python(UNCLOSED, kind, str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = process.communicate(timeout=120)
    assert (process.returncode, stdout.strip(), stderr) == (0, "2", "")
    with open_sink(kind, tmp_path) as sink:  # the store was released: this process can open it
        assert sink.count() == 2


@pytest.fixture(params=STORES)
def held_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path, int]]:
    """(store kind, directory, PID of another process that has the store open)."""
    holder = python(HOLDER, request.param, str(tmp_path), stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield request.param, tmp_path, holder.pid
    finally:
        stop_process_tree(holder.pid)


def test_a_store_open_in_another_process_is_busy_and_names_that_process(
    held_store: tuple[str, Path, int], capfd: pytest.CaptureFixture[str]
) -> None:
    kind, root, pid = held_store
    capfd.readouterr()
    with pytest.raises(StoreBusyError) as failure:
        open_sink(kind, root)
    message = str(failure.value)
    assert "is open elsewhere" in message and f"PID {pid}: " in message and "-c" in message
    assert ("run a Qdrant server" if kind == "qdrant" else "run a Milvus server") in message
    assert "Traceback" not in capfd.readouterr().err

    stop_process_tree(pid)
    with open_sink(kind, root) as sink:  # free again once the other process is gone
        assert sink.read_manifest() is None
