"""`advise`: the recall of each vector size and quantization, the recommendation and its flags (no engine)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import no_engine, run

from vllm_embed import cli
from vllm_embed.advise import (
    Advice,
    AdviceError,
    AdviceRow,
    advise,
    dimension_ladder,
    embedder_settings,
    evaluate,
    query_from_chunk,
    recommend,
    store_recall,
    store_settings,
)
from vllm_embed.cli.advise import ingest_flags, setting_flags
from vllm_embed.ingest.chunk_settings import make_chunker
from vllm_embed.profiles import ModelProfile
from vllm_embed.sinks import QdrantSink

NATIVE = 128


class FakeEmbedCounter:
    """Fake embedder that only counts embedding calls (advise must refuse bad settings before any)."""

    def __init__(self) -> None:
        self.tokenizer = None
        self.max_input_tokens = 48
        self.calls = 0

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        return np.ones((len(texts), 4), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        self.calls += 1
        return np.ones(4, dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return {"model": "fake-counter"}


class FakeBagOfWordsEmbedder:
    """Fake Matryoshka embedder: a text's vector is the sum of fixed random word vectors whose leading
    dimensions carry most of the variance (as in a Matryoshka-trained model), so related texts are close."""

    def __init__(self, *, dimension: int = NATIVE, matryoshka: bool = True) -> None:
        self.tokenizer = None
        self.max_input_tokens = 48
        self.dimension = dimension
        self.profile = ModelProfile(family="fake", matryoshka=matryoshka, native_dimension=dimension)
        self.query_calls: list[list[str]] = []
        self.closed = False
        self._scales = 1.0 / np.sqrt(np.arange(1, dimension + 1))

    def _word(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).normal(size=self.dimension) * self._scales

    def _vector(self, text: str) -> np.ndarray:
        vector = sum((self._word(w) for w in text.lower().split()), np.zeros(self.dimension))
        return (vector / (np.linalg.norm(vector) or 1.0)).astype(np.float32)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts])

    def embed_queries(self, texts: list[str], instruction: str | None = None) -> np.ndarray:
        self.query_calls.append(list(texts))
        return np.stack([self._vector(t) for t in texts])

    def embed_query(self, text: str, instruction: str | None = None) -> np.ndarray:
        return self._vector(text)

    def describe(self) -> dict[str, Any]:
        return {"model": "fake-bow", "profile": "fake", "dimensions": self.dimension, "normalized": True}

    def close(self) -> None:
        self.closed = True


def topic_corpus(documents: int = 120, seed: int = 1) -> list[dict[str, str]]:
    """Documents of a few sentences, each drawn from one of 25 topics' vocabularies."""
    rng = random.Random(seed)
    topics = [[f"t{t}w{w}" for w in range(30)] for t in range(25)]
    common = [f"c{w}" for w in range(40)]
    rows = []
    for i in range(documents):
        words = topics[rng.randrange(len(topics))]
        sentences = [
            " ".join(rng.choice(words if rng.random() < 0.7 else common) for _ in range(rng.randint(6, 12)))
            + "."
            for _ in range(rng.randint(4, 9))
        ]
        rows.append({"id": f"d{i}", "text": " ".join(sentences)})
    return rows


