"""Which ColBERT query/document markers, query padding and skiplist a model's own files ask for."""

from __future__ import annotations

import json
import string
from pathlib import Path

from vllm_embed.multivector import _read_markers


def _model(tmp_path: Path, filename: str, content: dict[str, object]) -> str:
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    (tmp_path / filename).write_text(json.dumps(content), encoding="utf-8")
    return str(tmp_path)


def test_a_model_without_markers_gets_none(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    assert _read_markers(str(tmp_path), None) == {
        "query_prefix": "",
        "document_prefix": "",
        "query_pad_to": None,
        "skiplist": [],
    }


def test_pylate_markers_skiplist_and_attended_expansion(tmp_path: Path) -> None:
    model = _model(
        tmp_path,
        "config_sentence_transformers.json",
        {
            "query_prefix": "[Q] ",
            "document_prefix": "[D] ",
            "query_length": 32,
            "do_query_expansion": True,
            "attend_to_expansion_tokens": True,
            "skiplist_words": ["!", ","],
        },
    )
    markers = _read_markers(model, None)
    assert (markers["query_prefix"], markers["document_prefix"]) == ("[Q] ", "[D] ")
    assert markers["skiplist"] == ["!", ","]
    assert markers["query_pad_to"] == 32
    assert markers["unapplied"] is None


def test_unattended_query_expansion_is_not_applied_and_said_so(tmp_path: Path) -> None:
    model = _model(
        tmp_path,
        "artifact.metadata",
        {"query_token_id": "[unused0]", "doc_token_id": "[unused1]", "query_maxlen": 32},
    )
    markers = _read_markers(model, None)
    assert (markers["query_prefix"], markers["document_prefix"]) == ("[unused0] ", "[unused1] ")
    assert markers["skiplist"] == list(string.punctuation)  # mask_punctuation defaults to true
    assert markers["query_pad_to"] is None
    assert "unattended [MASK]" in markers["unapplied"]
