"""core/fleet: the one fleet plan both drivers carry out (removal order, variant switch, candidates, spot floor)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ebbtide.core.fleet import (
    CANDIDATE,
    RESERVE_STATES,
    Drain,
    FleetTarget,
    Promote,
    Start,
    drain_finished,
    plan_fleet,
    preempt,
)
from ebbtide.core.signals import CAPACITY_STATES, ReplicaState, ReplicaView
from ebbtide.core.standby import StandbyWish

READY, STARTING, DRAINING, FAILED = (ReplicaState.READY, ReplicaState.STARTING, ReplicaState.DRAINING,
                                     ReplicaState.FAILED)


PARKED = ReplicaState.STANDBY


def r(rid: str, state: ReplicaState = READY, inflight: int = 0, age: float = 0.0, variant: str = "default",
      spot: bool = False, standby: str | None = None) -> ReplicaView:
    return ReplicaView(rid, state, inflight, 4, started_at_s=-age, variant=variant, spot=spot, standby=standby)


def starts(actions: list) -> list[Start]:  # type: ignore[type-arg]
    return [a for a in actions if isinstance(a, Start)]


def drained(actions: list) -> list[str]:  # type: ignore[type-arg]
    return [a.replica_id for a in actions if isinstance(a, Drain)]


def promoted(actions: list) -> list[str]:  # type: ignore[type-arg]
    return [a.replica_id for a in actions if isinstance(a, Promote)]


def test_scale_out_starts_the_difference_and_nothing_else() -> None:
    actions = plan_fleet([r("a"), r("b", STARTING)], FleetTarget(desired=4), 0.0)
    assert actions == [Start("default", False, "desired 4")] * 2


def test_at_target_nothing_happens_and_failed_replicas_are_replaced() -> None:
    assert plan_fleet([r("a"), r("b")], FleetTarget(2), 0.0) == []
    assert starts(plan_fleet([r("a"), r("b", FAILED)], FleetTarget(2), 0.0)) == [Start("default", False, "desired 2")]


def test_removal_order_not_ready_then_least_inflight_then_newest_then_id() -> None:
    fleet = [r("a", inflight=3, age=50), r("b", STARTING, age=1), r("c", inflight=1, age=100),
             r("d", inflight=1, age=10), r("e", inflight=1, age=10)]
    assert drained(plan_fleet(fleet, FleetTarget(4), 0.0)) == ["b"]
    assert drained(plan_fleet(fleet, FleetTarget(2), 0.0)) == ["b", "d", "e"]
    assert drained(plan_fleet(fleet, FleetTarget(0), 0.0)) == ["b", "d", "e", "c", "a"]


def test_draining_and_stopped_replicas_are_not_capacity() -> None:
    assert starts(plan_fleet([r("a", DRAINING), r("b")], FleetTarget(2), 0.0)) == [Start("default", False, "desired 2")]


def test_variant_switch_starts_new_and_drains_old_only_as_new_become_ready() -> None:
    old = [r("o1", inflight=2), r("o2")]
    target = FleetTarget(2, variant="small")
    assert plan_fleet(old, target, 0.0) == [Start("small", False, "desired 2")] * 2
    one_ready = [*old, r("n1", variant="small"), r("n2", STARTING, variant="small")]
    assert plan_fleet(one_ready, target, 0.0) == [Drain("o2", "replaced by variant small")]
    both = [*old, r("n1", variant="small"), r("n2", variant="small")]
    assert drained(plan_fleet(both, target, 0.0)) == ["o2", "o1"]
    assert plan_fleet(both, FleetTarget(2, variant="small", hold_old=True), 0.0) == []


def test_candidates_are_counted_apart_from_the_serving_variant() -> None:
    fleet = [r("a"), r("b")]
    assert plan_fleet(fleet, FleetTarget(2, candidates=1), 0.0) == [Start(CANDIDATE, False, "rollout candidate")]
    with_candidate = [*fleet, r("c", variant=CANDIDATE)]
    assert plan_fleet(with_candidate, FleetTarget(2, candidates=1), 0.0) == []
    assert drained(plan_fleet(with_candidate, FleetTarget(2), 0.0)) == ["c"]
    # a promoted candidate is the serving variant: the old one drains as it is ready
    assert drained(plan_fleet(with_candidate, FleetTarget(1, variant=CANDIDATE), 0.0)) == ["a", "b"]


def test_spot_starts_above_the_on_demand_floor() -> None:
    target = FleetTarget(4, spot=True, min_on_demand=2)
    assert [s.spot for s in starts(plan_fleet([], target, 0.0))] == [False, False, True, True]
    assert [s.spot for s in starts(plan_fleet([r("a", spot=True)], target, 0.0))] == [False, False, True]
    assert [s.spot for s in starts(plan_fleet([], FleetTarget(2, spot=False, min_on_demand=0), 0.0))] == [False] * 2


def test_scale_in_keeps_the_on_demand_floor() -> None:
    fleet = [r("od1", age=1), r("od2", age=2), r("s1", spot=True, inflight=2), r("s2", spot=True, inflight=1)]
    assert drained(plan_fleet(fleet, FleetTarget(2, spot=True, min_on_demand=2), 0.0)) == ["s2", "s1"]
    assert drained(plan_fleet(fleet, FleetTarget(3, spot=True, min_on_demand=1), 0.0)) == ["od1"]
    assert drained(plan_fleet(fleet, FleetTarget(1, spot=True, min_on_demand=2), 0.0)) == ["s2", "s1", "od1"]


def test_preemption_drains_within_the_notice_and_starts_a_replacement() -> None:
    fleet = [r("a", spot=True, inflight=1), r("b", spot=True)]
    target = FleetTarget(2, spot=True)
    assert preempt(fleet, "a", 120.0, target, 1000.0) == [
        Drain("a", "spot termination notice", 1120.0), Start("default", True, "desired 2")]
    assert preempt(fleet, "zz", 120.0, target, 1000.0) == []
    assert preempt([r("a", DRAINING)], "a", 120.0, target, 1000.0) == []


def test_a_drain_ends_when_idle_or_at_its_deadline() -> None:
    assert drain_finished(0, 100.0, 5.0) and drain_finished(3, 100.0, 100.0)
    assert not drain_finished(1, 100.0, 99.999)


STATES = st.sampled_from([READY, STARTING, DRAINING, FAILED, ReplicaState.STOPPED])


@given(
    fleet=st.lists(st.tuples(STATES, st.integers(0, 4), st.booleans(), st.sampled_from(["default", "small"])),
                   max_size=8),
    desired=st.integers(0, 8),
    variant=st.sampled_from(["default", "small"]),
    spot=st.booleans(),
    floor=st.integers(0, 3),
)
def test_after_the_plan_the_serving_variant_has_exactly_desired_capacity(
    fleet: list[tuple[ReplicaState, int, bool, str]], desired: int, variant: str, spot: bool, floor: int
) -> None:
    views = [r(f"r{i}", s, n, float(i), v, sp) for i, (s, n, sp, v) in enumerate(fleet)]
    target = FleetTarget(desired, variant, spot=spot, min_on_demand=floor)
    actions = plan_fleet(views, target, 0.0)
    gone = set(drained(actions))
    assert len(gone) == len(drained(actions)), "a replica is drained once"
    serving = [v for v in views if v.state in CAPACITY_STATES and v.variant == variant and v.replica_id not in gone]
    assert len(serving) + sum(1 for s in starts(actions) if s.variant == variant) == desired
    assert all(v.state in CAPACITY_STATES for v in views if v.replica_id in gone)
    old_kept = [v for v in views if v.state in CAPACITY_STATES and v.variant != variant and v.replica_id not in gone]
    ready_new = sum(1 for v in views if v.state is READY and v.variant == variant)
    assert len(old_kept) <= max(0, desired - ready_new)


# -- standby tiers -------------------------------------------------------------------------------------------

HOT1 = StandbyWish("hot", 1)


def test_an_empty_pool_with_a_standby_wish_starts_the_serving_replicas_then_the_reserve() -> None:
    assert plan_fleet([], FleetTarget(1, standby=StandbyWish("hot", 2)), 0.0) == [
        Start("default", False, "desired 1"),
        Start("default", False, "standby 2 hot", standby="hot"),
        Start("default", False, "standby 2 hot", standby="hot"),
    ]


def test_scale_out_promotes_a_parked_standby_before_starting_cold_and_replaces_it_in_the_background() -> None:
    fleet = [r("a"), r("s", PARKED, standby="hot")]
    assert plan_fleet(fleet, FleetTarget(1, standby=HOT1), 0.0) == []
    assert plan_fleet(fleet, FleetTarget(2, standby=HOT1), 0.0) == [
        Promote("s", "desired 2: wake hot standby"),
        Start("default", False, "standby 1 hot", standby="hot"),
    ]
    # more than the reserve holds: the rest start cold
    actions = plan_fleet(fleet, FleetTarget(3, standby=HOT1), 0.0)
    assert promoted(actions) == ["s"]
    assert [a.standby for a in starts(actions)] == [None, "hot"]


def test_wake_order_parked_first_then_hot_before_warm_then_oldest() -> None:
    fleet = [r("a"), r("w", PARKED, age=50, standby="warm"), r("h-new", PARKED, age=1, standby="hot"),
             r("h-old", PARKED, age=9, standby="hot"), r("h-loading", STARTING, age=99, standby="hot")]
    wish = StandbyWish("hot", 4)
    assert promoted(plan_fleet(fleet, FleetTarget(2, standby=wish), 0.0)) == ["h-old"]
    assert promoted(plan_fleet(fleet, FleetTarget(4, standby=wish), 0.0)) == ["h-old", "h-new", "w"]
    assert promoted(plan_fleet(fleet, FleetTarget(5, standby=wish), 0.0)) == ["h-old", "h-new", "w", "h-loading"]


def test_a_loading_standby_is_promoted_rather_than_a_new_cold_start() -> None:
    fleet = [r("s", STARTING, age=100, standby="hot")]
    actions = plan_fleet(fleet, FleetTarget(1, standby=HOT1), 0.0)
    assert promoted(actions) == ["s"] and [a.standby for a in starts(actions)] == ["hot"]


def test_the_reserve_is_not_serving_capacity_and_is_never_a_scale_in_victim() -> None:
    fleet = [r("a", age=2), r("b", age=1), r("s", PARKED, standby="hot")]
    assert drained(plan_fleet(fleet, FleetTarget(1, standby=HOT1), 0.0)) == ["b"]
    assert starts(plan_fleet([r("s", PARKED, standby="hot")], FleetTarget(0, standby=HOT1), 0.0)) == []


def test_the_reserve_is_trimmed_loading_members_first_and_replaced_when_the_tier_changes() -> None:
    fleet = [r("p1", PARKED, age=5, standby="hot"), r("p2", PARKED, age=2, standby="hot"),
             r("l", STARTING, age=1, standby="hot")]
    assert drained(plan_fleet(fleet, FleetTarget(0, standby=StandbyWish("hot", 1)), 0.0)) == ["l", "p2"]
    assert drained(plan_fleet(fleet, FleetTarget(0, standby=StandbyWish("cold", 3)), 0.0)) == ["p1", "p2", "l"]
    to_warm = plan_fleet(fleet, FleetTarget(0, standby=StandbyWish("warm", 1)), 0.0)
    assert drained(to_warm) == ["p1", "p2", "l"]
    assert starts(to_warm) == [Start("default", False, "standby 1 warm", standby="warm")]


def test_a_variant_switch_replaces_the_reserve_and_never_promotes_the_old_variant() -> None:
    fleet = [r("a"), r("s", PARKED, standby="hot")]
    actions = plan_fleet(fleet, FleetTarget(1, variant="small", standby=HOT1), 0.0)
    assert promoted(actions) == [] and drained(actions) == ["s"]
    assert [(a.variant, a.standby) for a in starts(actions)] == [("small", None), ("small", "hot")]


def test_promoted_replicas_count_as_on_demand_for_the_spot_floor() -> None:
    fleet = [r("s", PARKED, standby="hot")]
    actions = plan_fleet(fleet, FleetTarget(3, spot=True, min_on_demand=1, standby=HOT1), 0.0)
    assert promoted(actions) == ["s"]
    assert [(a.spot, a.standby) for a in starts(actions)] == [(True, None), (True, None), (False, "hot")]


def test_a_standby_wish_is_checked() -> None:
    with pytest.raises(ValueError, match="standby tier = 'lukewarm'"):
        StandbyWish("lukewarm", 1)
    with pytest.raises(ValueError, match="standby count = -1"):
        StandbyWish("hot", -1)
    assert StandbyWish("cold", 3).wanted == 0 and str(StandbyWish("cold", 3)) == "none"


TIER = st.sampled_from(["hot", "warm"])


@given(
    serving=st.lists(st.sampled_from([READY, STARTING, DRAINING]), max_size=5),
    reserve=st.lists(st.tuples(st.sampled_from(sorted(RESERVE_STATES)), TIER), max_size=5),
    desired=st.integers(0, 8),
    wish=st.tuples(st.sampled_from(["hot", "warm", "cold"]), st.integers(0, 3)),
)
def test_after_the_plan_serving_is_desired_and_the_reserve_is_the_wish(
    serving: list[ReplicaState], reserve: list[tuple[ReplicaState, str]], desired: int, wish: tuple[str, int]
) -> None:
    views = [r(f"s{i}", s, age=float(i)) for i, s in enumerate(serving)]
    views += [r(f"r{i}", s, age=float(i), standby=t) for i, (s, t) in enumerate(reserve)]
    target = FleetTarget(desired, standby=StandbyWish(*wish))
    actions = plan_fleet(views, target, 0.0)
    gone, woken = set(drained(actions)), set(promoted(actions))
    assert not gone & woken and len(woken) == len(promoted(actions))
    by_id = {v.replica_id: v for v in views}
    assert all(by_id[w].standby is not None for w in woken), "only reserve members are promoted"
    live_serving = [v for v in views if v.state in CAPACITY_STATES and v.standby is None and v.replica_id not in gone]
    cold = [s for s in starts(actions) if s.standby is None]
    assert len(live_serving) + len(woken) + len(cold) == desired
    if cold:  # a replica starts cold only when no reserve member was left to wake
        assert all(v.replica_id in woken or v.replica_id in gone for v in views if v.standby is not None)
    kept = [v for v in views if v.standby is not None and v.replica_id not in woken | gone]
    assert all(v.standby == wish[0] for v in kept)
    assert len(kept) + sum(1 for s in starts(actions) if s.standby) == StandbyWish(*wish).wanted
