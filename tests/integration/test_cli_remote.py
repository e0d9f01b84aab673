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
