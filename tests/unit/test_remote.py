"""backend="openai" without an engine: faults and hostile answers from a stub server on a real socket."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from remote_stub import STUB_DIMENSION, STUB_MODEL, Reply, StubServer, stub_vector

from vllm_embed import Embedder
from vllm_embed.backends.openai import RemoteEmbeddingError, RemoteRequestError
from vllm_embed.errors import InvalidVectorError, VllmEmbedError
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


# -- hostile answers (issue 16) ------------------------------------------------------------------------


def _with_vector(position: int, vector: Any) -> Any:
    """A mangle that replaces one input's embedding with `vector` (a float list or base64 text)."""

    def mangle(data: list[dict[str, Any]], _: str | None) -> Any:
        data[position] = {**data[position], "embedding": vector}
        return {"object": "list", "data": data}

    return mangle


def _with_indexes(*indexes: Any) -> Any:
    def mangle(data: list[dict[str, Any]], _: str | None) -> Any:
        return {"data": [{**item, "index": index} for item, index in zip(data, indexes, strict=True)]}

    return mangle


def _base64(values: list[float]) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode("ascii")


NAN, INF = float("nan"), float("inf")
ONES = [1.0] * STUB_DIMENSION


@pytest.mark.parametrize(
    ("vector", "reason"),
    [
        pytest.param([NAN, *ONES[1:]], "not finite \\(nan at position 0\\)", id="nan"),
        pytest.param([1.0, -INF, *ONES[2:]], "not finite \\(-inf at position 1\\)", id="inf"),
        pytest.param([None, *ONES[1:]], "not numbers \\(null\\)", id="null"),
        pytest.param([1e39, *ONES[1:]], "not finite \\(inf at position 0\\)", id="1e39-overflows-float32"),
        pytest.param([0.0] * STUB_DIMENSION, "all zeros", id="zero"),
        pytest.param(ONES[:-1], f"{STUB_DIMENSION - 1} values, expected {STUB_DIMENSION}", id="short"),
        pytest.param([*ONES, 1.0], f"{STUB_DIMENSION + 1} values, expected {STUB_DIMENSION}", id="long"),
        pytest.param(_base64([NAN, *ONES[1:]]), "not finite", id="nan-in-base64"),
        pytest.param("not base64!", "not base64", id="bad-base64"),
        pytest.param([[1.0, 2.0]] * 8, "not numbers", id="nested"),
        pytest.param([10**400, *ONES[1:]], "integers too large for a float", id="10**400"),
    ],
)
def test_unusable_vectors_are_refused_naming_input_and_server(
    stub: StubServer, vector: Any, reason: str
) -> None:
    with _stub_embedder(stub.url) as emb:
        stub.reset(Reply(mangle=_with_vector(1, vector)))
        with pytest.raises(InvalidVectorError, match=reason) as caught:
            emb.embed_documents(["alpha", "beta", "gamma"])
        assert "inputs[1]" in str(caught.value)
        assert f"{stub.url}/embeddings" in str(caught.value)
        assert len(stub.requests) == 1  # a broken answer is not retried
        assert isinstance(caught.value, VllmEmbedError)


def test_huge_but_finite_values_keep_their_direction(stub: StubServer) -> None:
    # 1e38 is a float32 value whose float32 norm overflows: normalised in float64, it is a usable vector.
    with _stub_embedder(stub.url) as emb:
        stub.reset(Reply(mangle=_with_vector(1, [1e38] * STUB_DIMENSION)))
        vectors = emb.embed_documents(["alpha", "beta", "gamma"])
    np.testing.assert_allclose(vectors[1], np.full(STUB_DIMENSION, STUB_DIMENSION**-0.5), rtol=1e-5)


def test_a_bad_vector_is_named_by_its_position_across_requests(stub: StubServer) -> None:
    with _stub_embedder(stub.url, request_batch_size=2, max_concurrent_requests=1) as emb:
        stub.reset(Reply(), Reply(mangle=_with_vector(1, [NAN] * STUB_DIMENSION)))
        with pytest.raises(InvalidVectorError, match=r"inputs\[3\]"):
            emb.embed_documents([f"text {i}" for i in range(5)])


