"""backend="openai" without an engine: faults and hostile answers from a stub server on a real socket."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from remote_stub import STUB_DIMENSION, STUB_MODEL, Reply, StubServer, stub_vector

from vllm_embed import Embedder
from vllm_embed.backends.openai_remote import RemoteEmbeddingError, RemoteRequestError
from vllm_embed.profiles import ModelProfile


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def test_dimensions_on_a_model_without_matryoshka_is_rejected_before_any_request(minilm_path: str) -> None:
    with pytest.raises(ValueError, match="not trained for Matryoshka"):
        Embedder(minilm_path, backend="openai", base_url="http://127.0.0.1:9/v1", dimensions=128)


# -- faults, on a stub server ------------------------------------------------------------------------


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer()
    yield server
    server.stop()


def _stub_embedder(url: str, **settings: Any) -> Embedder:
    settings.setdefault("retry_seconds", 10)
    settings.setdefault("profile", "sentence-transformers")
    return Embedder(STUB_MODEL, backend="openai", base_url=url, **settings)


def _expected(texts: list[str], dimensions: int = STUB_DIMENSION) -> np.ndarray:
    return _unit(np.stack([stub_vector(text)[:dimensions] for text in texts]))


def test_429_and_500_are_retried_then_succeed(stub: StubServer, caplog: pytest.LogCaptureFixture) -> None:
    with _stub_embedder(stub.url) as emb:
        assert (emb.dimension, emb.max_model_len, emb.tokenizer) == (STUB_DIMENSION, 128, None)
        stub.reset(Reply(429, headers={"Retry-After": "0"}), Reply(500), Reply(503))
        with caplog.at_level(logging.WARNING, logger="vllm_embed.backends.openai"):
            vectors = emb.embed_documents(["alpha", "beta", "gamma"])
    assert len(stub.requests) == 4
    np.testing.assert_allclose(vectors, _expected(["alpha", "beta", "gamma"]), atol=1e-6)
    assert "HTTP 429" in caplog.text
    assert "HTTP 500" in caplog.text


def test_400_is_not_retried_and_names_status_and_message(stub: StubServer) -> None:
    with _stub_embedder(stub.url) as emb:
        stub.reset(Reply(400, "input[0] is not acceptable"))
        with pytest.raises(
            RemoteRequestError, match=r"/v1/embeddings .*HTTP 400: input\[0\] is not acceptable"
        ):
            emb.embed_documents(["x"])
        assert len(stub.requests) == 1


def test_retries_stop_at_the_time_budget(stub: StubServer) -> None:
    with _stub_embedder(stub.url, retry_seconds=1.5) as emb:
        stub.reset(*[Reply(503, "overloaded")] * 1000)
        start = time.monotonic()
        with pytest.raises(
            RemoteEmbeddingError, match=r"retry budget of 1.5s.*last error: HTTP 503: overloaded"
        ):
            emb.embed_documents(["x"])
        assert time.monotonic() - start < 4


def test_stopped_server_fails_clearly_within_the_time_bound(stub: StubServer) -> None:
    with _stub_embedder(stub.url, retry_seconds=1.5) as emb:
        stub.stop()
        start = time.monotonic()
        with pytest.raises(RemoteEmbeddingError) as caught:
            emb.embed_documents(["x"])
        assert time.monotonic() - start < 4
        assert caught.value.status is None
        message = str(caught.value)
        assert f"{stub.url}/embeddings" in message
        assert "ConnectError" in message
    start = time.monotonic()
    with pytest.raises(RemoteEmbeddingError, match=stub.url):
        _stub_embedder(stub.url, retry_seconds=1)
    assert time.monotonic() - start < 4


def test_api_key_is_sent_but_never_shown(stub: StubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-0123456789-secret"
    echoing = StubServer(echo_authorization_in_errors=True)
    try:
        with _stub_embedder(echoing.url, api_key=secret, retry_seconds=0.5) as emb:
            assert echoing.requests[-1]["authorization"] == f"Bearer {secret}"
            assert secret not in repr(emb)
            assert secret not in repr(emb.config)
            assert secret not in repr(emb._backend)
            echoing.reset(Reply(401, "bad key"))
            with pytest.raises(RemoteRequestError) as rejected:
                emb.embed_documents(["x"])
            echoing.reset(*[Reply(500)] * 100)
            with pytest.raises(RemoteEmbeddingError) as failed:
                emb.embed_documents(["x"])
        for error in (rejected.value, failed.value):
            assert secret not in str(error)
            assert "Bearer ***" in str(error)
        assert "VLLM_EMBED_API_KEY" in str(rejected.value)
    finally:
        echoing.stop()
    monkeypatch.setenv("VLLM_EMBED_API_KEY", "from-the-environment")
    with _stub_embedder(stub.url):
        assert stub.requests[-1]["authorization"] == "Bearer from-the-environment"


def test_requests_are_batched_concurrent_and_in_order() -> None:
    slow = StubServer(delay=0.2)
    try:
        with _stub_embedder(slow.url, request_batch_size=3, max_concurrent_requests=3) as emb:
            texts = [f"text {i}" for i in range(20)]
            slow.reset()
            vectors = emb.embed_documents(texts)
        np.testing.assert_allclose(vectors, _expected(texts), atol=1e-6)
        assert [len(request["input"]) for request in slow.requests].count(3) == 6
        assert sorted(text for request in slow.requests for text in request["input"]) == sorted(texts)
        assert slow.max_in_flight == 3
        assert all(request["encoding_format"] == "base64" for request in slow.requests)
    finally:
        slow.stop()


def test_base64_falls_back_to_float_lists() -> None:
    server = StubServer(accept_base64=False)
    try:
        with _stub_embedder(server.url) as emb:
            server.reset()
            np.testing.assert_allclose(emb.embed_documents(["a", "b"]), _expected(["a", "b"]), atol=1e-6)
        assert [request["encoding_format"] for request in server.requests] == ["float"]
    finally:
        server.stop()


MATRYOSHKA = ModelProfile(family="test-matryoshka", matryoshka=True, min_dimension=4)


@pytest.mark.parametrize("honour", [True, False])
def test_dimensions_server_side_or_truncated_client_side(honour: bool) -> None:
    server = StubServer(honour_dimensions=honour)
    try:
        with _stub_embedder(server.url, profile=MATRYOSHKA, dimensions=6) as emb:
            assert emb.dimension == 6
            server.reset()
            vectors = emb.embed_documents(["a", "b"])
            query = emb.embed_query("c")
        np.testing.assert_allclose(vectors, _expected(["a", "b"], 6), atol=1e-6)
        np.testing.assert_allclose(query, _expected(["c"], 6)[0], atol=1e-6)
        assert all(request.get("dimensions") == (6 if honour else None) for request in server.requests)
    finally:
        server.stop()


async def test_sync_calls_work_inside_a_running_event_loop(stub: StubServer) -> None:
    with _stub_embedder(stub.url) as emb:
        sync = emb.embed_documents(["inside a loop"])
        concurrent = await asyncio.gather(*(emb.aembed_query(f"q{i}") for i in range(5)))
    np.testing.assert_allclose(sync, _expected(["inside a loop"]), atol=1e-6)
    np.testing.assert_allclose(np.stack(concurrent), _expected([f"q{i}" for i in range(5)]), atol=1e-6)


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="needs base_url="):
        Embedder(STUB_MODEL, backend="openai", profile="sentence-transformers")
    with pytest.raises(ValueError, match="must be an http"):
        Embedder(
            STUB_MODEL, backend="openai", base_url="ftp://example.org/v1", profile="sentence-transformers"
        )
