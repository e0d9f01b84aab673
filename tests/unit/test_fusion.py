"""The fusion of dense and BM25 candidates (`vllm_embed.sinks.fusion`): pure arithmetic on Hit lists."""

from __future__ import annotations

import pytest

from vllm_embed.errors import VllmEmbedError
from vllm_embed.ingest import search
from vllm_embed.ingest.search import fusion_of
from vllm_embed.sinks import Hit
from vllm_embed.sinks.fusion import FusionSettings, FusionSettingsError, fuse, fusion_settings


def hits(*pairs: tuple[str, float], by: str) -> list[Hit]:
    return [Hit(i, f"doc-{i}", 0, score, f"text {i}", {}, (by,)) for i, score in pairs]


DENSE = hits(("a", 0.9), ("b", 0.8), ("c", 0.1), by="dense")
SPARSE = hits(("c", 12.0), ("d", 3.0), ("a", 1.0), by="sparse")


def test_rrf_adds_weighted_reciprocal_ranks_and_found_by_names_the_lists() -> None:
    fused = fuse({"dense": DENSE, "sparse": SPARSE}, 4, FusionSettings(rrf_k=60, dense_weight=1))
    scores = {h.id: h.score for h in fused}
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 63) and scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert scores["b"] == pytest.approx(1 / 62) and scores["d"] == pytest.approx(1 / 62)
    # equal scores keep the order first met: dense's list first
    assert [h.id for h in fused] == ["a", "c", "b", "d"]
    assert {h.id: h.found_by for h in fused} == {
        "a": ("dense", "sparse"), "c": ("dense", "sparse"), "b": ("dense",), "d": ("sparse",)
    }  # fmt: skip
    assert fused[0].text == "text a" and fused[0].doc_id == "doc-a"


def test_weights_and_k_change_the_order() -> None:
    dense_first = fuse({"dense": DENSE, "sparse": SPARSE}, 4, FusionSettings(rrf_k=60, dense_weight=3))
    assert [h.id for h in dense_first] == ["a", "c", "b", "d"]
    sparse_first = fuse(
        {"dense": DENSE, "sparse": SPARSE}, 4, FusionSettings(dense_weight=1, sparse_weight=3)
    )
    assert [h.id for h in sparse_first] == ["c", "a", "d", "b"]
    # a small k makes the top rank count much more than the second
    one = hits(("x", 1.0), ("y", 0.5), by="dense")
    two = hits(("y", 1.0), ("z", 0.5), by="sparse")
    small = fuse({"dense": one, "sparse": two}, 3, FusionSettings(rrf_k=1, dense_weight=1))
    assert [h.id for h in small] == ["y", "x", "z"]


def test_weighted_fusion_adds_min_max_normalised_scores() -> None:
    settings = FusionSettings(fusion="weighted", dense_weight=0.5, sparse_weight=0.5)
    fused = fuse({"dense": DENSE, "sparse": SPARSE}, 4, settings)
    scores = {h.id: h.score for h in fused}
    # dense 0.9/0.8/0.1 → 1, 0.875, 0; BM25 12/3/1 → 1, 2/11, 0
    assert scores == pytest.approx({"a": 0.5, "b": 0.4375, "c": 0.5, "d": 1 / 11})
    assert [h.id for h in fused] == ["a", "c", "b", "d"]
    # one hit (or equal scores) normalises to 1, an empty list adds nothing
    alone = fuse({"dense": hits(("a", 0.3), by="dense"), "sparse": []}, 5, settings)
    assert [(h.id, h.score, h.found_by) for h in alone] == [("a", 0.5, ("dense",))]


def test_a_point_listed_twice_counts_once_and_top_k_cuts() -> None:
    twice = [*DENSE, DENSE[0]]
    fused = fuse({"dense": twice, "sparse": []}, 2, FusionSettings(dense_weight=1))
    assert [(h.id, h.score) for h in fused] == [("a", pytest.approx(1 / 11)), ("b", pytest.approx(1 / 12))]


def test_settings_are_checked_with_one_line_naming_the_setting() -> None:
    with pytest.raises(FusionSettingsError, match="dense_weight") as error:
        fusion_settings(dense_weight=-1)
    assert isinstance(error.value, VllmEmbedError) and "\n" not in str(error.value)
    with pytest.raises(FusionSettingsError, match="fusion"):
        fusion_settings(fusion="max")
    with pytest.raises(FusionSettingsError, match="rrf_k"):
        fusion_settings(rrf_k=0)
    with pytest.raises(FusionSettingsError, match="alpha"):
        fusion_of("weighted", {"alpha": 0.5})


def test_search_takes_the_fusion_by_name_or_whole_with_overrides() -> None:
    assert fusion_of(None, {}) == FusionSettings()
    assert fusion_of("weighted", {"dense_weight": 0.7}) == FusionSettings(fusion="weighted", dense_weight=0.7)
    given = FusionSettings(rrf_k=10)
    assert fusion_of(given, {"sparse_weight": 2}) == FusionSettings(rrf_k=10, sparse_weight=2)
    with pytest.raises(FusionSettingsError):  # before the collection is even read
        search("q", embedder=None, sink=None, fusion="max")  # type: ignore[arg-type]


class FakeMaxSimStore:
    """Fake store for `maxsim_hits`' ordering logic: fixed MaxSim scores by point id."""

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores

    def maxsim(self, query, ids):
        return {point: self.scores[point] for point in ids if point in self.scores}


def test_maxsim_orders_by_score_zero_included_and_an_unscored_point_goes_last() -> None:
    import numpy as np

    from vllm_embed.ingest.search import maxsim_hits
    from vllm_embed.sinks import Hit

    hits = [
        Hit(point, point, 0, 1.0 - i / 10, "", {}) for i, point in enumerate(["gone", "a", "b", "c", "d"])
    ]
    store = FakeMaxSimStore({"a": 0.0, "b": -0.5, "c": 0.2, "d": 0.0})
    ranked = maxsim_hits(store, np.ones((1, 2), np.float32), hits, keep=5)
    assert [h.id for h in ranked] == ["c", "a", "d", "b", "gone"]  # a before d: the first stage's order
    assert [h.maxsim_score for h in ranked] == [0.2, 0.0, 0.0, -0.5, None]
    assert [h.score for h in ranked] == [0.7, 0.9, 0.6, 0.8, 1.0]
    assert [h.id for h in maxsim_hits(store, np.ones((1, 2), np.float32), hits, keep=2)] == ["c", "a"]
