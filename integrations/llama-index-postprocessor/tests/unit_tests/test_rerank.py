"""`VLLMRerank` without an engine: settings, parity with `RerankerConfig`, a fake Reranker, events."""

from __future__ import annotations

from typing import ClassVar

import pytest
from fake_reranker import FakeReranker
from llama_index.core.callbacks import CallbackManager, CBEventType
from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.vllm_embed_rerank import DEFAULT_TOP_N, VLLMRerank

from vllm_embed import RerankerConfig

TEXTS = {
    "bikes": "Check the tyre pressure before a long ride.",
    "bread": "Bake the bread in a hot oven.",
    "vllm": "vLLM serves language models.",
    "home": "To bake bread at home you need flour.",
}
QUERY = "how to bake bread at home"


def _nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(id_=key, text=text, metadata={"key": key}), score=0.1 * rank)
        for rank, (key, text) in enumerate(TEXTS.items())
    ]


def test_is_a_node_postprocessor_built_without_an_engine() -> None:
    rerank = VLLMRerank("/no/such/model/on/this/machine")
    assert isinstance(rerank, BaseNodePostprocessor)
    assert rerank.top_n == DEFAULT_TOP_N == 2
    assert rerank.model == "/no/such/model/on/this/machine"
    assert VLLMRerank.class_name() == "VLLMRerank"
    with pytest.raises(ValueError, match="needs a model"):
        VLLMRerank()
    with pytest.raises(ValueError, match="top_n"):
        VLLMRerank("m", top_n=0)


def test_every_reranker_config_setting_is_a_field_with_its_description_and_default() -> None:
    fields = VLLMRerank.model_fields
    for name, setting in RerankerConfig.model_fields.items():
        assert name in fields, f"RerankerConfig.{name} is not a field of VLLMRerank"
        assert setting.description, name
        assert (fields[name].description or "").startswith(setting.description), name
        if name != "model":
            assert fields[name].get_default(call_default_factory=True) == setting.get_default(
                call_default_factory=True
            ), name


def test_settings_reach_the_reranker_config_and_round_trip() -> None:
    settings = {"instruction": "Find recipes", "dtype": "float32", "max_model_len": 256}
    rerank = VLLMRerank("m", top_n=4, **settings)
    assert rerank.reranker_config == RerankerConfig(model="m", **settings)
    again = VLLMRerank.from_dict(rerank.to_dict())
    assert again.reranker_config == rerank.reranker_config and again.top_n == 4
    remote = VLLMRerank("m", backend="openai", base_url="http://127.0.0.1:9/v1", api_key="secret")
    assert remote.reranker_config.api_key is not None
    assert remote.reranker_config.api_key.get_secret_value() == "secret"
    assert "api_key" not in remote.to_dict() and "secret" not in repr(remote)


def test_keeps_the_top_n_with_the_rerank_score() -> None:
    fake = FakeReranker()
    nodes = _nodes()
    kept = VLLMRerank(reranker=fake).postprocess_nodes(nodes, query_str=QUERY)

    assert [hit.node.node_id for hit in kept] == ["home", "bread"]
    assert kept[0].node is nodes[3].node  # the node itself, not a copy
    assert kept[0].score is not None and kept[1].score is not None and kept[0].score > kept[1].score
    assert [hit.score for hit in nodes] == pytest.approx([0.0, 0.1, 0.2, 0.3])  # inputs unchanged
    texts = [hit.node.get_content(metadata_mode="embed") for hit in nodes]  # type: ignore[arg-type]
    assert fake.calls == [("rerank", (QUERY, texts, 2))]
    assert VLLMRerank(reranker=fake).postprocess_nodes([], query_str=QUERY) == []
    assert len(fake.calls) == 1


def test_keep_retrieval_score_copies_the_node() -> None:
    nodes = _nodes()
    kept = VLLMRerank(reranker=FakeReranker(), top_n=1, keep_retrieval_score=True).postprocess_nodes(
        nodes, QueryBundle(QUERY)
    )
    assert kept[0].node.metadata == {"key": "home", "retrieval_score": pytest.approx(0.3)}
    assert nodes[3].node.metadata == {"key": "home"}


def test_needs_the_query() -> None:
    with pytest.raises(ValueError, match="query"):
        VLLMRerank(reranker=FakeReranker()).postprocess_nodes(_nodes())


async def test_async_postprocessing_awaits_the_async_api() -> None:
    fake = FakeReranker()
    kept = await VLLMRerank(reranker=fake, top_n=3).apostprocess_nodes(_nodes(), query_str=QUERY)
    assert [hit.node.node_id for hit in kept] == ["home", "bread", "bikes"]
    assert [name for name, _ in fake.calls] == ["arerank"]


def test_reports_to_callbacks_and_instrumentation() -> None:
    class Handler(BaseCallbackHandler):
        def __init__(self) -> None:
            super().__init__([], [])
            self.ended: list[object] = []

        def on_event_start(self, event_type, payload=None, event_id="", parent_id="", **kwargs):  # type: ignore[no-untyped-def]
            return event_id

        def on_event_end(self, event_type, payload=None, event_id="", **kwargs):  # type: ignore[no-untyped-def]
            if event_type == CBEventType.RERANKING:
                self.ended.append(payload)

        def start_trace(self, trace_id=None):  # type: ignore[no-untyped-def]
            pass

        def end_trace(self, trace_id=None, trace_map=None):  # type: ignore[no-untyped-def]
            pass

    class Events(BaseEventHandler):
        names: ClassVar[list[str]] = []

        def handle(self, event: BaseEvent, **kwargs: object) -> None:
            self.names.append(event.class_name())

    handler, events = Handler(), Events()
    root = get_dispatcher()
    root.add_event_handler(events)
    try:
        rerank = VLLMRerank(reranker=FakeReranker(), callback_manager=CallbackManager([handler]))
        rerank.postprocess_nodes(_nodes(), query_str=QUERY)
    finally:
        root.event_handlers.remove(events)
    assert len(handler.ended) == 1
    assert {"ReRankStartEvent", "ReRankEndEvent"} <= set(events.names)


def test_a_reranker_cannot_be_combined_with_settings_and_is_left_open() -> None:
    fake = FakeReranker()
    with pytest.raises(ValueError, match="either reranker= or reranker settings"):
        VLLMRerank(reranker=fake, dtype="float32")
    rerank = VLLMRerank(reranker=fake)
    assert rerank.model == "fake-reranker"
    rerank.close()
    assert not fake.fake_closed
