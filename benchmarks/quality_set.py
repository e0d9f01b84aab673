"""The labelled retrieval sets of `bench_quality.py` and their metrics; no engine, no store.

Two sets are built from text every Python installation has, with each query's relevant documents known by
construction. `bench_quality.py` documents how; the functions here implement it.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

QueryKind = Literal["identifier", "natural", "question", "passage"]

CUTOFFS = (1, 5, 10)
"""The k of recall@k; nDCG is reported at the largest."""

MIN_QUERY_WORDS = 5
"""A derived query with fewer words left (after removing the answer's name) is dropped."""

MIN_LONG_DOCUMENT_CHARS = 2000
"""A pydoc topic shorter than this fits in one chunk of every size measured: no queries are drawn from it
(it stays in the collection as a distractor)."""

MAX_LONG_DOCUMENT_CHARS = 16000
"""The few longer topics (up to 60,000 characters) would double the embedding time of the long set."""

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'`*(])")
_SIGNATURE = re.compile(r"^[\w.]+\(.*\)")  # "B.isalnum() -> bool", "S.count(sub[, start]) -> int"
_UNDERLINE = re.compile(r"^([*=\-~^])\1{2,}$")
_HEADING_LEVEL = {"*": "#", "=": "##", "-": "###", "~": "####", "^": "####"}


@dataclass(frozen=True)
class Record:
    """One documented standard-library object: its qualified name and its docstring."""

    id: str
    text: str

    @property
    def document(self) -> str:
        """The indexed text: the qualified name as a title, then the docstring, as reference pages read."""
        return f"{self.id}\n\n{self.text}"


@dataclass(frozen=True)
class Query:
    """A query and the ids of the documents that answer it."""

    text: str
    relevant: frozenset[str]
    kind: QueryKind


@dataclass
class Scores:
    """The rankings of a set of queries, scored with ir-measures (TREC's `trec_eval` measures)."""

    rankings: list[tuple[list[str], frozenset[str]]] = field(default_factory=list)

    def add(self, ranked: Sequence[str], relevant: frozenset[str]) -> None:
        """Records one query's ranked document ids (best first) and the ids that answer it."""
        if not relevant:
            raise ValueError("a query needs at least one relevant document")
        self.rankings.append((list(ranked), relevant))

    def means(self) -> dict[str, float]:
        """recall@k for each of `CUTOFFS` and nDCG at the largest, averaged over the recorded queries.

        A query whose ranking holds none of its documents scores 0 (it still counts in the mean).
        """
        import ir_measures
        from ir_measures import R, nDCG

        if not self.rankings:
            return {}
        qrels = {str(i): dict.fromkeys(relevant, 1) for i, (_, relevant) in enumerate(self.rankings)}
        # Scores decrease with the rank, so trec_eval's order is exactly the ranking's.
        run = {
            str(i): {doc: float(len(ranked) - rank) for rank, doc in enumerate(ranked)}
            for i, (ranked, _) in enumerate(self.rankings)
        }
        measures = {f"recall@{k}": R @ k for k in CUTOFFS} | {f"ndcg@{CUTOFFS[-1]}": nDCG @ CUTOFFS[-1]}
        per_query: dict[Any, list[float]] = {measure: [] for measure in measures.values()}
        for metric in ir_measures.iter_calc(list(measures.values()), qrels, run):
            per_query[metric.measure].append(metric.value)
        count = len(self.rankings)
        return {name: sum(per_query[measure]) / count for name, measure in measures.items()}

    @property
    def count(self) -> int:
        """Number of scored queries."""
        return len(self.rankings)


def ranked_documents(doc_ids: Iterable[str]) -> list[str]:
    """Document ids in order of their best chunk: later chunks of an already ranked document are dropped."""
    return list(dict.fromkeys(doc_ids))


def first_sentence(docstring: str) -> str:
    """The first sentence of a docstring's first prose paragraph (a leading signature line is skipped)."""
    paragraphs = [p for p in re.split(r"\n\s*\n", docstring.strip()) if p.strip()]
    for paragraph in paragraphs:
        lines = paragraph.strip().splitlines()
        if _SIGNATURE.match(lines[0]):  # old-style builtins start with their own signature
            lines = [line for line in lines if not _SIGNATURE.match(line) and line.strip() != "--"]
            if not lines:
                continue
        flat = " ".join(" ".join(lines).split())
        return _SENTENCE_END.split(flat, maxsplit=1)[0]
    return ""


def remove_words(text: str, words: Iterable[str]) -> str:
    """`text` without each of `words` (whole words, any case, with a dotted prefix or trailing `()`)."""
    for word in sorted(set(words), key=len, reverse=True):
        text = re.sub(rf"[\w.]*\b{re.escape(word)}\b(\(\))?", " ", text, flags=re.IGNORECASE)
    return " ".join(text.split())


def docstring_queries(
    records: Sequence[Record], count: int, identifier_share: float, seed: int
) -> list[Query]:
    """Identifier and natural-language queries over `records`, `identifier_share` of them identifiers.

    Identifier query: the last two parts of a member's qualified name (`zlib.crc32`, `Path.glob`); relevant:
    every record whose name is it or ends with `.` + it. Natural-language query: the first sentence of a
    docstring that says more than that sentence, with the object's own name removed; relevant: every record
    whose docstring has that same first sentence. Queries are distinct; sampling is seeded.
    """
    rng = random.Random(seed)
    identifiers = sorted({".".join(r.id.split(".")[-2:]) for r in records if "." in r.id})
    identifier_queries = [
        Query(
            name, frozenset(r.id for r in records if r.id == name or r.id.endswith("." + name)), "identifier"
        )
        for name in rng.sample(identifiers, min(len(identifiers), round(count * identifier_share)))
    ]
    by_sentence: dict[str, set[str]] = {}
    for record in records:
        by_sentence.setdefault(first_sentence(record.text), set()).add(record.id)
    natural: dict[str, Query] = {}
    for record in records:
        sentence = first_sentence(record.text)
        if not sentence or len(sentence) * 2 > len(record.text):
            continue  # the query would be (nearly) the whole document
        text = remove_words(sentence, [record.id.split(".")[-1]])
        if len(text.split()) >= MIN_QUERY_WORDS and text not in natural:
            natural[text] = Query(text, frozenset(by_sentence[sentence]), "natural")
    wanted = count - len(identifier_queries)
    natural_queries = rng.sample(sorted(natural.values(), key=lambda q: q.text), min(len(natural), wanted))
    return identifier_queries + natural_queries


def reST_to_markdown(text: str) -> str:
    """Turns the underlined headings of a pydoc topic (`Title` over `*****`, `====`, `----`) into `#` ones."""
    lines = text.splitlines()
    out: list[str] = []
    for i, line in enumerate(lines):
        underline = _UNDERLINE.match(line.strip())
        if underline and out and out[-1].strip() and i > 0 and len(line.strip()) >= len(lines[i - 1].strip()):
            out[-1] = f"{_HEADING_LEVEL[underline.group(1)]} {out[-1].strip()}"
            continue
        out.append(line)
    return "\n".join(out)


def long_documents(topics: Mapping[str, str], count: int, seed: int) -> tuple[dict[str, str], list[str]]:
    """The pydoc topics as Markdown, and the ids of the long ones that queries are drawn from.

    The long ones: `count` topics (seeded sample) of `MIN_LONG_DOCUMENT_CHARS` to `MAX_LONG_DOCUMENT_CHARS`
    characters. The documents: those and every shorter topic (distractors).
    """
    long = sorted(
        n for n, t in topics.items() if MIN_LONG_DOCUMENT_CHARS <= len(t) <= MAX_LONG_DOCUMENT_CHARS
    )
    chosen = sorted(random.Random(seed).sample(long, min(count, len(long))))
    short = [n for n, t in topics.items() if len(t) < MIN_LONG_DOCUMENT_CHARS]
    return {name: reST_to_markdown(topics[name]) for name in sorted([*chosen, *short])}, chosen


def _prose_sentences(markdown: str) -> list[str]:
    sentences: list[str] = []
    for paragraph in re.split(r"\n\s*\n", markdown):
        if not paragraph.strip() or paragraph.startswith((" ", "#")) or "::=" in paragraph:
            continue  # code, grammar and headings are not how people ask
        flat = " ".join(paragraph.split())
        sentences.extend(s for s in _SENTENCE_END.split(flat) if len(s.split()) <= 40)
    return sentences


def passage_queries(
    documents: Mapping[str, str], sources: Sequence[str], count: int, seed: int
) -> list[Query]:
    """Sentences from the prose of the `sources` documents, spread evenly over each, title words removed.

    A sentence found in more than one of `documents` is not used.
    The words of at least four letters in a document's title (its first line) are removed from its queries,
    so that the title, which the first chunk always holds, gives no part of the answer away. Relevant: the
    document the sentence comes from (document level: any of its chunks is a hit).
    """
    per_document = math.ceil(count / max(len(sources), 1))
    sentences = {doc_id: _prose_sentences(text) for doc_id, text in documents.items()}
    occurrences: dict[str, int] = {}
    for found in sentences.values():
        for sentence in set(found):
            occurrences[sentence] = occurrences.get(sentence, 0) + 1
    queries: list[Query] = []
    for doc_id in sources:
        text = documents[doc_id]
        title_words = [w for w in re.findall(r"\w+", text.splitlines()[0]) if len(w) >= 4]
        candidates = list(
            dict.fromkeys(
                q
                for q in (remove_words(s, title_words) for s in sentences[doc_id] if occurrences[s] == 1)
                if len(q.split()) >= MIN_QUERY_WORDS + 3
            )
        )
        if not candidates:
            continue
        step = len(candidates) / min(per_document, len(candidates))
        picked = [candidates[int(i * step)] for i in range(min(per_document, len(candidates)))]
        queries.extend(Query(q, frozenset({doc_id}), "passage") for q in picked)
    if len(queries) > count:
        keep = set(random.Random(seed).sample(range(len(queries)), count))
        queries = [q for i, q in enumerate(queries) if i in keep]
    return queries


QUESTIONS = Path(__file__).resolve().parent / "data" / "stdlib_questions.jsonl"
"""Hand-written questions over the standard-library docstrings, one JSON object a line: `query` and the ids
of the documents that answer it (`relevant`). They were written from what a user would ask, not from the
docstrings: they paraphrase (\"glue pieces of a file location together\" for `posixpath.join`) instead of
quoting, so they measure what a natural-language question gets, not how many words it shares."""


def load_questions(path: Path = QUESTIONS) -> list[Query]:
    """The hand-written questions of `path` as `question` queries."""
    with path.open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    return [Query(row["query"], frozenset(row["relevant"]), "question") for row in rows]


_FUNCTION_WORDS = frozenset(
    re.findall(
        r"\w+",
        "a an the of to in on for and or is are be by with as it this that from at how can i my do does "
        "what which into so no any all its get make some one two",
    )
)


def shared_word_share(query: str, document: str) -> float:
    """Share of the query's content words (lower case, function words left out) that occur in `document`."""
    words = {w for w in re.findall(r"[a-z]+", query.lower()) if w not in _FUNCTION_WORDS}
    return len(words & set(re.findall(r"[a-z]+", document.lower()))) / max(len(words), 1)
