"""`Reranker` without an engine: settings, profiles, pair layout, truncation, bad input, search wiring."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from vllm_embed import EmbedderConfig, Reranker, RerankerConfig
from vllm_embed.backends.base import PairTokens
from vllm_embed.backends.openai.errors import RemoteEmbeddingError
from vllm_embed.backends.openai.rerank import decode_rerank
from vllm_embed.config import EngineSettings
from vllm_embed.errors import SettingsError
from vllm_embed.ingest.search import rerank_hits
from vllm_embed.rerank_profiles import QWEN3_RERANKER_OVERRIDES, detect_reranker_profile
from vllm_embed.sinks.base import Hit


class FakeScorer:
    """Stands in for the engine: records the pairs it is given; a pair's score is its length."""

    max_model_len: int | None = 160

    def __init__(self) -> None:
        self.pairs: list[PairTokens] = []

    def score_tokens(self, pairs: Sequence[PairTokens]) -> np.ndarray:
        self.pairs.extend(pairs)
        return np.asarray([len(pair.ids) for pair in pairs], dtype=np.float32)

    async def ascore_tokens(self, pairs: Sequence[PairTokens]) -> np.ndarray:
        return self.score_tokens(pairs)

    def close(self) -> None:
        pass


@pytest.fixture
def tiny_reranker_dir(tiny_reranker_path: Path) -> Path:
    return tiny_reranker_path  # built once, kept between sessions


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeScorer]:
    scorer = FakeScorer()
    monkeypatch.setattr("vllm_embed.reranker._create_scorer", lambda config, profile: scorer)
    yield scorer


def test_reranker_config_shares_engine_settings_with_embedder_config() -> None:
    shared = set(EngineSettings.model_fields)
    assert shared <= set(RerankerConfig.model_fields) and shared <= set(EmbedderConfig.model_fields)
    for name in shared:
        assert RerankerConfig.model_fields[name].description == EmbedderConfig.model_fields[name].description
    assert all(field.description for field in RerankerConfig.model_fields.values())
    with pytest.raises(SettingsError, match=r"Reranker has no setting dimensions="):
        RerankerConfig(model="m", dimensions=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="runner"):
        RerankerConfig(model="m", engine_kwargs={"runner": "generate"})
    config = RerankerConfig(model="m", backend="openai", base_url="http://user:sk-secret@host/v1")
    assert "sk-secret" not in repr(config) and config.base_url == "http://host/v1"
    with pytest.raises(ValidationError):
        config.model = "other"  # type: ignore[misc]


def _config_dir(tmp_path: Path, name: str, config: dict[str, object]) -> str:
    path = tmp_path / name
    path.mkdir()
    (path / "config.json").write_text(json.dumps(config))
    return str(path)


def test_profiles_come_from_the_model_files_and_name(tmp_path: Path) -> None:
    causal = {"architectures": ["Qwen3ForCausalLM"], "max_position_embeddings": 40960}
    qwen3 = detect_reranker_profile(_config_dir(tmp_path, "Qwen3-Reranker-0.6B", causal))
    assert qwen3.family == "qwen3-reranker" and qwen3.hf_overrides == QWEN3_RERANKER_OVERRIDES
    assert qwen3.max_length == 40960
    plain_lm = _config_dir(tmp_path, "some-lm", causal)
    with pytest.raises(ValueError, match="profile='qwen3-reranker'"):
        detect_reranker_profile(plain_lm)
    assert detect_reranker_profile(plain_lm, override="qwen3-reranker").family == "qwen3-reranker"
    bert = {"architectures": ["BertForSequenceClassification"], "id2label": {"0": "LABEL_0"}}
    assert detect_reranker_profile(_config_dir(tmp_path, "ce", bert)).family == "cross-encoder"
    three = {**bert, "id2label": {"0": "a", "1": "b", "2": "c"}}
    with pytest.raises(ValueError, match="3 labels"):
        detect_reranker_profile(_config_dir(tmp_path, "nli", three))
    with pytest.raises(ValueError, match="unknown reranker profile"):
        detect_reranker_profile(plain_lm, override="colbert")


