"""`VLLMRerank` without an engine: settings, parity with `RerankerConfig`, a fake Reranker, the retriever."""

from __future__ import annotations

import pytest
from fake_reranker import FakeReranker
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import BaseRetriever
from langchain_vllm_embed import VLLMRerank

from vllm_embed import RerankerConfig
from vllm_embed.config import API_KEY_VARIABLES

DOCUMENTS = [
    Document("Check the tyre pressure before a long ride.", id="bikes", metadata={"source": "a"}),
    Document("Bake the bread in a hot oven.", id="bread", metadata={"source": "b"}),
    Document("vLLM serves language models.", id="vllm", metadata={"source": "c"}),
    Document("To bake bread at home you need flour.", id="home", metadata={"source": "d"}),
]
QUERY = "how to bake bread at home"


class FakeRetriever(BaseRetriever):
    """Returns every document, in the given order, whatever the query."""

    documents: list[Document]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return list(self.documents)


def test_is_a_document_compressor_built_without_an_engine() -> None:
    compressor = VLLMRerank(model="/no/such/model/on/this/machine")
    assert isinstance(compressor, BaseDocumentCompressor)
    assert compressor.top_n == 3
    with pytest.raises(ValueError, match="needs a model"):
        VLLMRerank()
    with pytest.raises(ValueError, match="top_n"):
        VLLMRerank(model="m", top_n=0)


def test_every_reranker_config_setting_is_a_field_with_its_description_and_default() -> None:
    fields = VLLMRerank.model_fields
    for name, setting in RerankerConfig.model_fields.items():
        assert name in fields, f"RerankerConfig.{name} is not a field of VLLMRerank"
        assert setting.description, name
        assert (fields[name].description or "").startswith(setting.description), name
        if name not in {"model", "api_key"}:
            assert fields[name].get_default(call_default_factory=True) == setting.get_default(
                call_default_factory=True
            ), name


def test_settings_reach_the_reranker_config(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {"instruction": "Find recipes", "dtype": "float32", "max_model_len": 256}
    config = VLLMRerank(model="m", **settings).reranker_config
    assert config == RerankerConfig(model="m", **settings)
    for variable in API_KEY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv(API_KEY_VARIABLES[-1], "from-env")
    remote = VLLMRerank(model="m", backend="openai", base_url="http://127.0.0.1:9/v1")
    assert remote.reranker_config.api_key is not None
    assert remote.reranker_config.api_key.get_secret_value() == "from-env"
    assert "from-env" not in repr(remote)
    assert VLLMRerank(model="m").reranker_config.api_key is None


def test_keeps_the_top_n_best_first_with_their_scores() -> None:
    fake = FakeReranker()
    compressor = VLLMRerank(reranker=fake, top_n=2)
    kept = compressor.compress_documents(DOCUMENTS, QUERY)

    assert [document.id for document in kept] == ["home", "bread"]
    scores = [document.metadata["relevance_score"] for document in kept]
    assert scores[0] > scores[1] and all(type(score) is float for score in scores)
    assert kept[0].metadata["source"] == "d" and kept[0].page_content == DOCUMENTS[3].page_content
    assert "relevance_score" not in DOCUMENTS[3].metadata  # the inputs are left as they were
    assert fake.calls == [("rerank", (QUERY, [document.page_content for document in DOCUMENTS], 2))]
    assert compressor.compress_documents([], QUERY) == []
    assert len(fake.calls) == 1


def test_top_n_none_reorders_them_all() -> None:
    kept = VLLMRerank(reranker=FakeReranker(), top_n=None).compress_documents(DOCUMENTS, QUERY)
    assert [document.id for document in kept] == ["home", "bread", "bikes", "vllm"]


def test_a_reranker_cannot_be_combined_with_settings_and_is_left_open() -> None:
    fake = FakeReranker()
    with pytest.raises(ValueError, match="either reranker= or reranker settings"):
        VLLMRerank(reranker=fake, instruction="Find recipes")
    compressor = VLLMRerank(reranker=fake)
    assert compressor.model == "fake-reranker"
    compressor.close()
    assert not fake.fake_closed


async def test_acompress_documents_awaits_the_async_api() -> None:
    fake = FakeReranker()
    kept = await VLLMRerank(reranker=fake, top_n=1).acompress_documents(DOCUMENTS, QUERY)
    assert [document.id for document in kept] == ["home"]
    assert [name for name, _ in fake.calls] == ["arerank"]


async def test_in_a_contextual_compression_retriever() -> None:
    fake = FakeReranker()
    retriever = ContextualCompressionRetriever(
        base_compressor=VLLMRerank(reranker=fake, top_n=2), base_retriever=FakeRetriever(documents=DOCUMENTS)
    )
    assert [document.id for document in retriever.invoke(QUERY)] == ["home", "bread"]
    assert [document.id for document in await retriever.ainvoke(QUERY)] == ["home", "bread"]
    assert [name for name, _ in fake.calls] == ["rerank", "arerank"]
