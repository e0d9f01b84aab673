"""Checks of a model argument that can be made before anything loads it: one line per mistake.

Left to the tokenizer and vLLM, a mistyped path becomes a 120-line traceback ending in a hub-id error, a
directory that is not a model reports a missing `sentencepiece`, and a hub id that is not cached while offline
is retried for minutes.
"""

from __future__ import annotations

from pathlib import Path

from vllm_embed.errors import ModelNotFoundError
from vllm_embed.profiles import hub_offline

MODEL_CONFIG = "config.json"
"""The file every Hugging Face model directory holds."""


def looks_like_path(model: str) -> bool:
    """Whether `model` is written as a filesystem path rather than a hub id (`name` or `org/name`)."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model or model.endswith("/")


def check_model_source(model: str, revision: str | None = None) -> None:
    """Refuses a model argument that cannot load, before the tokenizer or the engine tries.

    Args:
        model: A local model directory or a Hugging Face hub id.
        revision: The hub revision (for the offline cache lookup).

    Raises:
        ModelNotFoundError: As `check_model_path`; or for a hub id absent from the local cache while
            `HF_HUB_OFFLINE` is set.
    """
    if check_model_path(model):
        return
    if hub_offline() and not _in_hub_cache(model, revision):
        raise ModelNotFoundError(
            f"{model} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: download it once "
            f"online (hf download {model}), unset HF_HUB_OFFLINE, or pass a local directory"
        )


def check_model_path(model: str) -> bool:
    """Refuses a model argument written as a path that holds no model; returns whether it is a local model.

    Raises:
        ModelNotFoundError: If `model` is a path that does not exist, a file, or a directory without a
            model config.
    """
    local = Path(model).expanduser()
    if local.is_dir():
        if not (local / MODEL_CONFIG).is_file():
            raise ModelNotFoundError(
                f"{model} is not a model directory: it holds no {MODEL_CONFIG}; pass the directory that "
                "does (a Hugging Face model or a sentence-transformers save)"
            )
        return True
    if local.exists():
        raise ModelNotFoundError(
            f"{model} is a file; pass the model's directory (the one holding config.json)"
        )
    if looks_like_path(model):
        raise ModelNotFoundError(
            f"model path {model} does not exist; check the path (a hub id reads 'org/name')"
        )
    return False


def _in_hub_cache(model: str, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model, MODEL_CONFIG, revision=revision), str)
    except ValueError:  # not a valid repo id: nothing of it can be cached
        return False
