"""What the Milvus driver is made of besides the sink: limits, literals, BM25 terms text, index answers."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vllm_embed.sinks.base import MetadataValue
from vllm_embed.sparse import BM25Terms

_MANIFEST_PROPERTY = "vllm_embed.manifest"
VARCHAR_MAX_BYTES = 65535
"""Largest VARCHAR a Milvus server accepts; longer texts are cut to fit (the vector still covers all)."""
JSON_MAX_BYTES = 65536
"""Largest JSON value (a JSON field, or a row's dynamic fields together) a Milvus server accepts."""
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_TRANSIENT_GRPC_CODES = {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
BM25_ANALYZER: dict[str, Any] = {
    "tokenizer": "standard",
    "filter": [
        "lowercase",
        {"type": "stemmer", "language": "english"},
        {"type": "stop", "stop_words": ["_english_"]},
    ],
}
"""Analyzer of the text field of a hybrid collection made before `bm25_terms` (still searched with it):
Unicode words, lower-cased, English stemming and stop words. Milvus Lite 3.2 applies the tokenizer and
lowercasing but neither the stemmer nor `_english_` stop words, which is why new collections index
`BM25Terms` text instead."""
BM25_TERMS_FIELD = "bm25_terms"
"""VARCHAR field of a hybrid collection holding `BM25Terms` text, which the BM25 Function indexes."""
BM25_TERMS_ANALYZER: dict[str, Any] = {"tokenizer": "standard"}
"""Analyzer of the `bm25_terms` field: its words are already analysed (base-36 token hashes)."""
_TERMS_SEPARATOR = " "


@dataclasses.dataclass(frozen=True)
class MilvusSparse:
    """What a BM25 search of a hybrid Milvus collection needs.

    Attributes:
        field: The sparse field the BM25 Function fills.
        terms: The analysis of the `bm25_terms` field the function reads, or `None` for a collection made
            before it (its function reads the text field with the server's analyzer, `BM25_ANALYZER`).
    """

    field: str
    terms: BM25Terms | None


def terms_text(terms: BM25Terms, text: str) -> str:
    """`terms.document_text(text)` cut at a word to fit the `bm25_terms` VARCHAR (~8,000 tokens)."""
    words = terms.document_text(text)
    if len(words) <= VARCHAR_MAX_BYTES:  # base-36 words are ASCII: one byte a character
        return words
    return words[: VARCHAR_MAX_BYTES + 1].rsplit(_TERMS_SEPARATOR, 1)[0]


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


def truncate_utf8(text: str, max_bytes: int) -> str:
    """Returns the longest prefix of `text` whose UTF-8 encoding fits in `max_bytes`."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


# pymilvus pings its server every 10 s, even when idle; Milvus Lite's in-process gRPC server keeps gRPC's
# default policy (one ping per 5 minutes without calls) and, after about 80 s of idling, answers with a
# GOAWAY ("too_many_pings") that gRPC logs on stderr before pymilvus reconnects. Pings over loopback to our
# own process find nothing, so they are switched off for Milvus Lite files.
_LITE_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 2**31 - 1, "grpc.keepalive_permit_without_calls": False}


_JSON_CAST = {"keyword": "VARCHAR", "integer": "DOUBLE", "float": "DOUBLE", "bool": "BOOL"}
"""`json_cast_type` of a JSON-path index per `IndexField.type` (Milvus keeps JSON numbers as doubles)."""

_INDEX_KEYS = frozenset(
    {
        "index_type",
        "metric_type",
        "field_name",
        "index_name",
        "total_rows",
        "indexed_rows",
        "pending_index_rows",
    }
    | {"state", "index_state_fail_reason", "mmap.enabled"}
)


def _index_params(described: Mapping[str, Any]) -> dict[str, Any]:
    """The build parameters in a `describe_index` answer (a server lists them beside its own keys)."""
    nested = described.get("params")
    if isinstance(nested, Mapping):
        return dict(nested)
    return {k: v for k, v in described.items() if k not in _INDEX_KEYS}


@contextlib.contextmanager
def _muted(logger_name: str, message_start: str) -> Iterator[None]:
    """Drops the log records of `logger_name` that start with `message_start` (Milvus Lite's noise)."""

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(message_start)

    logger = logging.getLogger(logger_name)
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _as_vector(value: Any) -> NDArray[np.float32] | None:
    """A stored vector as an array (`None`: none)."""
    return None if value is None else np.asarray(value, dtype=np.float32)


_LEGACY_ANALYZER: dict[str, Any] = {"function": "BM25", "analyzer_params": BM25_ANALYZER}
"""What the manifest of a hybrid collection made before `bm25_terms` records: the text field's analyzer."""

_QUERY_ITERATOR_LOGGER = "pymilvus.client.iterator.query_iterator"
