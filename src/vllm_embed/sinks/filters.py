"""What a sink's callers pass and get: metadata filters (checked once here), stored-vector batches."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

MetadataValue = str | int | float | bool
"""A value a metadata filter can match by equality."""

MetadataFilter = Mapping[str, MetadataValue]
"""`{"field": value, ...}`: every metadata field must equal its value."""


StoredVectors = list[tuple[str, NDArray[np.float32] | None]]
"""A batch of stored points: (point id, vector as stored, or `None` when the point has none)."""


def check_filter(filter: MetadataFilter | None) -> dict[str, MetadataValue]:
    """Validates a metadata filter and returns it as a dict.

    Raises:
        ValueError: If a key is empty or a value is not a string, number or boolean.
    """
    if not filter:
        return {}
    checked: dict[str, MetadataValue] = {}
    for key, value in filter.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"filter keys must be non-empty strings, got {key!r}")
        if not isinstance(value, str | int | float | bool):
            raise ValueError(
                f"filter value for {key!r} must be a string, number or boolean, got {type(value).__name__}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"filter value for {key!r} must be finite, got {value!r}")
        checked[key] = value
    return checked
