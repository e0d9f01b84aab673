"""What the Milvus driver is made of in both modules: limits, the BM25 field and state, literals."""

from __future__ import annotations

import dataclasses

from vllm_embed.sinks.base import MetadataValue
from vllm_embed.sparse import BM25Terms

VARCHAR_MAX_BYTES = 65535
"""Largest VARCHAR a Milvus server accepts; longer texts are cut to fit (the vector still covers all)."""
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
BM25_TERMS_FIELD = "bm25_terms"
"""VARCHAR field of a hybrid collection holding `BM25Terms` text, which the BM25 Function indexes."""


@dataclasses.dataclass(frozen=True)
class MilvusSparse:
    """What a sparse search of a hybrid Milvus collection needs.

    Attributes:
        field: The sparse field: the BM25 Function fills it, or a learned model's vectors are written to it.
        terms: The analysis of the `bm25_terms` field the function reads, or `None` for a collection made
            before it (its function reads the text field with the server's analyzer, `BM25_ANALYZER`) and
            for learned vectors.
        learned: Whether the field holds a learned model's vectors (inner product) rather than BM25.
    """

    field: str
    terms: BM25Terms | None
    learned: bool = False


def milvus_literal(value: MetadataValue) -> str:
    r"""Returns `value` as a Milvus expression literal, escaped so it can never change the expression.

    Milvus Lite has no templated expressions (`filter_params`); the escapes used (`\\ \" \n \r \t`)
    mean the same on Milvus Lite and a server, every other character stands for itself inside the quotes.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return '"' + "".join(_ESCAPES.get(char, char) for char in value) + '"'
