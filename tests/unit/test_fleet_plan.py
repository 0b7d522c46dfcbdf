"""core/fleet: the one fleet plan both drivers carry out (removal order, variant switch, candidates, spot floor)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ebbtide.core.fleet import CANDIDATE, Drain, FleetTarget, Start, drain_finished, plan_fleet, preempt
from ebbtide.core.signals import CAPACITY_STATES, ReplicaState, ReplicaView

READY, STARTING, DRAINING, FAILED = (ReplicaState.READY, ReplicaState.STARTING, ReplicaState.DRAINING,
                                     ReplicaState.FAILED)


def r(rid: str, state: ReplicaState = READY, inflight: int = 0, age: float = 0.0, variant: str = "default",
      spot: bool = False) -> ReplicaView:
    return ReplicaView(rid, state, inflight, 4, started_at_s=-age, variant=variant, spot=spot)


def starts(actions: list) -> list[Start]:  # type: ignore[type-arg]
    return [a for a in actions if isinstance(a, Start)]


def drained(actions: list) -> list[str]:  # type: ignore[type-arg]
    return [a.replica_id for a in actions if isinstance(a, Drain)]


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
