"""`SparseVector` arithmetic and which vLLM architecture a token-level embedder runs a model as."""

from __future__ import annotations

import numpy as np
import pytest

from vllm_embed import SparseVector
from vllm_embed.token_facade import _architecture


def _vector(terms: dict[int, float]) -> SparseVector:
    indices = np.asarray(sorted(terms), dtype=np.int64)
    return SparseVector(indices, np.asarray([terms[i] for i in sorted(terms)], dtype=np.float32))


def test_dot_is_the_inner_product_over_shared_terms() -> None:
    first, second = _vector({3: 0.5, 7: 2.0, 11: 1.0}), _vector({1: 4.0, 7: 0.25, 11: 3.0})
    assert first.dot(second) == pytest.approx(2.0 * 0.25 + 1.0 * 3.0)
    assert first.dot(_vector({})) == 0.0
    assert len(first) == 3
    assert first.to_dict() == {3: 0.5, 7: 2.0, 11: 1.0}


def test_bge_m3_runs_as_its_vllm_architecture() -> None:
    xlmr = {"architectures": ["XLMRobertaModel"]}
    assert _architecture("BAAI/bge-m3", xlmr, {}) == "BgeM3EmbeddingModel"
    assert _architecture("FacebookAI/xlm-roberta-base", xlmr, {}) == "XLMRobertaModel"
    override = {"hf_overrides": {"architectures": ["BgeM3EmbeddingModel"]}}
    assert _architecture("/models/my-m3", xlmr, override) == "BgeM3EmbeddingModel"
    assert _architecture("/models/none", {}, {}) == "?"
