"""`VLLMRerank` on a real cross-encoder in a `VectorStoreIndex` query engine, sync and async."""

from __future__ import annotations

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.response_synthesizers.no_text import NoText
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode
from llama_index.embeddings.vllm_embed import VLLMEmbedding
from llama_index.postprocessor.vllm_embed_rerank import VLLMRerank

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


def _index(embedder: Embedder) -> VectorStoreIndex:
    # Nodes rather than Documents: the default sentence splitter would fetch a tokenizer from the internet.
    nodes = [TextNode(id_=key, text=text, metadata={"key": key}) for key, text in CORPUS.items()]
    return VectorStoreIndex(nodes, embed_model=VLLMEmbedding(embedder=embedder))


def _expected(reranker: Reranker, candidates: list[NodeWithScore], top_n: int) -> list[tuple[str, float]]:
    texts = [hit.node.get_content(metadata_mode=MetadataMode.EMBED) for hit in candidates]
    return [
        (candidates[index].node.node_id, score) for index, score in reranker.rerank(QUESTION, texts, top_n)
    ]


def _got(hits: list[NodeWithScore]) -> list[tuple[str, float]]:
    return [(hit.node.node_id, hit.score if hit.score is not None else float("nan")) for hit in hits]


def _assert_same(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [key for key, _ in got] == [key for key, _ in expected]
    assert [score for _, score in got] == pytest.approx([score for _, score in expected], abs=1e-6)


async def test_query_engine_keeps_the_rerankers_best(
    minilm_embedder: Embedder, cross_encoder_reranker: Reranker
) -> None:
    index = _index(minilm_embedder)
    retriever = index.as_retriever(similarity_top_k=CANDIDATES)
    candidates = retriever.retrieve(QUESTION)
    assert len(candidates) == CANDIDATES
    expected = _expected(cross_encoder_reranker, candidates, 2)

    # No LLM is needed to see which nodes reach the answer: NoText returns them without generating text.
    engine = RetrieverQueryEngine(
        retriever,
        response_synthesizer=NoText(llm=MockLLM()),
        node_postprocessors=[VLLMRerank(reranker=cross_encoder_reranker, top_n=2)],
    )
    _assert_same(_got(engine.query(QUESTION).source_nodes), expected)
    _assert_same(_got((await engine.aquery(QUESTION)).source_nodes), expected)


def test_built_from_settings_it_scores_as_the_reranker(
    minilm_embedder: Embedder, cross_encoder_reranker: Reranker
) -> None:
    from vllm_embed.backends.vllm_local import running_engines

    candidates = _index(minilm_embedder).as_retriever(similarity_top_k=len(CORPUS)).retrieve(QUESTION)
    engines = running_engines()
    rerank = VLLMRerank(cross_encoder_reranker.config.model, dtype="float32", top_n=3)
    assert rerank.reranker_config == cross_encoder_reranker.config
    try:
        kept = rerank.postprocess_nodes(candidates, query_str=QUESTION)
        assert running_engines() == engines, "identical settings must share the session's engine"
    finally:
        rerank.close()
    _assert_same(_got(kept), _expected(cross_encoder_reranker, candidates, 3))
    assert not cross_encoder_reranker.closed
