"""The RAG examples run end to end (offline, packaged MiniLM) and retrieve the passages a reader expects.

They run in-process, so their `VLLMEmbeddings`/`VLLMEmbedding` share the session's MiniLM engine (same
settings: `dtype="auto"` is float32 on CPUs without native bf16).
"""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

from vllm_embed import Embedder

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXPECTED_TOP_TOPIC = {
    "How do I make bread at home?": "baking",
    "What should I do before cycling a long distance?": "cycling",
    "Why can I shorten some embedding vectors?": "embeddings",
}


@pytest.mark.parametrize(
    ("script", "store"),
    [("langchain_rag.py", "memory"), ("langchain_rag.py", "ingest"), ("llamaindex_rag.py", "qdrant")],
)
def test_rag_examples_retrieve_the_right_passages(
    script: str,
    store: str,
    minilm_path: str,
    default_minilm_embedder: Embedder,  # the examples' Embedders (default settings) share its engine
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(sys, "argv", [script, "--model", minilm_path, "--store", store])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    out = capsys.readouterr().out

    for question, topic in EXPECTED_TOP_TOPIC.items():
        match = re.search(rf"Q: {re.escape(question)}\n\s+1\. [\d.]+ \[(\w+)\]", out)
        assert match is not None, out
        assert match.group(1) == topic, question
        assert f"{question} -> [{topic}]" in out  # the async pass agrees
