"""The shared helpers in `vllm_embed._utils`."""

from __future__ import annotations

import numpy as np
import pytest

from vllm_embed._utils import batched, unit_rows, vector_problem


@pytest.mark.parametrize(
    ("vector", "problem"),
    [
        ([0.6, 0.8], None),
        ([1e38, 1e38], None),  # large but finite: its norm is computed in float64
        ([0.0, 0.0], "is all zeros"),
        ([float("nan"), 1.0], "is not finite (nan at position 0)"),
        ([1.0, float("-inf")], "is not finite (-inf at position 1)"),
        ([1.0, 0.0, 0.0], "has shape (3,), expected (2,)"),
        (["a", 1.0], "holds values that are not numbers"),
        (None, "is missing"),
    ],
)
def test_vector_problem(vector, problem) -> None:
    assert vector_problem(vector, 2) == problem
    if vector is not None and problem != "holds values that are not numbers":
        assert vector_problem(np.asarray(vector, np.float32), 2) == problem


def test_unit_rows_keeps_the_direction_of_huge_rows() -> None:
    rows = np.array([[1e38, -1e38], [3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    unit = unit_rows(rows)
    assert unit.dtype == np.float32
    np.testing.assert_allclose(unit, [[2**-0.5, -(2**-0.5)], [0.6, 0.8], [0.0, 0.0]], rtol=1e-6)


def test_batched_slices_and_refuses_a_bad_size() -> None:
    assert list(batched([1, 2, 3, 4, 5], 2)) == [[1, 2], [3, 4], [5]]
    assert list(batched([], 3)) == []
    with pytest.raises(ValueError, match="positive"):
        list(batched([1], 0))
