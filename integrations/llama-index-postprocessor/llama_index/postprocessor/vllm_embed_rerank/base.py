"""`VLLMRerank`: LlamaIndex's `BaseNodePostprocessor` over a vllm-embed `Reranker`."""

from __future__ import annotations

from typing import Any

from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
from pydantic import Field, SecretStr

from vllm_embed.adapters import RerankerAdapter, reranker_model_field, reranker_setting_description

DEFAULT_TOP_N = 2
"""Nodes `VLLMRerank` keeps unless told otherwise (as LlamaIndex's own rerankers)."""

dispatcher = get_dispatcher(__name__)


class VLLMRerank(RerankerAdapter, BaseNodePostprocessor):
    """LlamaIndex node postprocessor that reorders retrieved nodes by a reranker run on vLLM.

    Pass it in a query engine's `node_postprocessors`: the retriever fetches candidates, `VLLMRerank` scores
    each node's text against the query (Qwen3-Reranker or a cross-encoder, through vllm-embed's `Reranker`)
    and keeps the best `top_n`, with `NodeWithScore.score` set to the rerank score.

    Every `RerankerConfig` setting is a field under its own name (`instruction`, `dtype`, `max_model_len`,
    `backend`, `base_url`, …). Construction is cheap: the engine starts on the first call. Pass `reranker=`
    to reuse a `Reranker` you already have (local or remote); it is not closed by this object.

    Example:
        >>> from llama_index.postprocessor.vllm_embed_rerank import VLLMRerank
        >>> rerank = VLLMRerank(model="Qwen/Qwen3-Reranker-0.6B", top_n=3)
        >>> engine = index.as_query_engine(similarity_top_k=20, node_postprocessors=[rerank])

    Raises:
        ValueError: At construction, for invalid settings, or for settings passed with `reranker=`.
    """

    model: str = reranker_model_field(default="unknown")

    top_n: int = Field(default=DEFAULT_TOP_N, ge=1, description="How many nodes to return, best first.")

    keep_retrieval_score: bool = Field(
        default=False,
        description="Also keep each node's first-stage (retrieval) score, in `metadata['retrieval_score']`.",
    )

    # Left out of LlamaIndex's serialised form (`to_dict`, `to_json`).
    api_key: SecretStr | None = Field(
        default=None, repr=False, exclude=True, description=reranker_setting_description("api_key")
    )

    def __init__(self, model: str | None = None, **kwargs: Any) -> None:
        """Builds the postprocessor without starting an engine.

        Args:
            model: Hugging Face model id or local directory (the served model name for `backend="openai"`);
                required unless `reranker` is given.
            **kwargs: The other fields of this class (every `RerankerConfig` setting, `reranker`, `top_n`,
                `keep_retrieval_score`) or those of `BaseNodePostprocessor` (`callback_manager`).
        """
        if model is not None:
            kwargs["model"] = model
        super().__init__(**kwargs)

    @classmethod
    def class_name(cls) -> str:
        """Returns the name LlamaIndex serialises this class under."""
        return "VLLMRerank"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if (query := self._start(nodes, query_bundle)) is None:
            return []
        with self._event(nodes, query) as event:
            return self._end(nodes, self.rerank_texts(query, _texts(nodes), self.top_n), event)

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if (query := self._start(nodes, query_bundle)) is None:
            return []
        with self._event(nodes, query) as event:
            return self._end(nodes, await self.arerank_texts(query, _texts(nodes), self.top_n), event)

    def _start(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None) -> str | None:
        """Dispatches the start event; the query, or `None` when there are no nodes to rerank."""
        dispatcher.event(
            ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=self.top_n, model_name=self.model)
        )
        if query_bundle is None:
            raise ValueError("VLLMRerank needs the query: call postprocess_nodes(nodes, query_str=...)")
        return query_bundle.query_str if nodes else None

    def _event(self, nodes: list[NodeWithScore], query: str) -> Any:
        payload: dict[str, Any] = {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: self.model,
            EventPayload.QUERY_STR: query,
            EventPayload.TOP_K: self.top_n,
        }
        return self.callback_manager.event(CBEventType.RERANKING, payload=payload)

    def _end(
        self, nodes: list[NodeWithScore], ranked: list[tuple[int, float]], event: Any
    ) -> list[NodeWithScore]:
        kept = [NodeWithScore(node=self._node(nodes[index]), score=score) for index, score in ranked]
        event.on_end(payload={EventPayload.NODES: kept})
        dispatcher.event(ReRankEndEvent(nodes=kept))
        return kept

    def _node(self, hit: NodeWithScore) -> Any:
        if not self.keep_retrieval_score:
            return hit.node
        # A copy: the node may be the docstore's own object, and its metadata feeds later embeddings.
        return hit.node.model_copy(update={"metadata": {**hit.node.metadata, "retrieval_score": hit.score}})


def _texts(nodes: list[NodeWithScore]) -> list[str]:
    return [hit.node.get_content(metadata_mode=MetadataMode.EMBED) for hit in nodes]
