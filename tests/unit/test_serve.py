"""`vllm-embed serve`'s pure logic: input shapes, validation messages, the token budget, the middlewares."""

from __future__ import annotations

import asyncio
import base64
import socket
from typing import Any

import httpx
import numpy as np
import pytest
from cli_helpers import no_engine, run

from vllm_embed import cli
from vllm_embed.serve.auth import APIKeyCheck
from vllm_embed.serve.encoding import base64_rows
from vllm_embed.serve.errors import APIError, error_response
from vllm_embed.serve.limits import BodyLimit, TokenBudget
from vllm_embed.serve.service import parse_inputs
from vllm_embed.serve.settings import ServeLimits
from vllm_embed.serve.validation import validation_message


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("a", ["a"]),
        (["a", "b"], ["a", "b"]),
        ([5, 6], [[5, 6]]),
        ([[5], [6, 7]], [[5], [6, 7]]),
    ],
    ids=["text", "texts", "ids", "id-lists"],
)
def test_inputs_take_every_openai_shape(value: Any, parsed: Any) -> None:
    assert parse_inputs(value, "input", 10) == parsed


@pytest.mark.parametrize(
    ("value", "status", "says"),
    [
        ([], 400, "non-empty"),
        (3, 400, "a list of strings"),
        (["a", 1], 400, "input[1] is not a string as input[0] is"),
        ([[1], []], 400, "input[1] is not a list of token ids"),
        ([True], 400, "input[0] is not a list of token ids"),
        (["a"] * 11, 413, "--max-request-inputs 10"),
    ],
)
def test_bad_inputs_say_what_to_send(value: Any, status: int, says: str) -> None:
    with pytest.raises(APIError) as caught:
        parse_inputs(value, "input", 10)
    assert caught.value.status == status and says in caught.value.message


def test_validation_messages_name_the_field_and_the_fix() -> None:
    errors = [
        {"type": "missing", "loc": ("body", "input"), "msg": "Field required"},
        {"type": "extra_forbidden", "loc": ("body", "dimensons"), "msg": "Extra inputs are not permitted"},
        {"type": "literal_error", "loc": ("body", "documents", 2, "text"), "msg": "Input should be 'x'"},
        {"type": "int_parsing", "loc": ("body", "top_n"), "msg": "Input should be a valid integer"},
    ]
    assert validation_message(errors) == (
        "input is required; unknown field 'dimensons': check its spelling (the endpoint's fields are listed "
        "at /docs); documents[2].text: Input should be 'x'; and 1 more"
    )
    invalid_json = {"type": "json_invalid", "loc": ("body", 9), "ctx": {"error": "Expecting value"}}
    assert (
        validation_message([invalid_json])
        == "the body is not valid JSON (Expecting value); send a JSON object"
    )


def test_the_token_budget_admits_until_full_then_answers_429_with_retry_after() -> None:
    budget = TokenBudget(100)
    with budget.admit(60):
        assert budget.queued == 60
        with budget.admit(40):
            assert budget.queued == 100
        with pytest.raises(APIError) as busy, budget.admit(41):
            pass
        assert busy.value.status == 429 and busy.value.headers["Retry-After"].isdigit()
        assert "--max-queued-tokens 100" in busy.value.message
    assert budget.queued == 0
    with budget.admit(100):  # alone it may take the whole budget
        pass
    with pytest.raises(APIError) as too_big, budget.admit(101):
        pass
    assert too_big.value.status == 413 and budget.queued == 0


def test_retry_after_follows_the_rate_tokens_are_answered_at() -> None:
    budget = TokenBudget(1000)
    assert budget.retry_after(500) == 1  # nothing answered yet: a second
    budget._rate = 100.0
    assert budget.retry_after(500) == 5
    assert budget.retry_after(10**9) == 60


def test_base64_rows_are_little_endian_float32() -> None:
    vectors = np.asarray([[1.0, -2.5], [0.25, 3.0]], dtype=np.float32)
    decoded = [np.frombuffer(base64.b64decode(row), "<f4") for row in base64_rows(vectors)]
    np.testing.assert_array_equal(np.stack(decoded), vectors)


async def _echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body and answers its length; an `APIError` becomes its JSON response."""
    try:
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
    except APIError as exc:
        await error_response(exc)(scope, receive, send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def _call(app: Any, **request: Any) -> httpx.Response:
    async def call() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://serve"
        ) as client:
            return await client.post("/v1/embeddings", **request)

    return asyncio.run(call())


def test_the_body_limit_refuses_declared_and_streamed_bodies_naming_the_flag() -> None:
    app = BodyLimit(_echo_app, ServeLimits(max_request_bytes=10))
    assert _call(app, content=b"0123456789").text == "10"
    declared = _call(app, content=b"0123456789a")
    assert declared.status_code == 413 and "--max-request-bytes 10" in declared.json()["error"]["message"]

    async def chunks() -> Any:
        for _ in range(3):
            yield b"0123"

    streamed = _call(app, content=chunks())  # no Content-Length: counted as it arrives
    assert streamed.status_code == 413 and "--max-request-bytes 10" in streamed.json()["error"]["message"]


def test_the_api_key_check_answers_401_without_echoing_the_key() -> None:
    app = APIKeyCheck(_echo_app, "k3y")
    assert _call(app, content=b"ab", headers={"Authorization": "Bearer k3y"}).text == "2"
    for headers in ({}, {"Authorization": "Bearer k3y2"}, {"Authorization": "k3y"}):
        answer = _call(app, content=b"ab", headers=headers)
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
        assert "k3y" not in answer.text and "Authorization: Bearer" in answer.text


def test_serve_fails_in_seconds_when_its_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run("serve", "--model", "no/such-model", "--port", str(port))
    assert code == 1
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err


def test_serve_refuses_a_sparse_model_of_another_architecture_before_any_engine(
    minilm_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "make_reranker", no_engine)
    monkeypatch.setenv("VLLM_CPU_NUM_OF_RESERVED_CPU", "1")  # what serve sets, restored after the test
    code, _, err = run("serve", "--model", minilm_path, "--sparse-model", minilm_path, "--port", "0")
    assert code == 1
    last = err.splitlines()[-1]  # after the one progress line
    assert (
        err.count("error:") == 1 and "SparseEmbedder serves the architectures" in last and "BertModel" in last
    )
