"""`advise` on real engines: MiniLM (quantization rows only) and the tiny Qwen3 (Matryoshka rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from advise_corpus import stdlib_documents

from vllm_embed import Embedder
from vllm_embed.advise import Advice, advise, embedder_settings, store_settings
from vllm_embed.advise.measure import _truncated as truncated


@pytest.fixture(scope="module")
def corpus() -> list[dict[str, str]]:
    return stdlib_documents(200)


SAMPLE, HELD_OUT = 150, 30


def check_advice(advice: Advice, native: int) -> None:
    assert advice.native_dimensions == native and advice.queries_from == "held-out"
    assert advice.sample_chunks == SAMPLE and advice.queries == HELD_OUT
    native_float = next(r for r in advice.rows if (r.dimensions, r.kind) == (native, "float32"))
    assert native_float.recall_at_k == 1.0
    for kind in ("float32", "int8", "binary", "binary+rescore"):
        series = sorted((r for r in advice.rows if r.kind == kind), key=lambda r: -r.bytes_per_vector)
        recalls = [r.recall_at_k for r in series]
        assert recalls == sorted(recalls, reverse=True), (kind, recalls)
    best = advice.recommendation
    assert best is not None and best.recall_at_k >= advice.target_recall
    assert all(
        r.ram_bytes_per_vector >= best.ram_bytes_per_vector
        for r in advice.rows
        if r.recall_at_k >= advice.target_recall
    )
    assert advice.embedder_settings == embedder_settings(best, native)
    assert advice.qdrant_settings == store_settings(best)


def test_advise_minilm_measures_the_quantizations(
    minilm_embedder: Embedder, corpus: list[dict[str, str]]
) -> None:
    advice = advise(corpus, embedder=minilm_embedder, sample=SAMPLE, held_out=HELD_OUT, target_recall=0.9)
    assert {r.dimensions for r in advice.rows} == {384}  # not Matryoshka-trained: its native size only
    assert [r.kind for r in advice.rows] == ["float32", "int8", "binary", "binary+rescore"]
    check_advice(advice, 384)
    by_kind = {r.kind: r.recall_at_k for r in advice.rows}
    assert by_kind["int8"] >= 0.9  # int8 keeps most neighbours of a real model's vectors
    assert by_kind["binary+rescore"] >= by_kind["binary"]


def test_advise_qwen3_measures_each_matryoshka_size(
    qwen3_embedder: Embedder, corpus: list[dict[str, str]]
) -> None:
    advice = advise(corpus, embedder=qwen3_embedder, sample=SAMPLE, held_out=HELD_OUT, target_recall=0.9)
    assert [r.dimensions for r in advice.rows][::4] == [64, 32]
    check_advice(advice, 64)


def test_truncating_the_native_vectors_is_what_the_engine_does_for_dimensions(
    qwen3_embedder: Embedder, tiny_qwen3_path: Path
) -> None:
    # Short texts: a text longer than the model's input is embedded as the mean of its windows, which
    # truncation does not commute with (advise embeds chunks, which always fit).
    texts = [row["text"][:120] for row in stdlib_documents(8)]
    native = qwen3_embedder.embed_documents(texts)
    with Embedder(str(tiny_qwen3_path), dtype="float32", dimensions=32) as reduced:
        np.testing.assert_allclose(reduced.embed_documents(texts), truncated(native, 32), atol=1e-5)