@pytest.mark.parametrize(
    "indexes",
    [
        pytest.param((0, 0, 2), id="duplicate"),
        pytest.param((1, 1, 0), id="duplicate-permuted"),
        pytest.param((0, 1, 3), id="out-of-range"),
        pytest.param((0, 1, None), id="missing"),
        pytest.param((0, 1, "2"), id="text"),
        pytest.param((0, 1, True), id="bool"),
    ],
)
def test_indexes_must_be_the_request_positions(stub: StubServer, indexes: tuple[Any, ...]) -> None:
    with _stub_embedder(stub.url) as emb:
        stub.reset(Reply(mangle=_with_indexes(*indexes)))
        with pytest.raises(
            RemoteEmbeddingError, match=r"`index` values .* are not the positions 0..2"
        ) as caught:
            emb.embed_documents(["alpha", "beta", "gamma"])
        assert stub.url in str(caught.value)
        assert len(stub.requests) == 1
        stub.reset(Reply(mangle=lambda data, _: {"data": [data[2], data[0], data[1]]}))  # any order is fine
        np.testing.assert_allclose(
            emb.embed_documents(["alpha", "beta", "gamma"]), _expected(["alpha", "beta", "gamma"]), atol=1e-6
        )


def test_a_trickled_body_cannot_outlast_timeout_and_retry_seconds(stub: StubServer) -> None:
    with _stub_embedder(stub.url, timeout=1, retry_seconds=2) as emb:
        stub.reset(*[Reply(trickle=0.02)] * 20)  # ~150 bytes at 50 bytes/s: each attempt needs ~3 s
        start = time.monotonic()
        with pytest.raises(
            RemoteEmbeddingError,
            match=r"last error: no complete response (within 1s \(timeout\)|before the retry budget ran out)",
        ):
            emb.embed_documents(["x"])
        assert time.monotonic() - start < 3.5
        assert len(stub.requests) >= 2  # the attempt that timed out was retried within the budget


def test_timeout_alone_bounds_a_trickled_body_without_retries(stub: StubServer) -> None:
    with _stub_embedder(stub.url, timeout=1, retry_seconds=0) as emb:
        stub.reset(Reply(trickle=0.02))
        start = time.monotonic()
        with pytest.raises(
            RemoteEmbeddingError, match=r"last error: no complete response within 1s \(timeout\)"
        ):
            emb.embed_documents(["x"])
        assert time.monotonic() - start < 2.5
        assert len(stub.requests) == 1


@pytest.mark.parametrize("declare_length", [True, False], ids=["content-length", "until-close"])
def test_an_oversized_body_is_refused_while_reading(stub: StubServer, declare_length: bool) -> None:
    with _stub_embedder(stub.url) as emb:
        stub.reset(Reply(padding=64 << 20, declare_length=declare_length))
        start = time.monotonic()
        with pytest.raises(RemoteEmbeddingError, match=r"larger than [\d,]+ bytes") as caught:
            emb.embed_documents(["x"])
        assert time.monotonic() - start < 5
        assert caught.value.status == 200
        assert len(stub.requests) == 1  # not retried
        stub.reset(Reply(padding=4096))  # a little whitespace is within the bound
        np.testing.assert_allclose(emb.embed_documents(["x"]), _expected(["x"]), atol=1e-6)


def test_an_empty_probe_vector_is_refused(stub: StubServer) -> None:
    stub.reset(Reply(mangle=_with_vector(0, [])), Reply(mangle=_with_vector(0, [])))
    with pytest.raises(
        InvalidVectorError, match=r"probe is unusable .*it is empty.*embedding \(pooling\) model"
    ):
        _stub_embedder(stub.url)


SECRET = "sk-test-0123456789-secret"


def _echo_key_in_index(data: list[dict[str, Any]], authorization: str | None) -> Any:
    return {"data": [{**item, "index": authorization} for item in data]}


