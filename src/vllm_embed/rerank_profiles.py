"""Reranker families: how a (query, document) pair becomes the input a reranking model was trained on.

Read from the model's own `config.json` (so local directories work offline), as embedding profiles are:
Qwen3-Reranker is a causal LM judged by the logits of "yes" and "no" after a fixed chat template, which vLLM
serves as a one-label classifier with `QWEN3_RERANKER_OVERRIDES`; cross-encoders are
`…ForSequenceClassification` models with one label, fed the pair as two text segments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from vllm_embed.profiles import read_model_file, usable_positions

RerankerFamily = Literal["qwen3-reranker", "cross-encoder"]

QWEN3_RERANKER_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
QWEN3_RERANKER_SYSTEM = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
QWEN3_RERANKER_PREFIX = f"<|im_start|>system\n{QWEN3_RERANKER_SYSTEM}<|im_end|>\n<|im_start|>user\n"
QWEN3_RERANKER_QUERY = "<Instruct>: {instruction}\n<Query>: {query}\n"
QWEN3_RERANKER_DOCUMENT = "<Document>: {document}"
QWEN3_RERANKER_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN3_RERANKER_OVERRIDES: dict[str, Any] = {
    "architectures": ["Qwen3ForSequenceClassification"],
    "classifier_from_token": ["no", "yes"],
    "is_original_qwen3_reranker": True,
}
"""How vLLM must load Qwen3-Reranker: a classifier whose one logit is logit("yes") - logit("no")."""


@dataclass(frozen=True)
class RerankerProfile:
    """How a reranking model must be driven.

    Attributes:
        family: `"qwen3-reranker"` (templated causal LM) or `"cross-encoder"` (two-segment classifier).
        max_length: Longest input in tokens the model was trained for, when known.
        default_instruction: Instruction used when neither the call nor the `Reranker` gives one (Qwen3).
        hf_overrides: Config overrides vLLM needs to load the model as a scoring classifier.
    """

    family: RerankerFamily
    max_length: int | None = None
    default_instruction: str | None = None
    hf_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def templated(self) -> bool:
        """Whether pairs are laid out by a chat template (else as the tokenizer's two text segments)."""
        return self.family == "qwen3-reranker"

    def query_text(self, query: str, instruction: str | None) -> str:
        """The query's part of the model input (templated families: with the instruction)."""
        if not self.templated:
            if instruction is not None:
                raise ValueError(
                    f"the {self.family!r} profile takes no instruction; drop instruction=, or pass "
                    "profile='qwen3-reranker' for a Qwen3-Reranker model"
                )
            return query
        chosen = instruction if instruction is not None else self.default_instruction
        return QWEN3_RERANKER_QUERY.format(instruction=chosen, query=query)

    def document_text(self, document: str) -> str:
        """The document's part of the model input."""
        return QWEN3_RERANKER_DOCUMENT.format(document=document) if self.templated else document


def _qwen3_reranker(max_length: int | None) -> RerankerProfile:
    return RerankerProfile(
        family="qwen3-reranker",
        max_length=max_length,
        default_instruction=QWEN3_RERANKER_INSTRUCTION,
        hf_overrides=dict(QWEN3_RERANKER_OVERRIDES),
    )


RERANKER_FAMILIES: tuple[RerankerFamily, ...] = ("qwen3-reranker", "cross-encoder")


def detect_reranker_profile(
    model: str, revision: str | None = None, override: str | None = None
) -> RerankerProfile:
    """Works out a reranking model's profile from its `config.json`, its name, or an explicit override.

    Args:
        model: Local directory or hub model id.
        revision: Hub revision.
        override: `"qwen3-reranker"` or `"cross-encoder"`.

    Raises:
        ValueError: If `override` is unknown, or the model is neither a Qwen3-Reranker nor a one-label
            sequence classifier (the message says which override to pass if it is one).
    """
    if override is not None and override not in RERANKER_FAMILIES:
        raise ValueError(f"unknown reranker profile {override!r}; choose one of {list(RERANKER_FAMILIES)}")
    config = read_model_file(model, "config.json", revision) or {}
    architectures = [str(a) for a in config.get("architectures") or []]
    max_length = usable_positions(config)
    name = model.rstrip("/").rsplit("/", 1)[-1].lower()
    marked = "reranker" in name or "classifier_from_token" in config or "is_original_qwen3_reranker" in config
    if override == "qwen3-reranker" or (
        override is None
        and marked
        and any(a.startswith("Qwen3") and a.endswith("ForCausalLM") for a in architectures)
    ):
        return _qwen3_reranker(max_length)
    labels = config.get("num_labels") or len(config.get("id2label") or {}) or None
    classifier = any(a.endswith("ForSequenceClassification") for a in architectures)
    if override == "cross-encoder" or (override is None and classifier and labels in (None, 1)):
        return RerankerProfile(family="cross-encoder", max_length=max_length)
    if override is None and not config:
        # No files to read (e.g. a served name on a remote server): the name is all there is to go by.
        family: RerankerFamily = "qwen3-reranker" if "qwen3-reranker" in name else "cross-encoder"
        return _qwen3_reranker(None) if family == "qwen3-reranker" else RerankerProfile(family=family)
    found = ", ".join(architectures) or "no architectures in config.json"
    raise ValueError(
        f"{model} is not a reranker vllm-embed recognises ({found}"
        + (f", {labels} labels" if classifier else "")
        + "): a Qwen3-Reranker (Qwen3ForCausalLM) or a cross-encoder (…ForSequenceClassification with one "
        "label); pass profile='qwen3-reranker' or profile='cross-encoder' if it is one"
    )