def low_rank_vectors(n: int = 600, queries: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Documents near a 24-dimensional subspace, variance decaying over dimensions; queries near documents."""
    rng = np.random.default_rng(seed)
    scales = 1.0 / np.sqrt(np.arange(1, NATIVE + 1))
    basis = rng.normal(size=(24, NATIVE)) * scales
    docs = rng.normal(size=(n, 24)) @ basis + 0.05 * rng.normal(size=(n, NATIVE)) * scales
    qs = docs[rng.choice(n, queries, replace=False)] + 0.3 * (rng.normal(size=(queries, 24)) @ basis)
    return docs.astype(np.float32), qs.astype(np.float32)


@pytest.fixture(scope="module")
def rows() -> list[AdviceRow]:
    docs, qs = low_rank_vectors()
    return evaluate(docs, qs, dimensions=[32, 64, 128], top_k=10)


def test_native_float32_is_the_reference_and_every_candidate_is_measured(rows: list[AdviceRow]) -> None:
    assert [(r.dimensions, r.kind) for r in rows] == [
        (size, kind) for size in (128, 64, 32) for kind in ("float32", "int8", "binary", "binary+rescore")
    ]
    assert rows[0].recall_at_k == 1.0
    assert all(0.0 <= r.recall_at_k <= 1.0 for r in rows)
    assert any(r.recall_at_k < 1.0 for r in rows)  # truncation and quantization do lose neighbours here


def test_recall_never_rises_as_bytes_fall_within_one_encoding(rows: list[AdviceRow]) -> None:
    for kind in ("float32", "int8", "binary", "binary+rescore"):
        series = sorted((r for r in rows if r.kind == kind), key=lambda r: -r.bytes_per_vector)
        recalls = [r.recall_at_k for r in series]
        assert recalls == sorted(recalls, reverse=True), kind


def test_rescoring_binary_candidates_finds_more_neighbours(rows: list[AdviceRow]) -> None:
    for size in (128, 64, 32):
        plain, rescored = (r for r in rows if r.dimensions == size and r.quantization == "binary")
        assert rescored.rescore and rescored.oversampling == 2.0 and not plain.rescore
        assert rescored.recall_at_k > plain.recall_at_k


def test_bytes_and_memory_estimates(rows: list[AdviceRow]) -> None:
    by = {(r.dimensions, r.kind): r for r in rows}
    graph = 2 * 16 * 4
    assert by[128, "float32"].bytes_per_vector == 512 and by[128, "float32"].disk_bytes_per_vector == 0
    assert by[128, "int8"].bytes_per_vector == 128 + 4 and by[128, "int8"].disk_bytes_per_vector == 512
    assert by[64, "binary"].bytes_per_vector == 8 and by[64, "binary+rescore"].disk_bytes_per_vector == 256
    for row in rows:
        assert row.ram_bytes_per_vector == row.bytes_per_vector + graph
        assert row.memory_1m_bytes == row.ram_bytes_per_vector * 10**6
        assert row.memory_100m_bytes == row.ram_bytes_per_vector * 10**8
        assert row.disk_100m_bytes == row.disk_bytes_per_vector * 10**8


@pytest.mark.parametrize("target", [0.5, 0.8, 0.9, 0.95, 1.0])
def test_recommendation_is_the_least_ram_that_meets_the_target(rows: list[AdviceRow], target: float) -> None:
    best = recommend(rows, target)
    assert best is not None and best.recall_at_k >= target
    assert all(r.ram_bytes_per_vector >= best.ram_bytes_per_vector for r in rows if r.recall_at_k >= target)
    same_ram = [
        r for r in rows if r.ram_bytes_per_vector == best.ram_bytes_per_vector and r.recall_at_k >= target
    ]
    assert best.recall_at_k == max(r.recall_at_k for r in same_ram)


def test_no_recommendation_when_nothing_reaches_the_target(rows: list[AdviceRow]) -> None:
    assert recommend([r for r in rows if r.recall_at_k < 0.9], 0.9) is None


def test_equal_scores_rank_in_sample_order() -> None:
    docs = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    rows = evaluate(docs, np.array([[1.0, 0.1]], dtype=np.float32), dimensions=[2], top_k=2)
    assert {r.kind: r.recall_at_k for r in rows} == {
        "float32": 1.0,
        "int8": 1.0,
        "binary": 1.0,
        "binary+rescore": 1.0,
    }


def test_settings_create_the_configuration(rows: list[AdviceRow]) -> None:
    by = {(r.dimensions, r.kind): r for r in rows}
    assert embedder_settings(by[128, "float32"], NATIVE) == {} == store_settings(by[128, "float32"])
    assert embedder_settings(by[64, "float32"], NATIVE) == {"dimensions": 64}
    assert store_settings(by[64, "int8"]) == {"quantization": "int8", "on_disk": True}
    assert store_settings(by[128, "binary+rescore"]) == {"quantization": "binary", "on_disk": True}
    assert store_settings(by[64, "int8"], "milvus") == {"index": "IVF_SQ8"}
    assert store_settings(by[128, "float32"], "milvus") == {}
    assert store_settings(by[128, "binary"], "milvus") is None


def test_the_command_line_writes_the_settings_as_ingest_flags() -> None:
    assert setting_flags({"dimensions": 64, "quantization": "int8", "on_disk": True}) == [
        "--dimensions",
        "64",
        "--quantization",
        "int8",
        "--on-disk",
    ]
    assert setting_flags({"trust_remote_code": True, "on_disk": False}) == [
        "--trust-remote-code",
        "--no-on-disk",
    ]
    measured = advise(topic_corpus(), embedder=FakeBagOfWordsEmbedder(), sample=150, held_out=30, top_k=5)
    binary = dataclasses.replace(
        measured,
        embedder_settings={"dimensions": 64},
        qdrant_settings={"quantization": "binary", "on_disk": True},
        milvus_settings=None,
    )
    assert ingest_flags(binary) == ["--dimensions", "64", "--quantization", "binary", "--on-disk"]
    assert ingest_flags(binary, "milvus") is None


def test_the_dimensions_flag_is_an_ingest_flag() -> None:
    import typer.main

    command = typer.main.get_command(cli.app).commands["ingest"]  # type: ignore[attr-defined]
    assert "--dimensions" in {option for param in command.params for option in param.opts}


def test_dimension_ladder_follows_the_profile() -> None:
    qwen = ModelProfile(family="q", matryoshka=True, min_dimension=32, native_dimension=1024)
    assert dimension_ladder(qwen, 1024) == [32, 64, 128, 256, 512, 768, 1024]
    assert dimension_ladder(ModelProfile(family="q", matryoshka=True, min_dimension=128), 300) == [
        128,
        256,
        300,
    ]
    assert dimension_ladder(ModelProfile(family="st"), 384) == [384]
    assert dimension_ladder(None, 384) == [384]


def test_query_from_chunk_is_its_longest_sentence_cut_to_32_words() -> None:
    assert query_from_chunk("Short one. A much longer second sentence here!\nThird") == (
        "A much longer second sentence here!"
    )
    long = " ".join(f"w{i}" for i in range(50))
    assert query_from_chunk(f"Hi. {long}.") == " ".join(f"w{i}" for i in range(32))
    assert query_from_chunk("   ") == ""


def test_advise_samples_chunks_as_ingest_does_and_derives_queries() -> None:
    corpus = topic_corpus()
    embedder = FakeBagOfWordsEmbedder()
    advice = advise(corpus, embedder=embedder, sample=150, held_out=30, top_k=5)
    assert isinstance(advice, Advice)
    assert (advice.sample_chunks, advice.queries, advice.queries_from) == (150, 30, "held-out")
    assert advice.native_dimensions == NATIVE and advice.model == "fake-bow"
    assert [r.dimensions for r in advice.rows][::4] == [128, 64, 32]
    assert advice.rows[0].recall_at_k == 1.0
    assert advice.recommendation is not None and advice.recommendation.recall_at_k >= 0.95
    assert advice.embedder_settings == embedder_settings(advice.recommendation, NATIVE)
    assert advice.qdrant_settings == store_settings(advice.recommendation)
    assert advice.milvus_settings == store_settings(advice.recommendation, "milvus")
    # The queries are sentences of chunks that ingest would make (and that are not in the sample).
    chunker = make_chunker(embedder)
    chunks = {p.text for pieces in chunker.split([r["text"] for r in corpus]) for p in pieces}
    (queries,) = embedder.query_calls
    assert all(any(q in chunk for chunk in chunks) for q in queries)
    assert not embedder.closed  # a caller's embedder stays open


def test_advise_is_deterministic_for_a_seed() -> None:
    corpus = topic_corpus()
    one, two, other = FakeBagOfWordsEmbedder(), FakeBagOfWordsEmbedder(), FakeBagOfWordsEmbedder()
    first = advise(corpus, embedder=one, sample=100, held_out=20, top_k=5, seed=3)
    again = advise(corpus, embedder=two, sample=100, held_out=20, top_k=5, seed=3)
    advise(corpus, embedder=other, sample=100, held_out=20, top_k=5, seed=4)
    assert first == again and one.query_calls == two.query_calls
    assert other.query_calls != one.query_calls
    assert first.to_dict() == json.loads(json.dumps(first.to_dict()))


def test_advise_with_your_queries() -> None:
    embedder = FakeBagOfWordsEmbedder()
    advice = advise(topic_corpus(), embedder=embedder, queries=["t1w1 t1w2 t1w3", " ", "t2w5 c3"], sample=80)
    assert (advice.queries, advice.queries_from, advice.sample_chunks) == (2, "given", 80)
    assert embedder.query_calls == [["t1w1 t1w2 t1w3", "t2w5 c3"]]


def test_a_small_corpus_holds_out_a_fifth_of_its_chunks() -> None:
    advice = advise(topic_corpus(20), embedder=FakeBagOfWordsEmbedder(), top_k=3)
    total = advice.sample_chunks + advice.queries
    assert advice.queries == total // 5


def test_a_model_that_is_not_matryoshka_gets_its_native_size_only() -> None:
    advice = advise(topic_corpus(), embedder=FakeBagOfWordsEmbedder(matryoshka=False), sample=60, top_k=3)
    assert {r.dimensions for r in advice.rows} == {NATIVE}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "x"}, "exactly one of model=, embedder= or config="),
        ({"top_k": 0}, "top_k=0"),
        ({"target_recall": 1.5}, "target_recall=1.5"),
        ({"queries": ["  "]}, "queries holds no query"),
        ({"dimensions": [16]}, "dimensions=16 is outside 32..128"),
        ({"top_k": 500}, "advise needs more than top_k=500"),
        ({"target_recall": 0}, "target_recall=0 must be above 0"),
        ({"sample": 2}, "sample=2 must be above top_k=10"),
    ],
)
def test_bad_settings_are_refused_naming_the_fix(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(AdviceError, match=message.replace("(", r"\(").replace("[", r"\[")):
        advise(topic_corpus(20), embedder=FakeBagOfWordsEmbedder(), **kwargs)


def test_settings_that_cannot_work_are_refused_before_anything_is_embedded() -> None:
    embedder = FakeEmbedCounter()
    for kwargs in ({"target_recall": 0}, {"sample": 2}, {"sample": 5, "top_k": 5}):
        with pytest.raises(AdviceError):
            advise(topic_corpus(20), embedder=embedder, **kwargs)
    assert embedder.calls == 0


def test_a_corpus_too_small_is_reported_with_what_was_sampled() -> None:
    with pytest.raises(AdviceError) as refused:
        advise(topic_corpus(20), embedder=FakeBagOfWordsEmbedder(), top_k=35)
    found = re.search(
        r"the corpus gave (\d+) chunk\(s\), which left (\d+) sampled chunk\(s\) to search and (\d+) usable",
        str(refused.value),
    )
    assert found is not None, refused.value
    total, searched, queries = map(int, found.groups())
    assert searched <= 35 < total and queries == total // 5 and searched == total - queries


def test_store_recall_through_a_real_collection(tmp_path: Path) -> None:
    docs, qs = low_rank_vectors(n=200, queries=20)
    rows = evaluate(docs, qs, dimensions=[64, 128], top_k=5)
    with QdrantSink("advise", path=str(tmp_path / "q")) as sink:
        assert store_recall(sink, docs, qs, rows[0], top_k=5) == 1.0  # local mode: exact float32 search
    truncated = next(r for r in rows if (r.dimensions, r.kind) == (64, "float32"))
    with QdrantSink("advise", path=str(tmp_path / "q64")) as sink:
        assert store_recall(sink, docs, qs, truncated, top_k=5) == pytest.approx(truncated.recall_at_k)


def test_store_remeasures_the_rows_of_the_recommended_size_in_qdrant_edge() -> None:
    pytest.importorskip("qdrant_edge")
    advice = advise(
        topic_corpus(),
        embedder=FakeBagOfWordsEmbedder(),
        sample=150,
        held_out=30,
        top_k=5,
        store="qdrant-edge",
    )
    best = advice.recommendation
    assert best is not None and best.store_recall_at_k is not None and advice.store == "qdrant-edge"
    measured = {r.kind: r for r in advice.rows if r.store_recall_at_k is not None}
    assert sorted(measured) == ["binary", "binary+rescore", "float32", "int8"]
    assert {r.dimensions for r in measured.values()} == {best.dimensions}
    # The simulation is Qdrant's own encoding: the engine finds the same neighbours, but for ties in
    # Hamming distance (broken otherwise) and HNSW's approximation.
    for row in measured.values():
        assert row.store_recall_at_k == pytest.approx(row.recall_at_k, abs=0.05), row.kind


def test_an_unknown_store_is_refused() -> None:
    with pytest.raises(AdviceError, match="store='milvus' must be one of"):
        advise(topic_corpus(20), embedder=FakeBagOfWordsEmbedder(), store="milvus")


# -- the command --------------------------------------------------------------------------------------


class FakeAdviseEngine:
    def __init__(self) -> None:
        self.configs: list[Any] = []

    def __call__(self, config: Any) -> FakeBagOfWordsEmbedder:
        self.configs.append(config)
        return FakeBagOfWordsEmbedder()


def _corpus_file(directory: Path, documents: int = 80) -> Path:
    path = directory / "corpus.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in topic_corpus(documents)))
    return path


def test_cli_prints_the_table_the_recommendation_and_the_ingest_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = FakeAdviseEngine()
    monkeypatch.setattr(cli, "make_embedder", engine)
    corpus = _corpus_file(tmp_path)
    args = (
        "advise",
        str(corpus),
        "--model",
        "fake-bow",
        "--sample",
        "100",
        "--top-k",
        "5",
        "--dtype",
        "float32",
    )
    code, stdout, stderr = run(*args, "--chunk-tokens", "40", "--trust-remote-code")
    assert code == 0, stderr
    assert engine.configs[0].dimensions is None
    assert "binary+rescore" in stdout and "recommended:" in stdout
    command = next(line for line in stdout.splitlines() if line.startswith("vllm-embed ingest"))
    # The Embedder and chunking flags given are repeated, so that ingest makes the vectors measured.
    assert command.startswith(
        f"vllm-embed ingest {corpus} --model fake-bow --dtype float32 --trust-remote-code --chunk-tokens 40"
    )
    assert command.endswith("--collection NAME --qdrant-edge DIR")


def test_cli_json_is_the_advice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "make_embedder", FakeAdviseEngine())
    corpus = _corpus_file(tmp_path)
    queries = tmp_path / "queries.txt"
    queries.write_text("t1w1 t1w2 c1\n\nt3w4 t3w9\n")
    args = ("advise", str(corpus), "-m", "fake-bow", "--queries", str(queries), "--sample", "90", "--json")
    code, stdout, stderr = run(*args, "--chunk-tokens", "40")
    assert code == 0, stderr
    data = json.loads(stdout)
    expected = advise(
        topic_corpus(80),
        embedder=FakeBagOfWordsEmbedder(),
        queries=["t1w1 t1w2 c1", "t3w4 t3w9"],
        sample=90,
        chunk_tokens=40,
    )
    flags = {"ingest_flags": ingest_flags(expected), "milvus_flags": ingest_flags(expected, "milvus")}
    assert data == expected.to_dict() | flags
    assert data["queries_from"] == "given" and len(data["rows"]) == 12


def test_cli_refuses_mistakes_before_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "make_embedder", no_engine)
    corpus = _corpus_file(tmp_path, 5)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    code, _out, stderr = run("advise", str(corpus), "-m", "x", "--queries", str(empty))
    assert code == 1 and "holds no query" in stderr
    code, _out, stderr = run("advise", str(tmp_path / "missing.jsonl"), "-m", "x")
    assert code != 0 and "missing.jsonl" in stderr
    code, _out, stderr = run("advise", str(corpus), "-m", "x", "--store", "milvus")
    assert code == 2 and "--store" in stderr
    code, _out, stderr = run("advise", str(corpus), "-m", "x", "--target-recall", "0")
    assert code == 1 and "target_recall=0.0 must be above 0" in stderr
    code, _out, stderr = run("advise", str(corpus), "-m", "x", "--sample", "2")
    assert code == 1 and "sample=2 must be above top_k=10" in stderr


def test_cli_plot_needs_matplotlib_or_writes_the_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = _corpus_file(tmp_path, 40)
    image = tmp_path / "advice.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        monkeypatch.setattr(cli, "make_embedder", no_engine)
        code, _out, stderr = run("advise", str(corpus), "-m", "x", "--plot", str(image))
        assert code == 1 and 'pip install "vllm-embed[plot]"' in stderr
        return
    monkeypatch.setattr(cli, "make_embedder", FakeAdviseEngine())
    code, _out, stderr = run("advise", str(corpus), "-m", "x", "--plot", str(image), "--top-k", "3")
    assert code == 0, stderr
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_help_names_the_options_and_takes_no_dimensions() -> None:
    code, stdout, stderr = run("advise", "--help", COLUMNS="200")
    assert code == 0, stderr
    for flag in (
        "--queries",
        "--sample",
        "--target-recall",
        "--top-k",
        "--json",
        "--plot",
        "--store",
        "--model",
    ):
        assert flag in stdout, flag
    assert "--dimensions" not in stdout  # the native size is measured, every smaller one derived from it
