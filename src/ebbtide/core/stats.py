"""Small statistics shared by decision code and the twin (pure: no I/O, no clock)."""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["nearest_rank"]


def nearest_rank(values: Iterable[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (non-empty) by nearest rank: the ceil(q × n)-th smallest, one of the values."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1]
