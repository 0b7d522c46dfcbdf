"""Controller: combination of opinions, bounds in force, AAS cooldowns, scale-to-zero rules (DESIGN §4).

Scenario tests on a virtual timeline: scripted policies give opinions by time, the pool's capacity follows the
controller's decisions unless the test says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from ebbtide.core.controller import Controller, ControllerState, ScaleDecision, ScalingRules
from ebbtide.core.policies.base import Recommendation
from ebbtide.core.policies.schedule import ScheduleSpec
from ebbtide.core.signals import PoolSignals


@dataclass
class Scripted:
    """A test policy: ``desired(now_s)`` and optional bounds; stateless."""

    name: str
    desired: Callable[[float], int | None]
    bounds: Callable[[float], tuple[int | None, int | None]] = lambda _t: (None, None)

    def initial_state(self) -> None:
        return None

    def decide(self, signals: PoolSignals, state: Any, now_s: float) -> tuple[Recommendation, None]:
        lo, hi = self.bounds(now_s)
        src = "scripted" if lo is not None or hi is not None else None
        return Recommendation(self.name, self.desired(now_s), "scripted", lo, hi, src), None


def const(v: int | None) -> Callable[[float], int | None]:
    return lambda _t: v


def sig(now_s: float, capacity: int, queue: int = 0, last_arrival_s: float | None = None) -> PoolSignals:
    return PoolSignals("p", now_s, capacity, (), queue, 0, 0, last_arrival_s)


RULES = ScalingRules(min_replicas=1, max_replicas=10, scale_out_cooldown_s=60, scale_in_cooldown_s=180)


def decide_once(
    policies: Sequence[Any], capacity: int, rules: ScalingRules = RULES, **kw: Any
) -> ScaleDecision:
    c = Controller("p", rules, policies)
    d, _ = c.decide(sig(0.0, capacity, **kw), c.initial_state(), 0.0)
    return d


@pytest.mark.parametrize(
    ("opinions", "current", "desired"),
    [
        ((3, 1), 2, 3),  # any says out → out, to the largest
        ((1, 2), 3, 2),  # all say in → in, to the largest of them
        ((1, 3), 3, 3),  # one holds → no scale-in
        ((None, None), 4, 4),  # no opinion → hold
        ((1, None), 3, 1),  # "no opinion" does not veto a scale-in
        ((20, None), 2, 10),  # clamped to static max
        ((0, 0), 3, 1),  # clamped to static min
    ],
)
def test_max_of_opinions_then_bounds(opinions: tuple[int | None, ...], current: int, desired: int) -> None:
    """AAS with several target tracking policies: scale out if any policy says so, scale in only if all agree
    (Application Auto Scaling User Guide, "Multiple scaling policies"); DESIGN §4 clamps to the bounds after.
    """
    d = decide_once([Scripted(f"p{i}", const(v)) for i, v in enumerate(opinions)], current)
    assert d.desired == desired
    assert [o.desired for o in d.opinions] == list(opinions)
    assert d.bounds_source == "static"


def test_schedule_bounds_override_static_and_name_their_source() -> None:
    """AAS scheduled actions set MinCapacity/MaxCapacity of the scalable target (Application Auto Scaling
    "Scheduled scaling"); the decision records which action set the bounds."""
    schedule = ScheduleSpec.model_validate(
        {
            "tz": "UTC",
            "actions": [{"cron": "0 8 * * *", "min_replicas": 2, "max_replicas": 5, "name": "pre-warm"}],
        }
    ).build()
    d = decide_once([Scripted("a", const(1)), schedule], 1)
    assert (d.desired, d.min_replicas, d.max_replicas) == (2, 2, 5)
    assert d.bounds_source == "schedule (pre-warm)"
    assert d.blocked_by is None


def run(
    policies: Sequence[Any],
    rules: ScalingRules,
    times: Sequence[float],
    capacity: int,
    capacity_override: dict[float, int] | None = None,
) -> dict[float, ScaleDecision]:
    """Tick at ``times``; the capacity follows each decision (or ``capacity_override`` at a time, e.g. a
    failure).
    """
    c = Controller("p", rules, policies)
    state: ControllerState = c.initial_state()
    out = {}
    for t in times:
        if capacity_override and t in capacity_override:
            capacity = capacity_override[t]
        d, state = c.decide(sig(t, capacity), state, t)
        out[t] = d
        capacity = d.desired
    return out


def test_scale_out_cooldown_blocks_only_repeats_not_larger_scale_outs() -> None:
    """AAS ScaleOutCooldown: "while the cooldown period is in effect, the capacity added by the previous
    scale-out ... is calculated as part of the desired capacity for the next scale out" — a scale-out to no
    more than the last target waits for the cooldown, a larger one goes at once
    (TargetTrackingScalingPolicyConfiguration).
    """
    want = {0.0: 4, 30.0: 4, 40.0: 4, 59.0: 4, 60.0: 4}
    policy = Scripted("a", lambda t: want.get(t, 5 if t == 45.0 else 4))
    # a replica fails at t=30: capacity 3 < last target 4
    recs = run([policy], RULES, [0.0, 30.0, 59.0, 60.0], 2, {30.0: 3})
    assert (recs[0.0].desired, recs[30.0].desired, recs[59.0].desired, recs[60.0].desired) == (4, 3, 3, 4)
    assert recs[30.0].blocked_by == recs[59.0].blocked_by == "scale_out_cooldown"
    larger = run([Scripted("a", lambda t: 4 if t == 0 else 5)], RULES, [0.0, 30.0], 2, {30.0: 3})
    assert larger[30.0].desired == 5 and larger[30.0].blocked_by is None


@pytest.mark.parametrize(("t", "desired", "blocked"), [(179.0, 3, "scale_in_cooldown"), (180.0, 1, None)])
def test_scale_in_waits_scale_in_cooldown_after_a_scale_out(
    t: float, desired: int, blocked: str | None
) -> None:
    """AAS: scale-in is conservative — it waits ScaleInCooldown after any scaling activity (DESIGN §4
    cooldowns; Application Auto Scaling "Define cooldown periods").
    """
    policy = Scripted("a", lambda now: 3 if now == 0 else 1)
    recs = run([policy], RULES, [0.0, t], 1)
    assert (recs[t].desired, recs[t].blocked_by) == (desired, blocked)


@pytest.mark.parametrize(("t", "desired"), [(359.0, 2), (360.0, 1)])
def test_scale_in_waits_after_a_scale_in_too(t: float, desired: int) -> None:
    """ScaleInCooldown: "after a scale-in activity completes before another scale-in activity can start"
    (Application Auto Scaling TargetTrackingScalingPolicyConfiguration)."""
    policy = Scripted("a", lambda now: 3 if now == 0 else (2 if now == 180 else 1))
    recs = run([policy], RULES, [0.0, 180.0, t], 1)
    assert recs[180.0].desired == 2
    assert recs[t].desired == desired


def test_scale_out_is_never_blocked_by_the_scale_in_cooldown() -> None:
    """AAS: "if another alarm triggers a scale-out activity during the scale-in cooldown period, Application
    Auto Scaling scales out the target immediately" (TargetTrackingScalingPolicyConfiguration,
    ScaleInCooldown).
    """
    policy = Scripted("a", lambda now: {0.0: 2, 10.0: 4}[now])
    recs = run([policy], RULES, [0.0, 10.0], 3)
    assert recs[0.0].desired == 2
    assert recs[10.0].desired == 4 and recs[10.0].blocked_by is None


def test_scale_out_after_a_scale_in_is_not_blocked_by_an_older_scale_out_target() -> None:
    """AAS counts "the capacity added by the previous scale-out" during the scale-out cooldown; once a
    scale-in removed it, a needed scale-out must not wait (fixed in core). Long scale-out cooldown, short
    scale-in one.
    """
    rules = ScalingRules(1, 10, scale_out_cooldown_s=300, scale_in_cooldown_s=60)
    policy = Scripted("a", lambda now: {0.0: 5, 60.0: 3, 100.0: 4}[now])
    recs = run([policy], rules, [0.0, 60.0, 100.0], 2)
    assert [recs[t].desired for t in (0.0, 60.0, 100.0)] == [5, 3, 4]
    assert recs[100.0].blocked_by is None


def test_min_bound_raise_is_not_blocked_by_scale_out_cooldown() -> None:
    """A scheduled action raising MinCapacity applies at once (AAS: "if the current capacity is below the new
    minimum, Application Auto Scaling scales out to the minimum", Scheduled scaling docs)."""
    bounds = Scripted("sched", const(None), lambda now: (6, 10) if now >= 30 else (None, None))
    recs = run([Scripted("a", lambda now: 4 if now == 0 else 1), bounds], RULES, [0.0, 30.0], 2)
    assert recs[30.0].desired == 6 and recs[30.0].blocked_by is None
    assert recs[30.0].bounds_source == "sched (scripted)"


@pytest.mark.parametrize(("t", "desired"), [(30.0, 3), (209.0, 3), (210.0, 1)])
def test_max_bound_drop_forces_scale_in_to_the_max_only(t: float, desired: int) -> None:
    """A scheduled action lowering MaxCapacity scales in at once (AAS Scheduled scaling: "if the current
    capacity is above the new maximum, ... scales in to the maximum"); going further below the max is an
    ordinary scale-in and still waits scale_in_cooldown_s after the last scaling — the forced one at t=30
    included (pinned; fixed in core — it used to go straight to the policies' target, bypassing the cooldown).
    """
    bounds = Scripted("sched", const(None), lambda now: (None, 3) if now >= 30 else (None, None))
    policy = Scripted("a", lambda now: 5 if now == 0 else 1)
    times = sorted({0.0, 30.0, t})
    recs = run([policy, bounds], RULES, times, 1)
    assert recs[0.0].desired == 5
    assert recs[t].desired == desired
    assert recs[30.0].blocked_by == "scale_in_cooldown"  # blocked the rest of the way down to 1


def test_failure_below_min_during_scale_out_cooldown_restores_the_min_at_once() -> None:
    """The bounds in force always hold (DESIGN §4; AAS keeps capacity >= MinCapacity): a replica failing
    during the scale-out cooldown takes the pool below min 2; the controller goes back to the min at once, and
    the rest of a repeated scale-out still waits for the cooldown (fixed in core — found by the hypothesis
    property).
    """
    rules = ScalingRules(2, 10, scale_out_cooldown_s=30, scale_in_cooldown_s=180)
    recs = run([Scripted("a", const(4))], rules, [0.0, 10.0, 29.0, 30.0], 2, {10.0: 1})
    assert [recs[t].desired for t in (0.0, 10.0, 29.0, 30.0)] == [4, 2, 2, 4]
    assert recs[10.0].blocked_by == recs[29.0].blocked_by == "scale_out_cooldown"


def test_scale_out_from_zero_ignores_scale_out_cooldown() -> None:
    """From zero replicas capacity is always needed at once (DESIGN §4 scale to zero: held requests trigger a
    start); the scale-out cooldown does not apply when current is 0."""
    policy = Scripted("a", lambda now: {0.0: 2, 10.0: 1}[now])
    rules = ScalingRules(0, 5, 60, 180)
    recs = run([policy], rules, [0.0, 10.0], 0, {10.0: 0})
    assert recs[10.0].desired == 1 and recs[10.0].blocked_by is None


ZERO_RULES = ScalingRules(0, 5, 60, 0, scale_to_zero_after_s=300)


@pytest.mark.parametrize(
    ("queue", "last_arrival_s", "desired"),
    [
        (2, None, 1),  # requests outstanding: keep at least one replica
        (0, -299.0, 1),  # idle 299 s < 300 s: keep one
        (0, -300.0, 0),  # idle 300 s: to zero
        (0, None, 0),  # no arrival ever seen: nothing holds a replica (pinned)
    ],
)
def test_scale_to_zero_rules(queue: int, last_arrival_s: float | None, desired: int) -> None:
    """Scale to zero after a grace period of no traffic (Knative scale-to-zero-grace-period / Ray
    downscale_to_zero_delay_s; ebbtide's scale_to_zero_after_s, DESIGN §4): never below 1 with requests
    outstanding."""
    d = decide_once([Scripted("a", const(0))], 1, ZERO_RULES, queue=queue, last_arrival_s=last_arrival_s)
    assert d.desired == desired
