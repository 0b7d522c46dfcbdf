"""core.stats.nearest_rank: the quantile decision code and calibration share."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ebbtide.core.stats import nearest_rank


def test_nearest_rank_is_the_ceil_q_n_th_smallest() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert [nearest_rank(values, q) for q in (0.01, 0.2, 0.21, 0.5, 0.6, 0.95, 1.0)] == [1, 1, 2, 3, 3, 5, 5]
    assert nearest_rank([0.1 * i for i in range(1, 21)], 0.95) == pytest.approx(1.9)  # 0.95 × 20 = 19: the 19th


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50), st.floats(0.001, 1.0), st.floats(0.001, 1.0))
def test_nearest_rank_is_a_value_and_grows_with_q(values: list[float], q1: float, q2: float) -> None:
    lo, hi = sorted((q1, q2))
    assert nearest_rank(values, lo) in values
    assert nearest_rank(values, lo) <= nearest_rank(values, hi)
