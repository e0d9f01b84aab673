"""Qwen3-Embedding behaviour on a tiny random Qwen3 model, checked against a plain-transformers reference."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_qwen3 import HIDDEN_SIZE, build_tiny_qwen3, reference_embeddings

from vllm_embed import Embedder, ModelProfile
from vllm_embed.backends import vllm_local
from vllm_embed.embedder import prompt_affixes
from vllm_embed.profiles import QWEN3_DEFAULT_INSTRUCTION, detect_profile

DOCS = [
    "hello world",
    "",
    "the model pools the last token of every input",
    "a\x00b with: punctuation\nand lines",
]
QUERIES = ["what does the model pool", "hello"]


def _assert_close(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.shape == reference.shape
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= 0.999, cosines


def test_profile_is_read_from_the_model_files(tiny_qwen3_path: Path, qwen3_embedder: Embedder) -> None:
    profile = qwen3_embedder.profile
    assert profile.family == "qwen3-embedding"
    assert profile.pooling == "last"
    assert profile.matryoshka
    assert profile.native_dimension == HIDDEN_SIZE
    assert profile.max_length == 512
    assert qwen3_embedder.dimension == HIDDEN_SIZE


def test_documents_get_no_prompt(tiny_qwen3_path: Path, qwen3_embedder: Embedder) -> None:
    _assert_close(qwen3_embedder.embed_documents(DOCS), reference_embeddings(tiny_qwen3_path, DOCS))


def test_queries_use_the_default_instruction(tiny_qwen3_path: Path, qwen3_embedder: Embedder) -> None:
    formatted = [f"Instruct: {QWEN3_DEFAULT_INSTRUCTION}\nQuery:{q}" for q in QUERIES]
    assert qwen3_embedder.format_query(QUERIES[0]) == formatted[0]
    _assert_close(qwen3_embedder.embed_queries(QUERIES), reference_embeddings(tiny_qwen3_path, formatted))
    single = qwen3_embedder.embed_query(QUERIES[0])
    _assert_close(single[None, :], reference_embeddings(tiny_qwen3_path, formatted[:1]))


def test_custom_instruction_per_call_and_per_embedder(
    tiny_qwen3_path: Path, qwen3_embedder: Embedder
) -> None:
    instruction = "Given a question, retrieve code that answers it"
    formatted = [f"Instruct: {instruction}\nQuery:{q}" for q in QUERIES]
    expected = reference_embeddings(tiny_qwen3_path, formatted)
    _assert_close(qwen3_embedder.embed_queries(QUERIES, instruction=instruction), expected)
    with Embedder(str(tiny_qwen3_path), dtype="float32", query_instruction=instruction) as instructed:
        _assert_close(instructed.embed_queries(QUERIES), expected)
        # The query instruction never leaks into documents.
        _assert_close(instructed.embed_documents(DOCS), reference_embeddings(tiny_qwen3_path, DOCS))


@pytest.mark.parametrize("dimensions", [32, 48])
def test_matryoshka_dimensions(tiny_qwen3_path: Path, qwen3_embedder: Embedder, dimensions: int) -> None:
    with Embedder(str(tiny_qwen3_path), dtype="float32", dimensions=dimensions) as reduced:
        vectors = reduced.embed_documents(DOCS)
        assert vectors.shape == (len(DOCS), dimensions)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        _assert_close(vectors, reference_embeddings(tiny_qwen3_path, DOCS, dimensions=dimensions))
        formatted = [f"Instruct: {QWEN3_DEFAULT_INSTRUCTION}\nQuery:{q}" for q in QUERIES]
        _assert_close(
            reduced.embed_queries(QUERIES), reference_embeddings(tiny_qwen3_path, formatted, dimensions)
        )


@pytest.mark.parametrize("dimensions", [16, 65, 5000])
def test_dimensions_outside_the_range_fail_before_the_engine(tiny_qwen3_path: Path, dimensions: int) -> None:
    before = vllm_local.running_engines()
    with pytest.raises(ValueError, match=rf"^dimensions={dimensions} is outside 32\.\.64 for "):
        Embedder(str(tiny_qwen3_path), dimensions=dimensions)
    assert vllm_local.running_engines() == before


def test_known_model_names_validate_without_any_files() -> None:
    profile = detect_profile("Qwen/Qwen3-Embedding-4B")
    assert profile.family == "qwen3-embedding"
    with pytest.raises(
        ValueError, match=r"^dimensions=5000 is outside 32\.\.2560 for Qwen/Qwen3-Embedding-4B$"
    ):
        profile.check_dimensions(5000, "Qwen/Qwen3-Embedding-4B")
    assert profile.check_dimensions(256, "Qwen/Qwen3-Embedding-4B") == 256


def test_the_models_own_query_prompt_wins_over_the_default(tmp_path: Path) -> None:
    path = build_tiny_qwen3(tmp_path / "prompted", query_prompt="Instruct: Find recipes\nQuery:")
    profile = detect_profile(str(path))
    assert profile.format_query("soup") == "Instruct: Find recipes\nQuery:soup"
    assert profile.format_query("soup", "Find poems") == "Instruct: Find poems\nQuery:soup"
    assert profile.format_document("soup") == "soup"


def test_eos_is_appended_when_the_tokenizer_does_not(tiny_qwen3_path: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    profile = detect_profile(str(tiny_qwen3_path))
    with_eos = AutoTokenizer.from_pretrained(str(tiny_qwen3_path))
    assert prompt_affixes(with_eos, profile) == ([], [with_eos.eos_token_id])

    plain = tmp_path / "no-eos"
    shutil.copytree(tiny_qwen3_path, plain)
    tokenizer_file = plain / "tokenizer.json"
    spec = json.loads(tokenizer_file.read_text())
    spec["post_processor"] = None
    tokenizer_file.write_text(json.dumps(spec))
    without_eos = AutoTokenizer.from_pretrained(str(plain))
    assert without_eos("hello")["input_ids"][-1] != without_eos.eos_token_id
    assert prompt_affixes(without_eos, profile) == ([], [without_eos.eos_token_id])


def test_profile_override_and_unknown_profile(tiny_qwen3_path: Path) -> None:
    generic = detect_profile(str(tiny_qwen3_path), override="sentence-transformers")
    assert generic.family == "sentence-transformers"
    custom = ModelProfile(family="custom", pooling="cls", native_dimension=10)
    assert detect_profile(str(tiny_qwen3_path), override=custom) is custom
    with pytest.raises(ValueError, match="unknown profile 'qwen4'"):
        detect_profile(str(tiny_qwen3_path), override="qwen4")
