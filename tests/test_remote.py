"""backend="openai": congruence with the in-process engine on a real vLLM server; faults on a stub server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from backend_spy import BackendSpy, spying
from conftest import MINILM_SERVED_NAME
from remote_stub import STUB_DIMENSION, STUB_MODEL, Reply, StubServer, stub_vector

from vllm_embed import Embedder
from vllm_embed.backends.openai_remote import RemoteEmbeddingError, RemoteRequestError
from vllm_embed.profiles import ModelProfile

TEXTS = [
    "vLLM is a fast inference engine.",
    "Qdrant and Milvus store vectors for similarity search.",
    "Ünïcödé, emoji 🚀 and CJK 漢字 survive tokenisation.",
    "def add(a, b):\n    return a + b",
    "short",
]


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


@pytest.fixture
def spy(any_minilm_embedder: Embedder) -> Iterator[BackendSpy]:
    with spying(any_minilm_embedder) as recording:
        yield recording


# -- the same behaviour on both backends ---------------------------------------------------------------


def test_remote_agrees_with_in_process(minilm_embedder: Embedder, remote_minilm_embedder: Embedder) -> None:
    local = minilm_embedder.embed_documents(TEXTS)
    remote = remote_minilm_embedder.embed_documents(TEXTS)
    assert remote.dtype == np.float32
    assert remote.shape == local.shape == (len(TEXTS), 384)
    assert (local * remote).sum(axis=1).min() >= 0.999
    assert remote_minilm_embedder.max_model_len == minilm_embedder.max_model_len == 256
    assert remote_minilm_embedder.describe() == minilm_embedder.describe()


def test_documents_and_queries(any_minilm_embedder: Embedder) -> None:
    docs = any_minilm_embedder.embed_documents(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    query = any_minilm_embedder.embed_query("Which database stores vectors?")
    assert query.shape == (384,)
    assert int(np.argmax(docs @ query)) == 1
    assert float(any_minilm_embedder.embed_query(TEXTS[0]) @ docs[0]) > 0.9999  # MiniLM has no prompts


def test_empty_list_empty_strings_and_nul(any_minilm_embedder: Embedder) -> None:
    assert any_minilm_embedder.embed_documents([]).shape == (0, 384)
    vectors = any_minilm_embedder.embed_documents(["", "a\x00b", "\x00"])
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_duplicates_are_embedded_once_and_remote_gets_text(
    any_minilm_embedder: Embedder, spy: BackendSpy
) -> None:
    vectors = any_minilm_embedder.embed_documents(["same", "other", "same", "same"])
    assert len(spy.inputs) == 2
    np.testing.assert_array_equal(vectors[0], vectors[3])
    if any_minilm_embedder.config.backend == "openai":
        assert all(isinstance(item, str) for item in spy.inputs)  # never token ids


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        ("a bare string", TypeError, r"wrap it in a list"),
        (["fine", None], TypeError, r"texts\[1\] is NoneType"),
        (["ok", "bad \ud83d surrogate"], ValueError, r"texts\[1\] contains a lone surrogate"),
    ],
)
def test_bad_input_is_rejected(
    any_minilm_embedder: Embedder, bad: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        any_minilm_embedder.embed_documents(bad)
    assert any_minilm_embedder.embed_documents(["still works"]).shape == (1, 384)


def test_long_input_is_chunked_with_the_local_tokenizer(any_minilm_embedder: Embedder) -> None:
    limit = any_minilm_embedder.max_input_tokens
    assert limit == 254
    windows = any_minilm_embedder.embed_documents([" ".join(["hello"] * limit), " ".join(["hello"] * 46)])
    expected = _unit(limit * windows[0] + 46 * windows[1])
    got = any_minilm_embedder.embed_documents([" ".join(["hello"] * (limit + 46))])[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)


async def test_async_methods(any_minilm_embedder: Embedder) -> None:
    docs, query = await asyncio.gather(
        any_minilm_embedder.aembed_documents(TEXTS[:2]), any_minilm_embedder.aembed_query(TEXTS[0])
    )
    np.testing.assert_allclose(docs, any_minilm_embedder.embed_documents(TEXTS[:2]), atol=1e-5)
    assert float(query @ docs[0]) > 0.9999


def test_served_name_without_local_files(minilm_server: str, remote_minilm_embedder: Embedder) -> None:
    with Embedder(
        MINILM_SERVED_NAME, backend="openai", base_url=minilm_server, profile="sentence-transformers"
    ) as served:
        assert served.tokenizer is None
        assert (served.dimension, served.max_model_len) == (384, 256)
        np.testing.assert_allclose(
            served.embed_documents(TEXTS), remote_minilm_embedder.embed_documents(TEXTS), atol=1e-5
        )
        # Without a tokenizer the server's own limit applies, and its message reaches the caller.
        with pytest.raises(RemoteRequestError, match=r"HTTP 400: .*maximum context length is 256"):
            served.embed_documents([" ".join(["hello"] * 300)])
    with pytest.raises(RemoteRequestError, match=r"HTTP 404.*it serves \[.*'minilm-served'\]"):
        Embedder("no-such-model", backend="openai", base_url=minilm_server, profile="sentence-transformers")


def test_dimensions_on_a_model_without_matryoshka_is_rejected_before_any_request(minilm_path: str) -> None:
    with pytest.raises(ValueError, match="not trained for Matryoshka"):
        Embedder(minilm_path, backend="openai", base_url="http://127.0.0.1:9/v1", dimensions=128)


def test_remote_embedder_works_with_ingest_and_search(remote_minilm_embedder: Embedder) -> None:
    pytest.importorskip("qdrant_client")
    from vllm_embed.ingest import Document, ingest, search
    from vllm_embed.sinks import QdrantSink

    sink = QdrantSink(collection="remote", location=":memory:")
    try:
        documents = [Document(text, id=str(i)) for i, text in enumerate(TEXTS)]
        report = ingest(documents, embedder=remote_minilm_embedder, sink=sink, progress=False)
        assert report.written == len(TEXTS)
        hits = search("Which database stores vectors?", embedder=remote_minilm_embedder, sink=sink, top_k=1)
        assert hits[0].text == TEXTS[1]
    finally:
        sink.close()


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
        with caplog.at_level(logging.WARNING, logger="vllm_embed.backends.openai_remote"):
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
