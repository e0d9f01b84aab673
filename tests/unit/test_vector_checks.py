"""Every vector from every backend is checked before it is normalised, cached or returned (Fake backend)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from backend_spy import FakeBackend, fake_embedder

from vllm_embed import Embedder
from vllm_embed.errors import InvalidVectorError, VllmEmbedError

WIDTH = 384


def _row(**at: float) -> np.ndarray:
    row = np.full(WIDTH, 0.05, dtype=np.float32)
    for position, value in at.items():
        row[int(position.lstrip("p"))] = value
    return row


BAD_ROWS: dict[str, tuple[Any, str]] = {
    "nan": (_row(p7=float("nan")), r"is not finite \(nan at position 7\)"),
    "inf": (_row(p0=float("inf")), r"is not finite \(inf at position 0\)"),
    "-inf": (_row(p383=float("-inf")), r"is not finite \(-inf at position 383\)"),
    "null": ([0.1] * 10 + [None] + [0.1] * (WIDTH - 11), r"is not finite \(nan at position 10\)"),
    "zero": (np.zeros(WIDTH, dtype=np.float32), "is all zeros"),
    "short": (np.ones(WIDTH - 1, dtype=np.float32), r"has shape \(383,\), expected \(384,\)"),
    "long": (np.ones(WIDTH + 5, dtype=np.float32), r"has shape \(389,\), expected \(384,\)"),
    "text": (["x"] * WIDTH, "holds values that are not numbers"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_a_bad_vector_is_an_error_naming_the_text_and_nothing_is_cached(
    minilm_path: str, tmp_path: Path, case: str
) -> None:
    row, problem = BAD_ROWS[case]
    backend = FakeBackend(WIDTH, bad={"poisoned": row})
    texts = ["first good text", "second good text", "poisoned", "third good text", "poisoned"]
    with fake_embedder(minilm_path, backend, cache=tmp_path / "cache.sqlite") as embedder:
        with pytest.raises(InvalidVectorError, match=rf"^vllm \(in-process\) returned a bad vector for "
                           rf"texts\[2\]: it {problem}; nothing of this batch"):  # fmt: skip
            embedder.embed_documents(texts)
        assert embedder.cache is not None and embedder.cache.info()["entries"] == 0
        with pytest.raises(InvalidVectorError, match=r"texts\[0\]"):
            asyncio.run(embedder.aembed_documents(["poisoned"]))
        # The Embedder stays usable, and what it returns and caches now is sound.
        good = embedder.embed_documents(texts[:2])
        np.testing.assert_allclose(np.linalg.norm(good, axis=1), 1.0, atol=1e-6)
        assert embedder.cache.info()["entries"] == 2


def test_the_error_is_a_value_error_and_a_vllm_embed_error(minilm_path: str) -> None:
    backend = FakeBackend(WIDTH, bad={"zero": np.zeros(WIDTH, dtype=np.float32)})
    with fake_embedder(minilm_path, backend) as embedder:
        with pytest.raises(ValueError, match="all zeros") as caught:
            embedder.embed_query("zero")
        assert isinstance(caught.value, VllmEmbedError)


def test_huge_finite_values_are_normalised_in_float64(minilm_path: str) -> None:
    huge = np.full(WIDTH, 1e38, dtype=np.float32)  # its float32 norm overflows to inf
    huge[:10] = -1e38
    backend = FakeBackend(WIDTH, bad={"huge": huge})
    with fake_embedder(minilm_path, backend) as embedder:
        vector = embedder.embed_documents(["huge"])[0]
    assert np.isfinite(vector).all()
    expected = huge.astype(np.float64) / np.linalg.norm(huge.astype(np.float64))
    np.testing.assert_allclose(vector, expected, atol=1e-6)


def test_a_wrong_number_of_rows_is_an_error(minilm_path: str) -> None:
    class DroppingFakeBackend(FakeBackend):
        def embed(self, inputs: Any, dimensions: int | None) -> Any:
            return super().embed(inputs, dimensions)[:-1]

    with (
        fake_embedder(minilm_path, DroppingFakeBackend(WIDTH)) as embedder,
        pytest.raises(InvalidVectorError, match="returned 1 vectors for 2 inputs"),
    ):
        embedder.embed_documents(["one", "two"])


def test_a_remote_backend_is_named_by_its_url_without_credentials(minilm_path: str) -> None:
    backend = FakeBackend(WIDTH, bad={"nan": _row(p1=float("nan"))})
    url = "http://user:s3cret@127.0.0.1:9/v1"
    served = r"^the server at http://127\.0\.0\.1:9/v1 returned"
    with (
        fake_embedder(minilm_path, backend, backend="openai", base_url=url) as embedder,
        pytest.raises(InvalidVectorError, match=served) as err,
    ):
        embedder.embed_documents(["nan"])
    assert "s3cret" not in str(err.value) and "user" not in str(err.value)


def test_a_backend_with_zero_length_vectors_is_refused(minilm_path: str) -> None:
    with (
        pytest.raises(InvalidVectorError, match="returns vectors of length 0"),
        fake_embedder(minilm_path, FakeBackend(0)),
    ):
        pass


def test_good_vectors_are_unchanged_in_direction(minilm_path: str) -> None:
    backend = FakeBackend(WIDTH)
    with fake_embedder(minilm_path, backend) as embedder:
        got = embedder.embed_documents(["a", "b", "a"])
    expected = np.stack([backend.row("a"), backend.row("b"), backend.row("a")]).astype(np.float64)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert isinstance(embedder, Embedder)


def test_ingest_stores_nothing_of_a_batch_with_a_bad_vector(minilm_path: str) -> None:
    from vllm_embed import ingest
    from vllm_embed.sinks.qdrant import QdrantSink

    documents = [{"id": "good", "text": "a sound document"}, {"id": "bad", "text": "poisoned"}]
    backend = FakeBackend(WIDTH, bad={"poisoned": np.zeros(WIDTH, dtype=np.float32)})
    with fake_embedder(minilm_path, backend) as embedder, QdrantSink("docs", location=":memory:") as sink:
        with pytest.raises(InvalidVectorError, match="all zeros"):
            ingest(documents, embedder=embedder, sink=sink, progress=False)
        assert sink.count() == 0
        report = ingest(documents[:1], embedder=embedder, sink=sink, progress=False)  # still usable
        assert sink.count() == 1, report


@pytest.mark.parametrize("bad", ["zero", "nan", "inf"])
def test_a_remote_servers_bad_vector_is_caught_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    import remote_stub

    real = remote_stub.stub_vector

    def poisoned(text: str, dimension: int = remote_stub.STUB_DIMENSION) -> np.ndarray:
        vector = real(text, dimension)
        if text != "poisoned":
            return vector
        return {"zero": vector * 0, "nan": vector * np.nan, "inf": vector * np.inf}[bad]

    monkeypatch.setattr(remote_stub, "stub_vector", poisoned)
    server = remote_stub.StubServer()
    try:
        with Embedder(
            remote_stub.STUB_MODEL,
            backend="openai",
            base_url=server.url,
            profile="sentence-transformers",
            retry_seconds=1,
            cache=tmp_path / "cache.sqlite",
        ) as embedder:
            with pytest.raises(InvalidVectorError):
                embedder.embed_documents(["fine", "poisoned"])
            assert embedder.cache is not None and embedder.cache.info()["entries"] == 0
            assert embedder.embed_documents(["fine"]).shape == (1, remote_stub.STUB_DIMENSION)
    finally:
        server.stop()
