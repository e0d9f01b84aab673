"""Async methods on the shared engine: same vectors as sync, shared batching, safe cancellation."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from vllm_embed import Embedder

QUERIES = [f"question number {i} about topic {i % 5}" for i in range(24)]


async def test_concurrent_queries_equal_the_sync_results(minilm_embedder: Embedder) -> None:
    expected = minilm_embedder.embed_queries(QUERIES)
    results = await asyncio.gather(*(minilm_embedder.aembed_query(q) for q in QUERIES))
    got = np.stack(results)
    assert got.dtype == np.float32
    assert (got * expected).sum(axis=1).min() >= 0.999


async def test_concurrent_calls_share_engine_batches(
    minilm_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine: Any = minilm_embedder._backend._engine  # type: ignore[attr-defined]
    calls: list[int] = []
    real = engine._encode_into

    def counting(jobs: list[Any]) -> None:
        calls.append(len(jobs))
        real(jobs)

    monkeypatch.setattr(engine, "_encode_into", counting)
    await asyncio.gather(*(minilm_embedder.aembed_documents([f"doc {i}", "shared"]) for i in range(30)))
    assert sum(calls) == 30
    assert len(calls) < 30 and max(calls) > 1, calls


async def test_cancelling_a_waiting_call_leaves_the_others_intact(minilm_embedder: Embedder) -> None:
    expected = minilm_embedder.embed_documents(QUERIES)
    tasks = [asyncio.create_task(minilm_embedder.aembed_documents([text])) for text in QUERIES]
    await asyncio.sleep(0)
    for task in tasks[1::3]:
        task.cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, asyncio.CancelledError):
            assert index % 3 == 1
            continue
        assert isinstance(outcome, np.ndarray), outcome
        assert float(outcome[0] @ expected[index]) >= 0.999
    after = await minilm_embedder.aembed_documents(["the engine still answers"])
    assert after.shape == (1, 384)


async def test_sync_calls_work_inside_a_running_event_loop(minilm_embedder: Embedder) -> None:
    asyncio.get_running_loop()
    inside = minilm_embedder.embed_documents(["called from a coroutine"])
    awaited = await minilm_embedder.aembed_documents(["called from a coroutine"])
    np.testing.assert_allclose(inside, awaited, atol=1e-6)


async def test_async_applies_the_long_input_policy_and_validation(minilm_embedder: Embedder) -> None:
    long_text = " ".join(["hello"] * 400)
    sync = minilm_embedder.embed_documents([long_text, "short"])
    got = await minilm_embedder.aembed_documents([long_text, "short"])
    np.testing.assert_allclose(got, sync, atol=1e-5)
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType"):
        await minilm_embedder.aembed_documents(["ok", None])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="wrap it in a list"):
        await minilm_embedder.aembed_documents("bare")
    assert (await minilm_embedder.aembed_documents([])).shape == (0, 384)