def _echo_key_in_vector(data: list[dict[str, Any]], authorization: str | None) -> Any:
    return {"data": [{**item, "embedding": [authorization, *ONES[1:]]} for item in data]}


@pytest.mark.parametrize("mangle", [_echo_key_in_index, _echo_key_in_vector], ids=["index", "vector"])
def test_a_key_echoed_in_the_body_is_redacted_from_errors(stub: StubServer, mangle: Any) -> None:
    with _stub_embedder(stub.url, api_key=SECRET) as emb:
        stub.reset(Reply(mangle=mangle))
        with pytest.raises((RemoteEmbeddingError, InvalidVectorError)) as caught:
            emb.embed_documents(["alpha", "beta"])
    assert stub.requests[-1]["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in str(caught.value)


def test_a_key_in_base_url_becomes_the_api_key_and_is_never_shown(
    stub: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    keyed_url = stub.url.replace("http://", f"http://user:{SECRET}@")
    httpx_logger = logging.getLogger("httpx")
    saved = httpx_logger.level
    try:
        httpx_logger.setLevel(logging.NOTSET)
        with caplog.at_level(logging.DEBUG), _stub_embedder(keyed_url) as emb:
            emb.embed_documents(["x"])
            assert httpx_logger.level == logging.WARNING  # quiet unless the user configured it
            assert emb.config.base_url == stub.url
            assert emb.config.api_key is not None and emb.config.api_key.get_secret_value() == SECRET
            assert SECRET not in repr(emb.config) + repr(emb) + repr(emb._backend)
        assert stub.requests[-1]["authorization"] == f"Bearer {SECRET}"
        assert SECRET not in caplog.text

        httpx_logger.setLevel(logging.INFO)  # asked for: httpx logs requests, with the bare URL
        caplog.clear()
        with caplog.at_level(logging.INFO), _stub_embedder(keyed_url) as emb:
            emb.embed_documents(["x"])
        assert httpx_logger.level == logging.INFO
        assert f"HTTP Request: POST {stub.url}/embeddings" in caplog.text
        assert SECRET not in caplog.text
    finally:
        httpx_logger.setLevel(saved)


def test_a_key_in_base_url_that_contradicts_api_key_is_refused() -> None:
    from vllm_embed.config import EmbedderConfig

    with pytest.raises(ValueError, match="differs from api_key=") as caught:
        EmbedderConfig(model=STUB_MODEL, base_url=f"http://u:{SECRET}@127.0.0.1:9/v1", api_key="sk-other")
    assert SECRET not in str(caught.value)
    assert "sk-other" not in str(caught.value)
    same = EmbedderConfig(model=STUB_MODEL, base_url=f"http://{SECRET}@127.0.0.1:9/v1", api_key=SECRET)
    assert (same.base_url, same.api_key is not None and same.api_key.get_secret_value()) == (
        "http://127.0.0.1:9/v1",
        SECRET,
    )


def test_the_error_bases() -> None:
    import vllm_embed
    from vllm_embed.backends import openai

    assert vllm_embed.RemoteEmbeddingError is openai.RemoteEmbeddingError
    assert issubclass(RemoteEmbeddingError, VllmEmbedError) and issubclass(RemoteEmbeddingError, RuntimeError)
    assert issubclass(RemoteRequestError, VllmEmbedError) and issubclass(RemoteRequestError, ValueError)


def test_user_info_split_and_redaction_forms() -> None:
    from vllm_embed._secrets import Redactor, split_user_info

    assert split_user_info("http://127.0.0.1:8000/v1") == ("http://127.0.0.1:8000/v1", None)
    assert split_user_info("https://u:k%2Fey@h/v1") == ("https://h/v1", "k/ey")
    assert split_user_info("http://tok@h:1/v1") == ("http://h:1/v1", "tok")
    redact = Redactor(['k/ey "x"', None, ""])
    for echoed in ('k/ey "x"', "k%2Fey%20%22x%22", 'k/ey \\"x\\"'):
        assert redact(f"got {echoed}!") == "got ***!"