def test_qwen3_pairs_follow_the_model_card_template(tiny_reranker_dir: Path, fake: FakeScorer) -> None:
    with Reranker(str(tiny_reranker_dir), instruction="Find recipes") as rr:
        rr.score("bread?", ["Mix flour and water."])
        text = rr.tokenizer.decode(fake.pairs[0].ids)  # type: ignore[union-attr]
    assert text == (
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
        'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
        "<Instruct>: Find recipes\n<Query>: bread?\n<Document>: Mix flour and water.<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    assert fake.pairs[0].second_start is None


def test_long_documents_are_cut_never_the_query(tiny_reranker_dir: Path, fake: FakeScorer) -> None:
    with Reranker(str(tiny_reranker_dir)) as rr:
        scores = rr.score("what is the capital of France?", ["short", "Paris " * 200, "short"])
        assert scores.shape == (3,) and scores.dtype == np.float32
        assert scores[0] == scores[2]
        assert len(fake.pairs) == 2  # identical documents are scored once
        longest = max(fake.pairs, key=lambda pair: len(pair.ids))
        assert len(longest.ids) == 160
        decoded = rr.tokenizer.decode(longest.ids)  # type: ignore[union-attr]
        assert "<Query>: what is the capital of France?\n<Document>: Paris" in decoded
        assert decoded.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_long_input_error_names_the_document(tiny_reranker_dir: Path, fake: FakeScorer) -> None:
    with (
        Reranker(str(tiny_reranker_dir), long_input="error") as rr,
        pytest.raises(ValueError, match=r"documents\[1\] is \d+ tokens long"),
    ):
        rr.score("q", ["fine", "Paris " * 200])


def test_a_query_longer_than_the_window_is_cut_with_a_warning(
    tiny_reranker_dir: Path, fake: FakeScorer, caplog: pytest.LogCaptureFixture
) -> None:
    with Reranker(str(tiny_reranker_dir), long_input="error") as rr, caplog.at_level(logging.WARNING):
        scores = rr.score("word " * 300, ["doc"])
    assert scores.shape == (1,)
    assert "the query is" in caplog.text and "cut" in caplog.text
    assert len(fake.pairs[0].ids) <= 160


def test_bad_input(tiny_reranker_dir: Path, fake: FakeScorer) -> None:
    with Reranker(str(tiny_reranker_dir)) as rr:
        assert rr.score("q", []).shape == (0,)
        assert rr.rerank("q", []) == []
        with pytest.raises(TypeError, match=r"documents\[1\] is int"):
            rr.score("q", ["a", 3])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="wrap it in a list"):
            rr.score("q", "a document")
        with pytest.raises(TypeError, match="query is bytes"):
            rr.score(b"q", ["a"])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="top_k"):
            rr.rerank("q", ["a"], top_k=0)
        assert fake.pairs == []
    with pytest.raises(RuntimeError, match="closed"):
        rr.score("q", ["a"])


def test_rerank_orders_best_first_and_keeps_top_k(tiny_reranker_dir: Path, fake: FakeScorer) -> None:
    documents = ["a", "a much longer document here", "mid length one"]
    with Reranker(str(tiny_reranker_dir)) as rr:
        scores = rr.score("q", documents)
        ranked = rr.rerank("q", documents, top_k=2)
    assert [index for index, _ in ranked] == [1, 2]
    assert ranked[0][1] == pytest.approx(float(scores[1]))


def test_a_cross_encoder_refuses_an_instruction(tmp_path: Path, minilm_path: str, fake: FakeScorer) -> None:
    with pytest.raises(ValueError, match="takes no instruction"):
        Reranker(minilm_path, profile="cross-encoder", instruction="x")


def test_cross_encoder_pairs_carry_the_second_segment(minilm_path: str, fake: FakeScorer) -> None:
    from transformers import AutoTokenizer

    with Reranker(minilm_path, profile="cross-encoder") as rr:
        rr.score("what is vllm", ["an inference engine"])
    expected = AutoTokenizer.from_pretrained(minilm_path)("what is vllm", "an inference engine")
    assert fake.pairs[0].ids == expected["input_ids"]
    assert fake.pairs[0].second_start == expected["token_type_ids"].index(1)


def _hit(index: int, score: float) -> Hit:
    return Hit(str(index), f"d{index}", 0, score, f"text {index}", {})


class FakeReranker:
    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        return np.asarray([float(text.split()[-1]) for text in documents], dtype=np.float32)


def test_rerank_hits_keeps_the_first_stage_score() -> None:
    hits = [_hit(1, 0.9), _hit(3, 0.8), _hit(2, 0.7)]
    reranked = rerank_hits("q", hits, FakeReranker(), top_k=2)
    assert [(h.id, h.score, h.rerank_score) for h in reranked] == [("3", 0.8, 3.0), ("2", 0.7, 2.0)]
    assert rerank_hits("q", [], FakeReranker(), top_k=2) == []
    assert reranked[0].to_dict()["rerank_score"] == 3.0


