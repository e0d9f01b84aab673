import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from quality_set import (
    Query,
    Record,
    Scores,
    docstring_queries,
    first_sentence,
    load_questions,
    long_documents,
    passage_queries,
    ranked_documents,
    remove_words,
    reST_to_markdown,
    shared_word_share,
)


def means(*rankings: tuple[list[str], set[str]]) -> dict[str, float]:
    scores = Scores()
    for ranked, relevant in rankings:
        scores.add(ranked, frozenset(relevant))
    return scores.means()


def test_recall_counts_relevant_documents_in_the_first_k() -> None:
    assert means((["a", "b", "c", "d"], {"c"}))["recall@1"] == 0
    assert means((["a", "b", "c", "d"], {"c"}))["recall@5"] == 1
    assert means((["a", "b", "c", "d"], {"a", "d", "z"}))["recall@5"] == pytest.approx(2 / 3)
    assert means(([], {"a"}))["recall@10"] == 0


def test_ndcg_matches_hand_computed_values() -> None:
    assert means((["a", "b"], {"a"}))["ndcg@10"] == 1
    assert means((["b", "a"], {"a"}))["ndcg@10"] == pytest.approx(1 / math.log2(3))
    # two relevant, found at ranks 1 and 3: (1 + 1/log2(4)) / (1 + 1/log2(3))
    expected = (1 + 0.5) / (1 + 1 / math.log2(3))
    assert means((["a", "x", "b"], {"a", "b"}))["ndcg@10"] == pytest.approx(expected)
    assert means(([f"x{i}" for i in range(10)] + ["a"], {"a"}))["ndcg@10"] == 0


def test_scores_refuse_a_query_without_relevant_documents() -> None:
    with pytest.raises(ValueError):
        Scores().add(["a"], frozenset())


def test_scores_average_per_metric() -> None:
    scores = Scores()
    scores.add(["a"], frozenset({"a"}))
    scores.add(["b", "c"], frozenset({"a"}))
    means = scores.means()
    assert scores.count == 2
    assert means["recall@1"] == 0.5 and means["recall@10"] == 0.5 and means["ndcg@10"] == 0.5


def test_hand_written_questions_are_valid_and_paraphrase() -> None:
    questions = load_questions()
    assert len(questions) >= 60
    assert len({q.text for q in questions}) == len(questions)
    assert all(q.kind == "question" and q.relevant for q in questions)


def test_hand_written_questions_answer_real_docstrings_without_quoting_them(tmp_path: Path) -> None:
    path = tmp_path / "stdlib.jsonl"
    subprocess.run([sys.executable, "-m", "vllm_embed.datasets", str(path)], check=True, capture_output=True)
    with path.open(encoding="utf-8") as lines:
        documents = {row["id"]: f"{row['id']} {row['text']}" for row in map(json.loads, lines)}
    questions = load_questions()
    assert [q.text for q in questions if q.relevant - documents.keys()] == []
    # The natural queries of the API set are a docstring's own first sentence; these must not be.
    shares = [max(shared_word_share(q.text, documents[doc]) for doc in q.relevant) for q in questions]
    assert sum(shares) / len(shares) < 0.4


