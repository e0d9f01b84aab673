"""Model profiles read from the model's own files (no engine)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vllm_embed import ModelProfile
from vllm_embed.embedder import prompt_affixes
from vllm_embed.profiles import detect_profile, hub_offline, read_model_file


def test_known_model_names_validate_without_any_files() -> None:
    profile = detect_profile("Qwen/Qwen3-Embedding-4B")
    assert profile.family == "qwen3-embedding"
    with pytest.raises(
        ValueError, match=r"^dimensions=5000 is outside 32\.\.2560 for Qwen/Qwen3-Embedding-4B$"
    ):
        profile.check_dimensions(5000, "Qwen/Qwen3-Embedding-4B")
    assert profile.check_dimensions(256, "Qwen/Qwen3-Embedding-4B") == 256


def test_the_models_own_query_prompt_wins_over_the_default(tiny_qwen3_path: Path, tmp_path: Path) -> None:
    # The profile comes from the JSON files alone: copy them and give the model its own query prompt.
    path = tmp_path / "prompted"
    shutil.copytree(tiny_qwen3_path, path, ignore=shutil.ignore_patterns("*.safetensors"))
    st_config = path / "config_sentence_transformers.json"
    settings = json.loads(st_config.read_text())
    settings["prompts"] = {"query": "Instruct: Find recipes\nQuery:", "document": ""}
    st_config.write_text(json.dumps(settings))
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


@pytest.mark.parametrize(
    ("value", "offline"),
    [("1", True), ("true", True), ("TRUE", True), ("yes", True), ("0", False), ("no", False), ("", False)],
)
def test_hf_hub_offline_is_read_as_huggingface_hub_reads_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str, offline: bool
) -> None:
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # as if imported without the variable
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    downloads: list[str] = []

    def fake_download(model: str, filename: str, revision: str | None = None) -> str:
        downloads.append(filename)
        raise OSError("no network in this test")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    assert hub_offline() is offline
    assert read_model_file("org/not-cached", "config.json") is None
    assert downloads == ([] if offline else ["config.json"])


def test_a_bge_m3_checkpoint_runs_its_dense_half_within_its_usable_positions(tmp_path: Path) -> None:
    from vllm_embed.backends.vllm_local import _engine_arguments
    from vllm_embed.config import EmbedderConfig

    config = {"architectures": ["BgeM3EmbeddingModel"], "model_type": "xlm-roberta", "hidden_size": 64,
              "num_attention_heads": 4, "max_position_embeddings": 514, "pad_token_id": 1}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    profile = detect_profile(str(tmp_path))
    assert profile.max_length == 512  # RoBERTa numbers positions after the padding id, as vLLM derives
    arguments = _engine_arguments(EmbedderConfig(model=str(tmp_path)), profile)
    assert arguments["max_model_len"] == 512
    assert arguments["pooler_config"]["task"] == "embed"  # not its default "embed&token_classify"


def test_an_xlm_r_cross_encoder_gets_its_usable_positions_too(tmp_path: Path) -> None:
    from vllm_embed.rerank_profiles import detect_reranker_profile

    config = {"architectures": ["XLMRobertaForSequenceClassification"], "model_type": "xlm-roberta",
              "num_labels": 1, "max_position_embeddings": 8194, "pad_token_id": 1}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert detect_reranker_profile(str(tmp_path)).max_length == 8192  # as bge-reranker-v2-m3's vLLM derives
