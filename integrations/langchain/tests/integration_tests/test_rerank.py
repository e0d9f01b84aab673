"""`VLLMRerank` on a real cross-encoder in a `ContextualCompressionRetriever` over a real vector store."""

from __future__ import annotations

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_vllm_embed import VLLMEmbeddings, VLLMRerank

from vllm_embed import Embedder, Reranker

CORPUS = {
    "vllm": "vLLM is a high-throughput inference and serving engine for large language models.",
    "qdrant": "Qdrant is a vector database that stores embeddings and searches them by similarity.",
    "bread": "A good sourdough needs flour, water, salt and a lively starter.",
    "oven": "Bake the loaf in a hot oven until the crust is dark and hollow-sounding.",
    "bikes": "Check the tyre pressure and oil the chain before a long bicycle ride.",
}
QUESTION = "How do I bake bread at home?"
CANDIDATES = 4


def _store(embedder: Embedder) -> InMemoryVectorStore:
    store = InMemoryVectorStore(VLLMEmbeddings(embedder=embedder))
    store.add_documents([Document(text, id=key, metadata={"key": key}) for key, text in CORPUS.items()])
    return store


def _expected(reranker: Reranker, candidates: list[Document], top_n: int | None) -> list[tuple[str, float]]:
    ranked = reranker.rerank(QUESTION, [document.page_content for document in candidates], top_k=top_n)
    return [(candidates[index].metadata["key"], score) for index, score in ranked]


def _got(documents: list[Document]) -> list[tuple[str, float]]:
    return [(document.metadata["key"], document.metadata["relevance_score"]) for document in documents]


def _assert_same(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [key for key, _ in got] == [key for key, _ in expected]
    assert [score for _, score in got] == pytest.approx([score for _, score in expected], abs=1e-6)


async def test_compression_retriever_keeps_the_rerankers_best(
    minilm_embedder: Embedder, cross_encoder_reranker: Reranker
) -> None:
    store = _store(minilm_embedder)
    base = store.as_retriever(search_kwargs={"k": CANDIDATES})
    retriever = ContextualCompressionRetriever(
        base_compressor=VLLMRerank(reranker=cross_encoder_reranker, top_n=2), base_retriever=base
    )
    candidates = base.invoke(QUESTION)
    assert len(candidates) == CANDIDATES
    expected = _expected(cross_encoder_reranker, candidates, 2)

    kept = retriever.invoke(QUESTION)
    _assert_same(_got(kept), expected)
    assert all(0.0 <= score <= 1.0 for _, score in _got(kept))  # the sigmoid of the cross-encoder's logit
    assert "relevance_score" not in candidates[0].metadata

    _assert_same(_got(await retriever.ainvoke(QUESTION)), expected)


def test_built_from_settings_it_scores_as_the_reranker(
    cross_encoder_reranker: Reranker, minilm_embedder: Embedder
) -> None:
    from vllm_embed.backends.vllm_local import running_engines

    candidates = _store(minilm_embedder).similarity_search(QUESTION, k=len(CORPUS))
    engines = running_engines()
    compressor = VLLMRerank(model=cross_encoder_reranker.config.model, dtype="float32", top_n=None)
    assert compressor.reranker_config == cross_encoder_reranker.config
    try:
        kept = compressor.compress_documents(candidates, QUESTION)
        assert running_engines() == engines, "identical settings must share the session's engine"
    finally:
        compressor.close()
    _assert_same(_got(list(kept)), _expected(cross_encoder_reranker, candidates, None))
    assert not cross_encoder_reranker.closed
