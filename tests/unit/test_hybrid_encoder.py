"""The BM25 encoder (Qdrant's analyzer, qdrant_edge.Bm25) and the version check that guards its hashes."""

from __future__ import annotations

import pytest

from vllm_embed.sparse import BM25Encoder, BM25Settings, SparseAnalyzerError


def test_documents_get_bm25_weights_and_queries_one_per_distinct_token() -> None:
    encoder = BM25Encoder()
    (document,) = encoder.embed_documents(["running runs run; the zlib.crc32 checksum"])
    query = encoder.embed_query("run zlib.crc32 the run")
    assert set(query.values) == {1.0} and len(set(query.indices)) == len(query.indices)
    assert set(query.indices) <= set(document.indices)  # "run" stemmed; "the" a stop word
    stem = document.values[document.indices.index(query.indices[0])]
    assert stem == max(document.values)  # three occurrences of the stem saturate highest
    assert encoder.embed_query("the of and").indices == []


def test_the_description_records_package_version_and_settings() -> None:
    described = BM25Encoder(BM25Settings(avg_len=128)).describe()
    assert described["encoder"] == "qdrant-edge-py" and described["avg_len"] == 128
    restored = BM25Encoder.from_manifest(described, "docs")
    assert restored.settings == BM25Settings(avg_len=128)
    assert restored.embed_documents(["a b c"]) == BM25Encoder(restored.settings).embed_documents(["a b c"])


def test_another_analyzer_release_is_refused_unless_a_patch_with_identical_output() -> None:
    described = BM25Encoder().describe()
    major, minor, *_ = described["version"].split(".")
    patch = {**described, "version": f"{major}.{minor}.999"}
    BM25Encoder.from_manifest(patch, "docs")  # same output on the probe text: accepted
    with pytest.raises(SparseAnalyzerError, match=rf'pip install "qdrant-edge-py=={major}.{minor}.999"'):
        BM25Encoder.from_manifest({**patch, "fingerprint": "0" * 16}, "docs")
    with pytest.raises(
        SparseAnalyzerError, match=r"collection .docs. has BM25 vectors from qdrant-edge-py 0\.0\.1"
    ):
        BM25Encoder.from_manifest({**described, "version": "0.0.1"}, "docs")


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="b"):
        BM25Settings(b=2.0)
    with pytest.raises(ValueError):
        BM25Encoder(BM25Settings(language="klingon"))
