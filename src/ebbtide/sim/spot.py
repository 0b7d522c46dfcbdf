"""Spot capacity in the twin: termination notices as a Poisson process per spot replica."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ebbtide.config import PoolSpec
from ebbtide.core.signals import ReplicaState
from ebbtide.sim.clock import DRAIN_TIMEOUT
from ebbtide.sim.spec import SimSpec

if TYPE_CHECKING:
    from ebbtide.sim.replica import SimReplica
    from ebbtide.sim.run import Simulation

__all__ = ["preempt", "spot_rate"]


def spot_rate(pool: PoolSpec, sim: SimSpec) -> tuple[float, float]:
    """(notices per replica-second, notice seconds); no notices unless the pool's replicas are spot."""
    spot = pool.replica.spot
    return (sim.spot_preemptions_per_hour / 3600.0, spot.notice_s) if spot is not None else (0.0, 0.0)


def preempt(run: Simulation, r: SimReplica, now_s: float) -> None:
    """No new requests, a replacement starts at once; gone (with what still runs) when the notice ends."""
    run.preemptions += 1
    r.preempted = True
    if r.state is ReplicaState.STARTING or r.batch == 0:
        run._stop(r, now_s)
    else:
        run.capacity -= 1
        r.set_state(ReplicaState.DRAINING)
        run.views[r.pos] = r.view
        run.clock.push(now_s + run.notice_s, DRAIN_TIMEOUT, r)
    run._start_replica(now_s)
