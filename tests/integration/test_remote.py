"""backend="openai": congruence with the in-process engine on a real vLLM server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from backend_spy import BackendSpy, spying
from conftest import MINILM_SERVED_NAME

from vllm_embed import Embedder
from vllm_embed.backends.openai import RemoteRequestError

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
