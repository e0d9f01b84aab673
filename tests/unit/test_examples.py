"""The examples as a reader copies them (they run end to end in tests/integration/test_examples.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_examples_leave_the_dtype_to_the_engine(script: str) -> None:
    """`dtype="auto"` lets bfloat16-native CPUs (and GPUs) use their fast path; float32 is for tests."""
    tree = ast.parse((EXAMPLES / script).read_text())
    dtypes = [
        keyword.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for keyword in node.keywords
        if keyword.arg == "dtype" and isinstance(keyword.value, ast.Constant)
    ]
    assert all(dtype == "auto" for dtype in dtypes), dtypes
