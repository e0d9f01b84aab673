"""`Reranker` on real engines: Qwen3-Reranker and a cross-encoder against references, a real `/rerank` server,
search with a reranker, and inputs that do not fit."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest

from vllm_embed import Document, Embedder, Reranker, ingest, search
from vllm_embed.sinks.qdrant import QdrantSink

QUERY = "what is the capital of France?"
DOCUMENTS = [
    "Paris is the capital and most populous city of France.",
    "The cat sat on the mat.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "Qdrant and Milvus are vector databases; vLLM is an inference engine.",
    "How do I bake bread? Mix flour, water, salt and yeast, then bake it in an oven.",
    "Who wrote Hamlet? William Shakespeare wrote Hamlet and many other plays.",
]


@pytest.mark.parametrize("instruction", [None, "Judge whether the passage names a city"])
def test_qwen3_reranker_matches_the_model_card_reference(
    tiny_reranker_path: Path, qwen3_reranker: Reranker, instruction: str | None
) -> None:
    from tiny_qwen3 import reference_rerank_scores

    expected = reference_rerank_scores(tiny_reranker_path, QUERY, DOCUMENTS, instruction)
    if instruction is None:
        scores = qwen3_reranker.score(QUERY, DOCUMENTS)
    else:  # same engine: identical engine settings share it
        with Reranker(str(tiny_reranker_path), dtype="float32", instruction=instruction) as custom:
            scores = custom.score(QUERY, DOCUMENTS)
    assert scores.dtype == np.float32 and scores.shape == (len(DOCUMENTS),)
    assert np.abs(scores - expected).max() <= 1e-3
    assert np.argsort(-scores).tolist() == np.argsort(-expected).tolist()
    assert ((scores >= 0) & (scores <= 1)).all()


def test_cross_encoder_matches_sentence_transformers(
    cross_encoder_path: Path, cross_encoder_reranker: Reranker
) -> None:
    from sentence_transformers import CrossEncoder

    expected = CrossEncoder(str(cross_encoder_path), device="cpu").predict([(QUERY, d) for d in DOCUMENTS])
    scores = cross_encoder_reranker.score(QUERY, DOCUMENTS)
    assert np.abs(scores - expected).max() <= 1e-3
    ranked = cross_encoder_reranker.rerank(QUERY, DOCUMENTS, top_k=3)
    assert [index for index, _ in ranked] == np.argsort(-expected).tolist()[:3]
    async_ranked = asyncio.run(cross_encoder_reranker.arerank(QUERY, DOCUMENTS, top_k=3))
    assert [index for index, _ in async_ranked] == [index for index, _ in ranked]
    assert [score for _, score in async_ranked] == pytest.approx([score for _, score in ranked], abs=1e-6)


def test_inputs_that_do_not_fit_never_reach_the_engine_too_long(
    qwen3_reranker: Reranker, caplog: pytest.LogCaptureFixture
) -> None:
    window = qwen3_reranker.max_model_len
    assert window is not None
    long_document = "Paris is the capital of France. " * window
    scores = qwen3_reranker.score(QUERY, [long_document, DOCUMENTS[0]])
    assert np.isfinite(scores).all()
    with caplog.at_level(logging.WARNING):
        scores = qwen3_reranker.score("capital " * (2 * window), DOCUMENTS[:2])
    assert np.isfinite(scores).all() and "the query is" in caplog.text
    assert qwen3_reranker.score(QUERY, []).shape == (0,)


def test_remote_reranker_matches_the_in_process_engine(
    reranker_server: str, tiny_reranker_path: Path, qwen3_reranker: Reranker
) -> None:
    with Reranker(str(tiny_reranker_path), backend="openai", base_url=reranker_server) as remote:
        scores = remote.score(QUERY, DOCUMENTS)
        long_scores = remote.score(QUERY, ["Paris " * 2000])
        assert asyncio.run(remote.ascore(QUERY, DOCUMENTS)) == pytest.approx(scores)
    local = qwen3_reranker.score(QUERY, DOCUMENTS)
    assert np.abs(scores - local).max() <= 1e-3
    assert long_scores.shape == (1,) and np.isfinite(long_scores).all()


def test_search_reranks_the_first_stage_candidates(
    minilm_embedder: Embedder, cross_encoder_reranker: Reranker
) -> None:
    sink = QdrantSink("rerank", location=":memory:")
    try:
        ingest(
            [Document(text, id=str(i)) for i, text in enumerate(DOCUMENTS)],
            embedder=minilm_embedder,
            sink=sink,
        )
        plain = search(QUERY, embedder=minilm_embedder, sink=sink, top_k=len(DOCUMENTS))
        hits = search(QUERY, embedder=minilm_embedder, sink=sink, top_k=3, rerank=cross_encoder_reranker)
    finally:
        sink.close()
    expected = cross_encoder_reranker.rerank(QUERY, DOCUMENTS, top_k=3)
    assert [hit.doc_id for hit in hits] == [str(index) for index, _ in expected]
    assert [hit.rerank_score for hit in hits] == pytest.approx([score for _, score in expected], abs=1e-5)
    first_stage = {hit.doc_id: hit.score for hit in plain}
    assert all(hit.score == pytest.approx(first_stage[hit.doc_id]) for hit in hits)
