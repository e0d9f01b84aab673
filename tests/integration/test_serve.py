"""`vllm-embed serve` as a client sees it: MiniLM in the real server process, the tiny Qwen3 in this one.

The `serve` command runs once, in a subprocess, with MiniLM and the SPLADE fixture as `--sparse-model`: it
requires an API key (read from the environment, as documented) and has small limits, so that the 413 cases
are cheap; the last test stops it with SIGTERM during a burst. The Qwen3 routes (query instruction,
Matryoshka dimensions, the cache, rerank) are the same `create_app` over the session's tiny Qwen3 engines,
served by uvicorn on a real port from this process: no second server process and no second pair of engines.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import ServerProcess, _free_port

from vllm_embed import Embedder, Reranker, SparseEmbedder, SparseVector
from vllm_embed._utils import unit_rows
from vllm_embed.backends.vllm_local import running_engines

openai = pytest.importorskip("openai")

API_KEY = "serve-test-key-4f9c2e"
LIMITS = ["--max-request-bytes", str(1 << 20), "--max-request-inputs", "256", "--max-queued-tokens", "100000"]
TEXTS = [
    "vLLM is a high-throughput inference engine for language models.",
    "Qdrant is a vector database that searches embeddings by similarity.",
    "A good sourdough needs flour, water, salt and a lively starter.",
]
LONG_TEXT = " ".join(f"word{i} is a token that the tokenizer splits" for i in range(60))  # ~540 tokens
FITTING_TEXT = LONG_TEXT[: len(LONG_TEXT) // 3]  # within MiniLM's 256 tokens
QWEN3_SERVED = "qwen3-served"


def _serve_command(model: str, port: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "vllm_embed.cli", "serve", "--model", model, "--dtype", "float32",
        "--port", str(port), *extra,
    ]  # fmt: skip


class InProcessServer:
    """`vllm-embed serve ARGS` run by `cli.main` in a thread of this process, on a real port.

    The facades it builds have the session's settings, so they share the session's engines instead of
    starting their own. `serve.server.run` runs as it is; the uvicorn server it makes is kept, to stop it.
    """

    def __init__(self, *args: str) -> None:
        self.port = _free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.args = ["serve", *args, "--port", str(self.port)]
        self.servers: list[Any] = []
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        from vllm_embed import cli

        try:
            cli.main(self.args)
        except BaseException as exc:  # noqa: BLE001 - reported by wait_healthy
            self.failure = exc

    def start(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import uvicorn

        servers = self.servers

        class KeptServer(uvicorn.Server):
            def __init__(self, config: uvicorn.Config) -> None:
                super().__init__(config)
                servers.append(self)

        monkeypatch.setattr(uvicorn, "Server", KeptServer)
        self.thread.start()

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + 600  # a safety net for a wedged start, not a timing assertion
        while not (self.servers and self.servers[0].started):
            assert self.thread.is_alive(), f"serve {self.args} ended: {self.failure!r}"
            assert time.monotonic() < deadline, f"serve {self.args} did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        for server in self.servers:
            server.should_exit = True
        self.thread.join(timeout=120)
        assert not self.thread.is_alive() and self.failure is None, self.failure


@pytest.fixture(scope="module")
def minilm_server(
    minilm_path: str, splade_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """`vllm-embed serve` in its own process: MiniLM, `--sparse-model` SPLADE, an API key and small limits."""
    port = _free_port()
    with ServerProcess(
        _serve_command(minilm_path, port, *LIMITS, "--sparse-model", str(splade_path)),
        port,
        tmp_path_factory.mktemp("serve") / "minilm.log",
        "vllm-embed serve (MiniLM)",
        env={"VLLM_EMBED_API_KEY": API_KEY},
    ) as server:
        server.wait_healthy()
        yield server


@pytest.fixture(scope="module")
def qwen3_server(
    qwen3_embedder: Embedder,
    qwen3_reranker: Reranker,
    tiny_reranker_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[InProcessServer]:
    """`serve` with the tiny Qwen3, its reranker, a served name and a new cache file, in this process."""
    cache = tmp_path_factory.mktemp("serve-qwen3") / "qwen3-cache.sqlite"
    flags = ["--rerank-model", str(tiny_reranker_path), "--served-model-name", QWEN3_SERVED]
    server = InProcessServer(
        "--model", str(qwen3_embedder.config.model), "--dtype", "float32", *flags, "--cache", str(cache)
    )
    with pytest.MonkeyPatch.context() as monkeypatch:
        # serve keeps a core for HTTP through the environment: restored after, for the engines started later
        monkeypatch.setenv(
            "VLLM_CPU_NUM_OF_RESERVED_CPU", os.environ.get("VLLM_CPU_NUM_OF_RESERVED_CPU", "1")
        )
        engines = running_engines()
        server.start(monkeypatch)
        try:
            server.wait_healthy()
            assert running_engines() == engines  # its Embedder and Reranker share the session's engines
            yield server
        finally:
            server.stop()


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


def _post(
    server: ServerProcess | InProcessServer, path: str, body: object, key: bool = True
) -> httpx.Response:
    return httpx.post(f"{server.root}{path}", json=body, headers=_auth() if key else {}, timeout=60)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(unit_rows(a) * unit_rows(b), axis=1)


# -- OpenAI API ------------------------------------------------------------------------------------------


def test_openai_sdk_vectors_equal_the_embedders(
    minilm_server: ServerProcess, minilm_embedder: Embedder
) -> None:
    client = openai.OpenAI(base_url=f"{minilm_server.root}/v1", api_key=API_KEY)
    model = client.models.list().data[0].id
    answer = client.embeddings.create(model=model, input=TEXTS)  # the SDK asks for base64 by default
    served = np.asarray([item.embedding for item in answer.data], dtype=np.float32)
    assert np.all(_cos(served, minilm_embedder.embed_documents(TEXTS)) >= 0.9999)
    assert answer.usage.prompt_tokens == sum(
        len(ids) for ids in minilm_embedder.tokenizer(TEXTS)["input_ids"]
    )  # with [CLS] and [SEP]
    floats = client.embeddings.create(model=model, input=TEXTS, encoding_format="float")
    np.testing.assert_array_equal(served, np.asarray([item.embedding for item in floats.data], np.float32))


def test_base64_equals_float_and_token_ids_equal_their_text(
    minilm_server: ServerProcess, minilm_embedder: Embedder
) -> None:
    url = f"{minilm_server.root}/v1/embeddings"
    ids = minilm_embedder.tokenizer(TEXTS[0], add_special_tokens=False)["input_ids"]
    bodies = [
        {"input": TEXTS[0], "encoding_format": "float"},
        {"input": [TEXTS[0]], "encoding_format": "base64"},
        {"input": ids},
        {"input": [ids]},
    ]
    rows = []
    for body in bodies:
        answer = httpx.post(url, json=body, headers=_auth(), timeout=60)
        assert answer.status_code == 200, answer.text
        item = answer.json()["data"][0]["embedding"]
        rows.append(
            np.frombuffer(base64.b64decode(item), "<f4") if isinstance(item, str) else np.asarray(item)
        )
    assert rows[0].shape == (384,)
    for row in rows[1:]:
        np.testing.assert_allclose(row, rows[0], atol=1e-6)


def test_dimensions_on_minilm_is_refused_with_the_reason(minilm_server: ServerProcess) -> None:
    answer = httpx.post(
        f"{minilm_server.root}/v1/embeddings",
        json={"input": "a", "dimensions": 64},
        headers=_auth(),
        timeout=60,
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "dimensions"
    assert "not trained for Matryoshka" in error["message"] and "384" in error["message"]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b'{"input": ["a"', 400, "not valid JSON"),
        (b'{"model": "x"}', 400, "input is required"),
        (b'{"input": "a", "dimensons": 32}', 400, "unknown field 'dimensons'"),
        (b'{"input": "a", "encoding_format": "int8"}', 400, "encoding_format"),
        (b'{"input": [1, "a"]}', 400, "not a mix"),
        (b'{"input": [[999999999]]}', 400, "outside"),
        (b'{"input": "a", "model": "other"}', 404, "this server embeds with"),
        (json.dumps({"input": ["a"] * 257}).encode(), 413, "--max-request-inputs 256"),
        (json.dumps({"input": ["a " * 600_000]}).encode(), 413, "--max-request-bytes"),
        (json.dumps({"input": [LONG_TEXT * 3] * 120}).encode(), 413, "--max-queued-tokens 100000"),
    ],
    ids=[
        "json",
        "missing",
        "misspelt",
        "format",
        "mixed",
        "vocabulary",
        "model",
        "inputs",
        "bytes",
        "tokens",
    ],
)
def test_bad_requests_get_a_4xx_that_says_what_to_fix(
    minilm_server: ServerProcess, body: bytes, status: int, says: str
) -> None:
    answer = httpx.post(
        f"{minilm_server.root}/v1/embeddings",
        content=body,
        headers={**_auth(), "Content-Type": "application/json"},
        timeout=60,
    )
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]["message"]


def test_a_wrong_or_missing_key_gets_401_and_the_key_is_never_logged(minilm_server: ServerProcess) -> None:
    url = f"{minilm_server.root}/v1/embeddings"
    for headers in ({}, {"Authorization": f"Bearer {API_KEY}x"}, {"Authorization": API_KEY}):
        answer = httpx.post(url, json={"input": "a"}, headers=headers, timeout=60)
        assert answer.status_code == 401
        assert "Authorization: Bearer" in answer.json()["error"]["message"]
        assert API_KEY not in answer.text
    assert httpx.get(f"{minilm_server.root}/health", timeout=10).status_code == 200  # open, as vLLM's
    assert API_KEY not in minilm_server.log()


def test_our_remote_backend_works_against_it(minilm_server: ServerProcess, minilm_embedder: Embedder) -> None:
    os.environ["VLLM_EMBED_API_KEY"] = API_KEY
    try:
        with Embedder(
            minilm_embedder.config.model, backend="openai", base_url=f"{minilm_server.root}/v1"
        ) as remote:
            assert remote.max_model_len == 256  # read from /v1/models
            vectors = remote.embed_documents([*TEXTS, FITTING_TEXT])
    finally:
        del os.environ["VLLM_EMBED_API_KEY"]
    local = minilm_embedder.embed_documents([*TEXTS, FITTING_TEXT])
    assert np.all(_cos(vectors, local) >= 0.9999)


def test_the_framework_adapters_work_against_it(
    minilm_server: ServerProcess, minilm_embedder: Embedder
) -> None:
    VLLMEmbeddings = pytest.importorskip("langchain_vllm_embed").VLLMEmbeddings
    VLLMEmbedding = pytest.importorskip("llama_index.embeddings.vllm_embed").VLLMEmbedding
    local = minilm_embedder.embed_documents(TEXTS)
    remote_settings = {"backend": "openai", "base_url": f"{minilm_server.root}/v1", "api_key": API_KEY}
    langchain = VLLMEmbeddings(model=minilm_embedder.config.model, **remote_settings)
    llama_index = VLLMEmbedding(model_name=minilm_embedder.config.model, **remote_settings)
    try:
        assert np.all(_cos(np.asarray(langchain.embed_documents(TEXTS), np.float32), local) >= 0.9999)
        served = np.asarray(llama_index.get_text_embedding_batch(TEXTS), np.float32)
        assert np.all(_cos(served, local) >= 0.9999)
    finally:
        langchain.close()
        llama_index.close()


# -- TEI and Cohere --------------------------------------------------------------------------------------


def test_tei_and_cohere_routes_answer_in_their_schema(
    minilm_server: ServerProcess, minilm_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = minilm_embedder.embed_documents(TEXTS)
    tei = httpx.post(f"{minilm_server.root}/embed", json={"inputs": TEXTS}, headers=_auth(), timeout=60)
    assert tei.status_code == 200, tei.text
    assert np.all(_cos(np.asarray(tei.json(), np.float32), local) >= 0.9999)  # a bare list of float lists
    from huggingface_hub import (
        InferenceClient,
        constants,
    )  # what TEI clients (LangChain, Haystack) call: POST /

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # offline mode refuses every URL, a local one too
    hub = InferenceClient(model=minilm_server.root, token=API_KEY).feature_extraction(TEXTS[0])
    assert _cos(np.asarray(hub, np.float32).reshape(1, -1), local[:1])[0] >= 0.9999
    info = httpx.get(f"{minilm_server.root}/info", headers=_auth(), timeout=10).json()
    assert info["max_input_length"] == 256 and info["max_client_batch_size"] == 256
    cohere = httpx.post(
        f"{minilm_server.root}/v2/embed",
        json={"texts": TEXTS, "input_type": "search_document", "embedding_types": ["float"]},
        headers=_auth(),
        timeout=60,
    ).json()
    assert cohere["response_type"] == "embeddings_by_type" and cohere["texts"] == TEXTS
    assert np.all(_cos(np.asarray(cohere["embeddings"]["float"], np.float32), local) >= 0.9999)
    assert cohere["meta"]["billed_units"]["input_tokens"] > len(TEXTS)


def test_embed_sparse_equals_the_sparse_embedders_in_teis_schema(
    minilm_server: ServerProcess, splade_embedder: SparseEmbedder
) -> None:
    def served(body: dict[str, object]) -> list[list[dict[str, float]]]:
        answer = _post(minilm_server, "/embed_sparse", body)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def assert_equal(terms: list[dict[str, float]], expected: SparseVector) -> None:
        assert all(set(term) == {"index", "value"} for term in terms)
        assert [term["index"] for term in terms] == expected.indices.tolist()
        np.testing.assert_allclose([term["value"] for term in terms], expected.values, atol=1e-4)

    documents = served({"inputs": TEXTS, "truncate": True, "truncation_direction": "Right"})
    assert len(documents) == len(TEXTS)
    for terms, expected in zip(documents, splade_embedder.embed_documents(TEXTS), strict=True):
        assert_equal(terms, expected)
    (query,) = served({"inputs": TEXTS[0], "prompt_name": "query"})
    assert_equal(query, splade_embedder.embed_query(TEXTS[0]))
    ids = splade_embedder.tokenizer(TEXTS[1], add_special_tokens=False)["input_ids"]
    assert served({"inputs": ids}) == documents[1:2]
    for body, says in [
        ({"inputs": TEXTS, "normalize": True}, "unknown field 'normalize'"),
        ({"inputs": TEXTS, "prompt_name": "classification"}, "use 'query'"),
        ({"inputs": []}, "inputs must be"),
    ]:
        answer = _post(minilm_server, "/embed_sparse", body)
        assert answer.status_code == 400 and says in answer.json()["error"]["message"], answer.text
    assert _post(minilm_server, "/embed_sparse", {"inputs": "a"}, key=False).status_code == 401
    metrics = httpx.get(f"{minilm_server.root}/metrics", timeout=10).text
    assert 'vllm_embed_requests_total{route="/embed_sparse",status="200"} 3.0' in metrics


def test_metrics_count_requests_latency_and_inputs(minilm_server: ServerProcess) -> None:
    httpx.post(f"{minilm_server.root}/embed", json={"inputs": TEXTS}, headers=_auth(), timeout=60)
    text = httpx.get(f"{minilm_server.root}/metrics", timeout=10).text
    assert 'vllm_embed_requests_total{route="/embed",status="200"}' in text
    assert 'vllm_embed_request_duration_seconds_bucket{le="0.005",route="/embed"}' in text
    assert 'vllm_embed_request_inputs_sum{route="/embed"}' in text
    assert "vllm_embed_cache_hits_total 0.0" in text and "vllm_embed_queued_tokens" in text


# -- the Qwen3 profile: query prompts, Matryoshka dimensions, rerank ----------------------------------------


def test_input_type_query_applies_the_query_instruction_under_the_served_name(
    qwen3_server: InProcessServer, qwen3_embedder: Embedder
) -> None:
    client = openai.OpenAI(base_url=f"{qwen3_server.root}/v1", api_key="unused")
    model = QWEN3_SERVED  # --served-model-name: the name clients pass, not the path the model loaded from
    assert client.models.list().data[0].id == model
    with pytest.raises(openai.NotFoundError, match=f"this server embeds with '{model}'"):
        client.embeddings.create(model=str(qwen3_embedder.config.model), input=TEXTS)
    queries = client.embeddings.create(model=model, input=TEXTS, extra_body={"input_type": "query"})
    documents = client.embeddings.create(model=model, input=TEXTS)  # input_type defaults to document
    served_q = np.asarray([item.embedding for item in queries.data], np.float32)
    served_d = np.asarray([item.embedding for item in documents.data], np.float32)
    assert np.all(_cos(served_q, qwen3_embedder.embed_queries(TEXTS)) >= 0.9999)
    assert np.all(_cos(served_d, qwen3_embedder.embed_documents(TEXTS)) >= 0.9999)
    assert np.all(_cos(served_q, served_d) < 0.9999)  # the instruction changed the vectors


def test_dimensions_on_qwen3_keep_the_leading_dimensions(
    qwen3_server: InProcessServer, qwen3_embedder: Embedder
) -> None:
    client = openai.OpenAI(base_url=f"{qwen3_server.root}/v1", api_key="unused")
    answer = client.embeddings.create(model=QWEN3_SERVED, input=TEXTS, dimensions=32)
    served = np.asarray([item.embedding for item in answer.data], np.float32)
    assert served.shape == (3, 32)
    expected = unit_rows(qwen3_embedder.embed_documents(TEXTS)[:, :32])
    assert np.all(_cos(served, expected) >= 0.9999)
    too_small = httpx.post(
        f"{qwen3_server.root}/v1/embeddings", json={"input": "a", "dimensions": 8}, timeout=60
    )
    assert too_small.status_code == 400 and "outside 32..64" in too_small.json()["error"]["message"]


def test_a_cache_hit_answers_the_same_vector_and_is_counted(qwen3_server: InProcessServer) -> None:
    def counters() -> dict[str, float]:
        text = httpx.get(f"{qwen3_server.root}/metrics", timeout=10).text
        return {
            line.split()[0]: float(line.split()[1])
            for line in text.splitlines()
            if line.startswith(("vllm_embed_cache_hits_total ", "vllm_embed_cache_misses_total "))
        }

    body = {"input": ["a text only this test sends"], "input_type": "query"}  # the cache file is new
    before = counters()
    first, second = (_post(qwen3_server, "/v1/embeddings", body).json() for _ in range(2))
    after = counters()
    assert first["data"] == second["data"]
    assert after["vllm_embed_cache_misses_total"] == before["vllm_embed_cache_misses_total"] + 1
    assert after["vllm_embed_cache_hits_total"] == before["vllm_embed_cache_hits_total"] + 1


def test_rerank_equals_the_rerankers_score_in_both_body_shapes(
    qwen3_server: InProcessServer, qwen3_reranker: Reranker
) -> None:
    query, documents = "Which engine is fast?", TEXTS
    expected = qwen3_reranker.score(query, documents)
    vllm_shape = httpx.post(
        f"{qwen3_server.root}/v1/rerank",
        json={"query": query, "documents": documents, "top_n": 2},
        timeout=60,
    ).json()
    assert [r["index"] for r in vllm_shape["results"]] == list(np.argsort(-expected, kind="stable")[:2])
    for result in vllm_shape["results"]:
        assert result["relevance_score"] == pytest.approx(expected[result["index"]], abs=1e-4)
        assert result["document"]["text"] == documents[result["index"]]
    tei_shape = httpx.post(
        f"{qwen3_server.root}/rerank",
        json={"query": query, "texts": documents, "return_text": True},
        timeout=60,
    ).json()
    assert [r["index"] for r in tei_shape] == list(np.argsort(-expected, kind="stable"))  # a bare list
    assert [r["score"] for r in tei_shape] == pytest.approx(sorted(expected, reverse=True), abs=1e-4)
    cohere = _post(
        qwen3_server,
        "/v2/rerank",
        {"query": query, "documents": [{"text": d} for d in documents], "top_n": 0},
    ).json()  # documents as objects (Jina, Cohere); top_n 0: all
    assert [r["index"] for r in cohere["results"]] == [r["index"] for r in tei_shape]
    both = _post(qwen3_server, "/rerank", {"query": query})
    assert both.status_code == 400 and "documents" in both.json()["error"]["message"]
    with Reranker(
        str(qwen3_reranker.config.model), backend="openai", base_url=f"{qwen3_server.root}/v1"
    ) as remote:
        np.testing.assert_allclose(remote.score(query, documents), expected, atol=1e-4)


@pytest.mark.parametrize(
    ("server", "path", "body", "status", "flag"),
    [
        ("minilm_server", "/rerank", {"query": "q", "documents": ["d"]}, 404, "--rerank-model"),
        ("qwen3_server", "/embed_sparse", {"inputs": "a"}, 424, "--sparse-model"),  # 424: as TEI answers
    ],
    ids=["rerank", "sparse"],
)
def test_a_route_without_its_model_answers_naming_the_flag(
    request: pytest.FixtureRequest, server: str, path: str, body: object, status: int, flag: str
) -> None:
    answer = _post(request.getfixturevalue(server), path, body)
    assert answer.status_code == status and flag in answer.json()["error"]["message"]


# -- shutdown (last: it stops the MiniLM server) ------------------------------------------------------------


def test_sigterm_during_a_burst_answers_every_accepted_request(
    minilm_server: ServerProcess, minilm_embedder: Embedder
) -> None:
    burst = 24
    texts = [[f"{i} {LONG_TEXT}", f"{i} {TEXTS[i % 3]}"] for i in range(burst)]

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(headers=_auth(), timeout=120) as client:
            sent = [
                asyncio.ensure_future(client.post(f"{minilm_server.root}/v1/embeddings", json={"input": t}))
                for t in texts
            ]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # until every request of the burst is in the server
                metrics = (await client.get(f"{minilm_server.root}/metrics")).text
                line = next(
                    x for x in metrics.splitlines() if x.startswith("vllm_embed_requests_in_progress ")
                )
                if float(line.split()[1]) >= burst + 1:  # the burst, and this /metrics request
                    break
                await asyncio.sleep(0.01)
            assert minilm_server.process is not None
            minilm_server.process.send_signal(signal.SIGTERM)
            return list(await asyncio.gather(*sent))

    answers = asyncio.run(run())
    assert [a.status_code for a in answers] == [200] * burst
    served = np.asarray([item["embedding"] for a in answers for item in a.json()["data"]], dtype=np.float32)
    local = minilm_embedder.embed_documents([text for pair in texts for text in pair])
    assert np.all(_cos(served, local) >= 0.9999)
    assert minilm_server.process is not None
    assert minilm_server.process.wait(timeout=60) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{minilm_server.root}/health", timeout=5)
