"""Model families: pooling, prompts, Matryoshka range and length limits, read from the model's own files.

A profile is everything that must be right for a model's vectors to mean what its authors trained them to
mean. It is read from the files a sentence-transformers model ships (so local directories work offline) and
completed from a small table of known families for models that ship nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from vllm_embed.errors import SettingsError

Pooling = Literal["mean", "last", "cls"]

QWEN3_DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
QWEN3_QUERY_TEMPLATE = "Instruct: {instruction}\nQuery:{text}"

# Native sizes of well-known models, used only when the model's config.json cannot be read.
_KNOWN_NATIVE_DIMENSIONS = {
    "qwen3-embedding-0.6b": 1024,
    "qwen3-embedding-4b": 2560,
    "qwen3-embedding-8b": 4096,
    "all-minilm-l6-v2": 384,
}


@dataclass(frozen=True)
class ModelProfile:
    """How a model family must be driven.

    Attributes:
        family: Short family name, e.g. `"qwen3-embedding"` or `"sentence-transformers"`.
        pooling: How token states become one vector: `"mean"`, `"last"` (last token) or `"cls"`.
        normalize: Whether vectors are L2-normalised (vllm-embed always returns unit vectors; this records
            whether the model was trained for cosine similarity).
        query_prompt: Text put before every query when no instruction is given (sentence-transformers
            `prompts["query"]`).
        document_prompt: Text put before every document.
        query_template: Format of an instructed query, with `{instruction}` and `{text}` fields; `None` for
            models that take no instruction.
        default_instruction: Instruction used with `query_template` when neither the call, the `Embedder`
            nor the model's own `query_prompt` gives one.
        matryoshka: Whether the model was trained so that its leading dimensions form a valid embedding.
        min_dimension: Smallest Matryoshka size the model supports.
        native_dimension: The model's full output size, when known.
        max_length: Longest input in tokens the model was trained for, when known.
        append_eos: Whether every input must end with the tokenizer's EOS token (last-token pooling).
    """

    family: str
    pooling: Pooling = "mean"
    normalize: bool = True
    query_prompt: str | None = None
    document_prompt: str | None = None
    query_template: str | None = None
    default_instruction: str | None = None
    matryoshka: bool = False
    min_dimension: int = 32
    native_dimension: int | None = None
    max_length: int | None = None
    append_eos: bool = False
    extras: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def format_query(self, text: str, instruction: str | None = None) -> str:
        """Returns the exact string the model must see for a query.

        Args:
            text: The query.
            instruction: Task instruction; overrides the model's own query prompt.

        Raises:
            ValueError: If an instruction is given to a model that takes none.
        """
        if instruction is not None:
            if self.query_template is None:
                raise ValueError(
                    f"the {self.family!r} profile takes no query instruction; drop `instruction`, or pass a "
                    "`ModelProfile` with a `query_template` such as 'Instruct: {instruction}\\nQuery:{text}'"
                )
            return self.query_template.format(instruction=instruction, text=text)
        if self.query_prompt is not None:
            return self.query_prompt + text
        if self.query_template is not None and self.default_instruction is not None:
            return self.query_template.format(instruction=self.default_instruction, text=text)
        return text

    def format_document(self, text: str) -> str:
        """Returns the exact string the model must see for a document."""
        return (self.document_prompt or "") + text

    def dimension_range(self) -> tuple[int, int] | None:
        """Returns the valid `(smallest, largest)` output sizes, or `None` when the native size is unknown."""
        if self.native_dimension is None:
            return None
        if not self.matryoshka:
            return (self.native_dimension, self.native_dimension)
        return (min(self.min_dimension, self.native_dimension), self.native_dimension)

    def check_dimensions(self, dimensions: int | None, model: str) -> int | None:
        """Validates a requested output size against this profile.

        Args:
            dimensions: The requested size, or `None` for the native size.
            model: The model name, for the error message.

        A size asked of a model whose native size is not known yet (a served model name without local
        files) is accepted here: the Embedder checks it again once its backend reports the native size.

        Returns:
            The output size (`None` only when it is not yet known, e.g. an unprobed remote model).

        Raises:
            SettingsError: If the size is outside what the model supports; the message names the valid range.
        """
        if dimensions is None:
            return self.native_dimension
        native = self.native_dimension
        if not self.matryoshka:
            if native is None or dimensions == native:
                return dimensions
            raise SettingsError(
                f"dimensions={dimensions} is not supported for {model}: the model is not trained for "
                f"Matryoshka dimensions and its only size is {native}; pass dimensions=None, or "
                "profile=... with matryoshka=True if the model is"
            )
        low = min(self.min_dimension, native) if native is not None else self.min_dimension
        if dimensions < low or (native is not None and dimensions > native):
            high = str(native) if native is not None else "native"
            raise SettingsError(f"dimensions={dimensions} is outside {low}..{high} for {model}")
        return dimensions


def _qwen3_profile(native: int | None, max_length: int | None, query_prompt: str | None) -> ModelProfile:
    return ModelProfile(
        family="qwen3-embedding",
        pooling="last",
        query_prompt=query_prompt,
        document_prompt=None,
        query_template=QWEN3_QUERY_TEMPLATE,
        default_instruction=QWEN3_DEFAULT_INSTRUCTION,
        matryoshka=True,
        min_dimension=32,
        native_dimension=native,
        max_length=max_length,
        append_eos=True,
    )


NAMED_PROFILES: dict[str, ModelProfile] = {
    "qwen3-embedding": _qwen3_profile(None, None, None),
    "sentence-transformers": ModelProfile(family="sentence-transformers"),
}


def hub_offline() -> bool:
    """Whether the Hugging Face hub is in offline mode, as `huggingface_hub` itself decides.

    `huggingface_hub` reads `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) once, at import, with its own rule
    (`1`, `ON`, `YES`, `TRUE` in any case mean offline; anything else, `no` and `0` included, online); the
    variable is read again here, with the same rule, so that a change after that import counts too.
    """
    from huggingface_hub import constants

    variable = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return bool(constants.HF_HUB_OFFLINE) or constants._is_true(variable)


def _read_json(model: str, filename: str, revision: str | None) -> Any:
    """Reads a JSON file of a model from a local directory or the Hugging Face cache (or hub when online)."""
    path: str | None = None
    local = Path(model).expanduser()
    if local.is_dir():
        candidate = local / filename
        path = str(candidate) if candidate.is_file() else None
    else:
        try:
            from huggingface_hub import hf_hub_download, try_to_load_from_cache

            cached = try_to_load_from_cache(model, filename, revision=revision)
            if isinstance(cached, str):
                path = cached
            elif cached is None and not hub_offline():
                path = hf_hub_download(model, filename, revision=revision)
        except Exception:  # noqa: BLE001 - no hub, no network, gated repo: the file is simply unavailable
            path = None
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def read_model_file(model: str, filename: str, revision: str | None = None) -> dict[str, Any] | None:
    """Reads a JSON object file of a model from a local directory or the Hugging Face cache.

    Args:
        model: Local directory or hub model id.
        filename: File inside the model, e.g. `"config.json"` or `"1_Pooling/config.json"`.
        revision: Hub revision.

    Returns:
        The parsed JSON object, or `None` when the file does not exist or cannot be fetched.
    """
    data = _read_json(model, filename, revision)
    return data if isinstance(data, dict) else None


def usable_positions(config: dict[str, Any]) -> int | None:
    """The longest input `max_position_embeddings` allows.

    RoBERTa-style models (XLM-R, BGE-M3) number positions after the padding id, so `pad_token_id + 1` of
    them are never used (vLLM derives the same).
    """
    positions = config.get("max_position_embeddings")
    if positions is None or "roberta" not in str(config.get("model_type", "")):
        return positions
    return int(positions) - int(config.get("pad_token_id") or 0) - 1


def _pooling_from_st(model: str, revision: str | None) -> tuple[Pooling | None, int | None]:
    """Returns (pooling, pooled size) from the sentence-transformers module files, when present."""
    modules = _read_json(model, "modules.json", revision)
    pooling: Pooling | None = None
    size: int | None = None
    for entry in modules if isinstance(modules, list) else []:
        if not isinstance(entry, dict) or not str(entry.get("type", "")).endswith("Pooling"):
            continue
        cfg = read_model_file(model, f"{entry.get('path') or '1_Pooling'}/config.json", revision) or {}
        size = cfg.get("word_embedding_dimension")
        if cfg.get("pooling_mode_lasttoken"):
            pooling = "last"
        elif cfg.get("pooling_mode_cls_token"):
            pooling = "cls"
        elif cfg.get("pooling_mode_mean_tokens") or cfg.get("pooling_mode_mean_sqrt_len_tokens"):
            pooling = "mean"
    return pooling, size


def _known_native(model: str) -> int | None:
    name = model.rstrip("/").rsplit("/", 1)[-1].lower()
    return _KNOWN_NATIVE_DIMENSIONS.get(name)


def detect_profile(
    model: str,
    revision: str | None = None,
    override: str | ModelProfile | None = None,
) -> ModelProfile:
    """Works out a model's profile from its own files, its name, or an explicit override.

    Args:
        model: Local directory or hub model id.
        revision: Hub revision.
        override: A family name from `NAMED_PROFILES`, or a complete `ModelProfile` (returned unchanged).

    Returns:
        The profile, with the native dimension and max length filled in where the files give them.

    Raises:
        SettingsError: If `override` names an unknown family.
    """
    if isinstance(override, ModelProfile):
        return override
    if override is not None and override not in NAMED_PROFILES:
        raise SettingsError(f"unknown profile {override!r}; choose one of {sorted(NAMED_PROFILES)}")

    config = read_model_file(model, "config.json", revision) or {}
    st_config = read_model_file(model, "config_sentence_transformers.json", revision) or {}
    bert_config = read_model_file(model, "sentence_bert_config.json", revision) or {}
    pooling, pooled_size = _pooling_from_st(model, revision)

    architectures = [str(a) for a in config.get("architectures") or []]
    native = pooled_size or config.get("hidden_size") or _known_native(model)
    max_length = bert_config.get("max_seq_length") or usable_positions(config)
    prompts = st_config.get("prompts") or {}
    query_prompt = prompts.get("query") or None
    document_prompt = next(
        (prompts[name] for name in ("document", "passage", "corpus") if prompts.get(name)), None
    )

    is_qwen3 = override == "qwen3-embedding" or (
        override is None
        and (
            "qwen3-embedding" in model.lower()
            or (any(a.startswith("Qwen3") for a in architectures) and pooling == "last")
        )
    )
    if is_qwen3:
        return _qwen3_profile(native, max_length, query_prompt)

    matryoshka = bool(config.get("is_matryoshka") or config.get("matryoshka_dimensions"))
    min_dimension = min(config.get("matryoshka_dimensions") or [32])
    return replace(
        NAMED_PROFILES["sentence-transformers"],
        pooling=pooling or "mean",
        query_prompt=query_prompt,
        document_prompt=document_prompt,
        matryoshka=matryoshka,
        min_dimension=min_dimension,
        native_dimension=native,
        max_length=max_length,
    )
