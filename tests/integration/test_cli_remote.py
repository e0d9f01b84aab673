"""`vllm-embed` against a hostile OpenAI-compatible server (tests/remote_stub.py): clear errors, no traceback.

No vLLM engine here, but a real server on a socket, so the tier is integration.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import remote_stub
from cli_helpers import run, write_corpus
from remote_stub import STUB_DIMENSION, STUB_MODEL, StubServer


@pytest.fixture
def short_vectors_after_the_probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubServer]:
    """A server whose first answer (the Embedder's probe) is 16-d and every later vector 8-d."""
    answered = {"vectors": 0}
    full_length = remote_stub.stub_vector

    def shrinking(text: str, dimension: int = STUB_DIMENSION) -> np.ndarray:
        answered["vectors"] += 1
        vector = full_length(text, dimension)
        return vector if answered["vectors"] == 1 else vector[: STUB_DIMENSION // 2]

    monkeypatch.setattr(remote_stub, "stub_vector", shrinking)
    server = StubServer()
    yield server
    server.stop()


def test_wrong_length_vectors_from_a_server_are_one_line(
    short_vectors_after_the_probe: StubServer, tmp_path: Path
) -> None:
    corpus = write_corpus(tmp_path)
    code, out, err = run(
        "ingest",
        str(corpus),
        "-m",
        STUB_MODEL,
        "-c",
        "docs",
        "--qdrant",
        str(tmp_path / "q"),
        "--backend",
        "openai",
        "--base-url",
        short_vectors_after_the_probe.url,
        "--profile",
        "sentence-transformers",
        "--retry-seconds",
        "1",
        "--no-progress",
    )
    assert code == 1 and out == "", err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


@pytest.fixture
def served() -> Iterator[StubServer]:
    server = StubServer()
    yield server
    server.stop()


def test_a_served_model_name_without_local_files_ingests_searches_and_repairs(
    served: StubServer, tmp_path: Path
) -> None:
    from ingest_fixtures import dump_store, open_sink
    from qdrant_client import models

    remote = ["--backend", "openai", "--base-url", served.url, "--retry-seconds", "1"]
    store = ["-c", "docs", "--qdrant", str(tmp_path / "qdrant")]  # where `open_sink` looks
    code, _, err = run(
        "ingest", str(write_corpus(tmp_path)), "-m", STUB_MODEL, *store, *remote, "--no-progress"
    )
    assert code == 0, err

    code, out, err = run("search", "borrow checker", *store, *remote, "--json")
    assert code == 0, err  # the manifest's dimensions (the served size) are accepted
    assert len(out) > 2

    with open_sink("qdrant", tmp_path) as sink:  # a zero vector, as an old release could store
        bad = sorted(dump_store(sink))[0]
        zero = models.PointVectors(id=bad, vector=[0.0] * STUB_DIMENSION)
        sink.client.update_vectors(sink.collection, points=[zero], wait=True)
    code, out, err = run("verify", *store, "--repair", *remote)
    assert code == 0, err
    assert "1 invalid, 1 repaired" in out


def test_the_ray_plan_takes_the_dimensions_of_a_served_model_without_local_files(served: StubServer) -> None:
    from vllm_embed.config import EmbedderConfig
    from vllm_embed.ray_data.planning import plan_engine

    config = EmbedderConfig(
        model=STUB_MODEL, backend="openai", base_url=served.url, dimensions=STUB_DIMENSION
    )
    description, _ = plan_engine(config)
    assert description["dimensions"] == STUB_DIMENSION
