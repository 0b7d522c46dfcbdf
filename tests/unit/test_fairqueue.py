"""FairQueue: priority between classes, fairness across tenants, shedding batch first, lazy removal."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ebbtide.core.fairqueue import FairQueue


def drain(q: FairQueue[str]) -> list[str]:
    out = []
    while (item := q.pop()) is not None:
        out.append(item.payload)
    return out


def test_interactive_is_served_before_batch_whatever_the_arrival_order() -> None:
    q: FairQueue[str] = FairQueue()
    q.push("b1", "t", "batch")
    q.push("i1", "t", "interactive")
    q.push("b2", "t", "batch")
    q.push("i2", "t", "interactive")
    assert drain(q) == ["i1", "i2", "b1", "b2"]


def test_a_flooding_tenant_cannot_starve_a_light_one() -> None:
    q: FairQueue[str] = FairQueue()
    for i in range(10):
        q.push(f"heavy{i}", "heavy", "interactive")
    q.push("light0", "light", "interactive")
    order = drain(q)
    assert order.index("light0") <= 1


def test_weights_share_service_in_proportion() -> None:
    q: FairQueue[str] = FairQueue(tenant_weights={"gold": 3.0})
    for i in range(30):
        q.push(f"g{i}", "gold", "batch")
        q.push(f"s{i}", "silver", "batch")
    first = drain(q)[:20]
    assert 14 <= sum(1 for p in first if p.startswith("g")) <= 16


def test_shed_candidate_is_the_newest_lower_class_item_and_never_a_peer() -> None:
    q: FairQueue[str] = FairQueue()
    q.push("i1", "t", "interactive")
    q.push("b1", "t", "batch")
    newest_batch = q.push("b2", "u", "batch")
    assert q.shed_candidate("interactive") is newest_batch
    assert q.shed_candidate("batch") is None
    q.discard(newest_batch)
    assert len(q) == 2 and drain(q) == ["i1", "b1"]


def test_unknown_classes_rank_after_known_ones() -> None:
    q: FairQueue[str] = FairQueue()
    q.push("x", "t", "bulk-export")
    q.push("b", "t", "batch")
    assert drain(q) == ["b", "x"]


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["interactive", "batch"]),
                          st.booleans()), max_size=40))
def test_every_live_item_comes_out_once_and_classes_never_invert(ops: list[tuple[str, str, bool]]) -> None:
    q: FairQueue[int] = FairQueue()
    kept = []
    for n, (tenant, cls, cancel) in enumerate(ops):
        item = q.push(n, tenant, cls)
        if cancel:
            q.discard(item)
        else:
            kept.append((n, cls))
    assert len(q) == len(kept)
    out = []
    while (item := q.pop()) is not None:
        out.append((item.payload, item.priority_class))
    assert sorted(out) == sorted(kept)
    ranks = [0 if c == "interactive" else 1 for _, c in out]
    assert ranks == sorted(ranks)


def test_served_items_move_virtual_time_so_a_late_tenant_does_not_jump_the_line() -> None:
    q: FairQueue[str] = FairQueue(["interactive"])
    for i in range(5):
        q.push(f"a{i}", "a", "interactive")
    for _ in range(3):
        head = q.peek()
        assert head is not None
        q.take(head)  # served the way the broker serves: the head, taken
    for i in range(3):
        q.push(f"b{i}", "b", "interactive")
    order = []
    while (item := q.pop()) is not None:
        order.append(item.payload)
    # b starts from the virtual time reached (one turn, then alternating), not from 0 (three turns ahead of a3)
    assert order == ["b0", "a3", "b1", "a4", "b2"]