def test_a_document_ranks_by_its_best_chunk() -> None:
    assert ranked_documents(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


def test_first_sentence_skips_a_signature_line() -> None:
    assert first_sentence("B.isalnum() -> bool\n\nReturn True if all\ncharacters are alnum. More.") == (
        "Return True if all characters are alnum."
    )
    assert (
        first_sentence("Compute a CRC-32 checksum of data. The rest.") == "Compute a CRC-32 checksum of data."
    )


def test_remove_words_drops_the_name_with_its_prefix() -> None:
    assert remove_words("Call zlib.crc32() or crc32 on it", ["crc32"]) == "Call or on it"
    assert remove_words("Lines of the header values", ["values"]) == "Lines of the header"


RECORDS = [
    Record(
        "zlib.crc32", "Compute a CRC-32 checksum of data, over the whole buffer. " + "More text here. " * 5
    ),
    Record("pathlib.Path.glob", "Iterate over this subtree and yield all existing files matching glob. " * 2),
    Record("zipfile.Path.glob", "Iterate over this subtree and yield all existing files matching glob. " * 2),
    Record("short.one", "Only one sentence that is the whole docstring."),
]


def test_docstring_queries_never_hold_their_answers_name() -> None:
    queries = docstring_queries(RECORDS, count=10, identifier_share=0.5, seed=0)
    identifiers = {q.text: q.relevant for q in queries if q.kind == "identifier"}
    assert identifiers["Path.glob"] == {"pathlib.Path.glob", "zipfile.Path.glob"}
    natural = [q for q in queries if q.kind == "natural"]
    assert {q.text for q in natural} == {
        "Compute a CRC-32 checksum of data, over the whole buffer.",
        "Iterate over this subtree and yield all existing files matching .",
    }
    by_text = {q.text: q.relevant for q in natural}
    assert by_text["Iterate over this subtree and yield all existing files matching ."] == {
        "pathlib.Path.glob",
        "zipfile.Path.glob",
    }
    for query in natural:
        assert all(doc.split(".")[-1] not in query.text for doc in query.relevant)


TOPIC = """The "assert" statement
**********************

Assert statements are a convenient way to insert checks into a program.

   assert_stmt ::= "assert" expression

Details
=======

The simple form is equivalent to a conditional raise of an error here. It is executed when debugging is on.
"""


def test_long_documents_become_markdown_and_queries_leave_out_title_words() -> None:
    assert reST_to_markdown(TOPIC).splitlines()[0] == '# The "assert" statement'
    assert "## Details" in reST_to_markdown(TOPIC)
    documents, sources = long_documents({"assert": TOPIC * 20, "tiny": "A short topic."}, count=5, seed=0)
    assert sources == ["assert"] and set(documents) == {"assert", "tiny"}
    queries = passage_queries(documents, sources, count=3, seed=0)
    assert queries and all(q == Query(q.text, frozenset({"assert"}), "passage") for q in queries)
    assert all("assert" not in q.text.lower() and "::=" not in q.text for q in queries)


def test_rerank_settings_repeat_dense_and_hybrid_on_the_same_collections() -> None:
    from bench_quality import search_settings

    plain = search_settings(("dense", "sparse", "hybrid"))
    assert [name for name, *_ in plain] == ["dense", "sparse", "hybrid"]
    assert all(not setting.reranked and not setting.maxsim for setting in plain)
    reranked = search_settings(("dense", "sparse", "hybrid"), rerank=True)
    assert reranked[:3] == plain
    assert reranked[3:] == [
        ("dense+rerank", "dense", "dense", True, False),
        ("hybrid+rerank", "hybrid", "hybrid", True, False),
    ]
    assert search_settings(("dense",), rerank=True) == [
        ("dense", "dense", None, False, False),
        ("dense+rerank", "dense", None, True, False),
    ]


def test_learned_settings_search_one_learned_collection_and_maxsim_only_where_the_store_keeps_tokens() -> (
    None
):
    from bench_quality import search_settings

    modes = ("dense", "sparse", "hybrid")
    plain = search_settings(modes)
    milvus = search_settings(modes, learned=True)
    assert milvus[:3] == plain
    assert milvus[3:] == [
        ("learned-sparse", "learned", "sparse", False, False),
        ("hybrid-learned", "learned", "hybrid", False, False),
    ]
    qdrant = search_settings(modes, rerank=True, learned=True, maxsim=True)
    assert qdrant[:7] == search_settings(modes, rerank=True, learned=True)
    assert qdrant[7:] == [
        ("dense+maxsim", "learned", "dense", False, True),
        ("hybrid-learned+maxsim", "learned", "hybrid", False, True),
    ]
    assert search_settings(modes, maxsim=True) == plain  # MaxSim only on the learned collection


def test_rerank_rows_are_reported_without_a_verdict() -> None:
    from bench_quality import Row, targets

    def row(setting: str, recall: float) -> Row:
        scores = {"recall@1": recall, "recall@5": recall, "recall@10": recall, "ndcg@10": recall}
        return Row("API", "qdrant", setting, "all", scores, 10)

    lines = targets(
        [row("dense", 0.8), row("hybrid", 0.9), row("dense+rerank", 0.1), row("hybrid+rerank", 0.2)]
    )
    rerank_lines = [line for line in lines if "+rerank" in line]
    assert len(rerank_lines) == 2
    assert "dense+rerank recall@5 0.100" in rerank_lines[0] and "vs dense 0.800" in rerank_lines[0]
    assert all("met" not in line and "missed" not in line for line in rerank_lines)
    assert any(line.startswith("qdrant, all queries: hybrid recall@5 0.900 vs dense 0.800") for line in lines)