def test_rerank_answers_are_checked() -> None:
    def decode(body: object, count: int) -> np.ndarray:
        return decode_rerank(json.dumps(body).encode(), count, "http://h/v1/rerank", lambda text: text)

    good = {"results": [{"index": 1, "relevance_score": 0.25}, {"index": 0, "relevance_score": 0.75}]}
    assert decode(good, 2).tolist() == [0.75, 0.25]
    for bad, problem in [
        ({"results": [{"index": 0, "relevance_score": 0.5}]}, "1 results for 2"),
        ({"results": [{"index": 0, "relevance_score": 0.5}] * 2}, "each once"),
        ({"results": [{"index": 0, "relevance_score": "x"}, {"index": 1, "relevance_score": 1}]}, "finite"),
        ({"results": [{"index": 0, "relevance_score": None}, {"index": 1, "relevance_score": 1}]}, "finite"),
        ([], "no results"),
    ]:
        with pytest.raises(RemoteEmbeddingError, match=problem):
            decode(bad, 2)


@pytest.mark.parametrize(
    ("score", "problem"),
    [
        ("1e300", r"1e\+300, beyond float32's range"),
        ("-1e300", r"-1e\+300, beyond float32's range"),
        (str(10**400), r"1000…0 \(401 digits\), beyond float32's range"),
        ("1e999", "inf, not a finite number"),
    ],
)
def test_rerank_scores_beyond_float32_are_a_remote_error_not_infinity(score: str, problem: str) -> None:
    body = '{"results": [{"index": 0, "relevance_score": ' + score + "}]}"
    with pytest.raises(RemoteEmbeddingError, match=rf"the score of documents\[0\] is {problem}"):
        decode_rerank(body.encode(), 1, "http://h/v1/rerank", lambda text: text)


def test_deeply_nested_answers_are_a_remote_error_not_a_recursion_error() -> None:
    from vllm_embed.backends.openai.decoding import decode_embeddings

    nested = b'{"results": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(RemoteEmbeddingError, match="nested too deeply"):
        decode_rerank(nested, 1, "http://h/v1/rerank", lambda text: text)
    with pytest.raises(RemoteEmbeddingError, match="nested too deeply"):
        decode_embeddings(nested, count=1, width=None, offset=0, url="http://h/v1", redact=lambda text: text)


def test_engine_scores_beyond_float32_are_refused_not_returned_as_infinity(
    tiny_reranker_dir: Path, fake: FakeScorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vllm_embed.errors import InvalidVectorError

    monkeypatch.setattr(fake, "score_tokens", lambda pairs: np.asarray([1e300] * len(pairs)))
    with (
        Reranker(str(tiny_reranker_dir)) as rr,
        pytest.raises(InvalidVectorError, match=r"score of documents\[0\] is not a finite float32"),
    ):
        rr.score("q", ["a", "b"])


def test_rerank_hits_refuses_a_score_that_is_not_finite_so_json_never_holds_infinity() -> None:
    class FakeInfiniteReranker:
        def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
            return np.asarray([np.inf] + [0.5] * (len(documents) - 1), dtype=np.float32)

    hits = [_hit(1, 0.9), _hit(2, 0.8)]
    with pytest.raises(ValueError, match=r"score of documents\[0\] is inf"):
        rerank_hits("q", hits, FakeInfiniteReranker(), top_k=2)


class FakeRecordingReranker(FakeReranker):
    def __init__(self) -> None:
        self.seen: list[int] = []

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        self.seen.append(len(documents))
        return super().score(query, documents)


def test_search_fetches_candidates_then_reranks(tmp_path: Path) -> None:
    from ingest_fixtures import FakeHashEmbedder, open_sink

    from vllm_embed import ingest, search

    embedder = FakeHashEmbedder()
    sink = open_sink("qdrant", tmp_path)
    try:
        ingest([f"text {i}" for i in range(8)], embedder=embedder, sink=sink, progress=False)
        reranker = FakeRecordingReranker()
        hits = search("q", embedder=embedder, sink=sink, top_k=2, rerank=reranker, candidates=5)
        assert reranker.seen == [5] and len(hits) == 2
        assert [hit.rerank_score for hit in hits] == sorted((hit.rerank_score for hit in hits), reverse=True)
        assert all(hit.rerank_score == float(hit.text.split()[-1]) for hit in hits)
        search("q", embedder=embedder, sink=sink, top_k=2, rerank=reranker)
        assert reranker.seen[-1] == 8  # default 50 candidates: everything stored
        assert all(h.rerank_score is None for h in search("q", embedder=embedder, sink=sink, candidates=6))
        with pytest.raises(ValueError, match="candidates=0"):
            search("q", embedder=embedder, sink=sink, rerank=reranker, candidates=0)
    finally:
        sink.close()
