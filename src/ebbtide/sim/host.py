"""Co-located replicas sharing one host's cores (``sim.host``), e.g. ``ebbtide demo`` on a 2-core machine.

A replica demands its threads while it serves (batch > 0) or loads (starting). While the demand exceeds the
cores left to replicas (``cores - reserved_cores``), every replica runs ``demand / available`` times slower:
decode from that moment on, and the TTFT of requests admitted meanwhile (a TTFT is fixed at admission). With
the default (no ``host``) each replica is its own machine and nothing here runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ebbtide.config.sim import SharedHostSpec
from ebbtide.core.signals import ReplicaState
from ebbtide.sim.replica import SimReplica

__all__ = ["SharedHost"]


class SharedHost:
    def __init__(self, spec: SharedHostSpec, threads_per_replica: float) -> None:
        self.available = spec.cores - spec.reserved_cores
        self.threads = spec.threads_per_replica or threads_per_replica
        self.factor = 1.0

    def busy(self, r: SimReplica) -> bool:
        return r.state is ReplicaState.STARTING or r.batch > 0

    def update(
        self,
        replicas: Iterable[SimReplica],
        now_s: float,
        reschedule: Callable[[SimReplica], None],
        about_to_serve: SimReplica | None = None,
    ) -> None:
        """Recompute the slowdown after a replica became busy or idle (``about_to_serve``: counts as busy, it
        is being given a request); replicas whose speed changes get it from now, and ``reschedule`` for the
        ones serving (their next finish moved)."""
        replicas = list(replicas)
        demand = self.threads * sum(1 for r in replicas if r is about_to_serve or self.busy(r))
        factor = max(1.0, demand / self.available)
        self.factor = factor
        for r in replicas:
            if r.slow != factor:
                r.set_slowdown(now_s, factor)
                if r.batch:
                    reschedule(r)
