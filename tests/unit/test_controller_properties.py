"""Hypothesis properties of the controller (issue 3): bounds, scale-in cooldown, scale-out never blocked by
it.

Random timelines: two scripted policies with random opinions, a random schedule-like bounds source, random
replica failures (capacity drops by one), the capacity otherwise following each decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ebbtide.core.controller import Controller, ScalingRules
from ebbtide.core.policies.base import Recommendation
from ebbtide.core.signals import PoolSignals

TICK_S = 5.0


@dataclass
class Table:
    """Opinion (and bounds) by time, from the drawn timeline."""

    name: str
    desired: dict[float, int | None]
    bounds: dict[float, tuple[int, int] | None]

    def initial_state(self) -> None:
        return None

    def decide(self, signals: PoolSignals, state: Any, now_s: float) -> tuple[Recommendation, None]:
        b = self.bounds.get(now_s)
        if b is None:
            return Recommendation(self.name, self.desired.get(now_s), "table"), None
        return Recommendation(self.name, self.desired.get(now_s), "table", b[0], b[1], "drawn"), None


opinion = st.one_of(st.none(), st.integers(0, 10))
step = st.tuples(
    st.integers(1, 60),  # ticks since the previous decision
    opinion,
    opinion,
    st.one_of(st.none(), st.tuples(st.integers(0, 4), st.integers(1, 8))),  # schedule bounds
    st.booleans(),  # a replica fails before this tick
)
rules_st = st.builds(
    ScalingRules,
    min_replicas=st.integers(0, 3),
    max_replicas=st.integers(3, 8),
    scale_out_cooldown_s=st.sampled_from([0.0, 30.0, 60.0, 300.0]),
    scale_in_cooldown_s=st.sampled_from([0.0, 60.0, 180.0, 300.0]),
)


@settings(max_examples=200, deadline=None)
@given(rules_st, st.integers(0, 6), st.lists(step, min_size=1, max_size=40))
def test_controller_invariants(rules: ScalingRules, start: int, steps: list[tuple[Any, ...]]) -> None:
    """DESIGN §4 with AAS cooldown semantics (Application Auto Scaling
    TargetTrackingScalingPolicyConfiguration: ScaleInCooldown / ScaleOutCooldown; scheduled actions move
    Min/MaxCapacity at once):

    1. desired is always within the bounds in force;
    2. no scale-in within scale_in_cooldown_s of any scaling action, except the forced part of a max bound
       drop, which goes exactly to the max (pinned behaviour of ``Controller``);
    3. scale in only if every opinion is below current (or the max bound forces it);
    4. a needed scale-out is never blocked by the scale-in cooldown, and is blocked at all only within
       scale_out_cooldown_s of a scale-out to at least the requested count, from a non-zero capacity.
    """
    t, times, a, b, bounds = 0.0, [], {}, {}, {}
    for dt, oa, ob, bnd, _ in steps:
        t += dt * TICK_S
        times.append(t)
        a[t], b[t], bounds[t] = oa, ob, bnd
    ctl = Controller("p", rules, [Table("a", a, {}), Table("b", b, bounds)])
    state = ctl.initial_state()
    capacity = start
    last_scaling: float | None = None
    scale_outs: list[tuple[float, int]] = []
    for now, (_, oa, ob, bnd, fails) in zip(times, steps, strict=True):
        if fails and capacity > 0:
            capacity -= 1
        d, state = ctl.decide(PoolSignals("p", now, capacity, (), 0, 0), state, now)
        lo, hi = (rules.min_replicas, rules.max_replicas) if bnd is None else bnd
        hi = max(lo, hi)
        assert (d.min_replicas, d.max_replicas) == (lo, hi)
        assert lo <= d.desired <= hi  # 1
        wanted = [o for o in (oa, ob) if o is not None]
        target = min(max(max(wanted) if wanted else capacity, lo), hi)
        if d.desired < capacity:
            forced = capacity > hi
            if last_scaling is not None and now - last_scaling < rules.scale_in_cooldown_s:
                assert forced and d.desired == hi  # 2
            assert forced or all(o < capacity for o in wanted)  # 3
        if target > capacity:
            assert d.blocked_by != "scale_in_cooldown"  # 4
            assert d.desired >= capacity
            if d.desired < target:
                assert d.blocked_by == "scale_out_cooldown" and capacity > 0
                assert any(
                    now - ts < rules.scale_out_cooldown_s and tgt >= target for ts, tgt in scale_outs
                ), "blocked without a recent, at-least-as-large scale-out"
        if d.desired != capacity:
            last_scaling = now
        if d.desired > capacity:
            scale_outs.append((now, d.desired))
        capacity = d.desired
