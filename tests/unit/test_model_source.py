"""A model argument that cannot load is one line before anything loads it (the CLI prints it as is)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vllm_embed.errors import ModelNotFoundError, VllmEmbedError
from vllm_embed.model_source import check_model_path, check_model_source, looks_like_path


@pytest.mark.parametrize(
    ("model", "path_like"),
    [
        ("./models/minilm", True),
        ("/abs/model", True),
        ("~/model", True),
        ("a/b/c", True),
        ("dir/", True),
        ("org/name", False),
        ("bert-base-uncased", False),
    ],
)
def test_looks_like_path(model: str, path_like: bool) -> None:
    assert looks_like_path(model) is path_like


def test_a_path_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"^model path \S+/missing does not exist; check the path"):
        check_model_source(str(tmp_path / "missing"))


def test_a_directory_without_a_model_config(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match=r"is not a model directory: it holds no config\.json"):
        check_model_source(str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="is a file; pass the model's directory"):
        check_model_source(str(tmp_path / "tokenizer.json"))


def test_a_model_directory_passes(minilm_path: str) -> None:
    assert check_model_path(minilm_path) is True
    check_model_source(minilm_path)


def test_a_hub_id_offline_that_is_not_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(
        VllmEmbedError, match=r"org/absent is not in the local Hugging Face cache and HF_HUB_OFFLINE"
    ):
        check_model_source("org/absent")
    assert check_model_path("org/absent") is False  # a hub id: the CLI's pre-check leaves it to the embedder
