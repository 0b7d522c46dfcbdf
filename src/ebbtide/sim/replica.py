"""Modelled replicas: a continuous-batching server whose speed depends on its batch, advanced by events.

Its speed comes from a service model (``sim/service.py``): ``ttft_s(prompt_tokens, batch)`` and ``tpot_s(batch)``,
precomputed per batch size up to ``slots``.

``SimReplica`` is processor sharing in "virtual tokens": every running sequence advances one token per
``tpot_s(b)`` seconds, so each sequence finishes at a fixed virtual time and only the replica's next finish is
an event. Prefill is a head start of ``ttft / tpot`` virtual tokens, so it slows down with the batch too.

A table with percentiles gives each request its own TTFT and TPOT: lognormal multipliers whose log-sd per batch
size is fitted to the level's p50 and p95 (``ServiceModel.ttft_sigma_by_batch``), drawn from the run's seeded
spread RNG at admission. ``SimReplica.set_slowdown`` stretches a replica's speed while a shared host is
oversubscribed (``sim/host.py``)."""

from __future__ import annotations

import heapq
import math
import random
from typing import Any

from ebbtide.core.signals import ReplicaState, ReplicaView
from ebbtide.sim.service import ServiceModel

__all__ = ["Running", "SimReplica"]

EPS_TOKENS = 1e-6
# A running request: (virtual finish, seq, arrival_s, first_token_s, output_tokens, started_s, class index).
Running = tuple[float, int, float, float, int, float, int]


class SimReplica:
    """One replica's lifecycle and its running batch. Times are seconds since the run's start.

    ``view`` is the ``ReplicaView`` routing sees; views are cached per batch size (they are immutable), so
    keeping it current costs a list lookup, not an allocation, on every admit and finish."""

    __slots__ = (
        "_views",
        "base_tpots",
        "batch",
        "heap",
        "last_s",
        "owner",
        "pos",
        "preempted",
        "ready_s",
        "replica_id",
        "requested_s",
        "scheduled_s",
        "service",
        "sigmas",
        "slots",
        "slow",
        "spot",
        "standby",
        "state",
        "stopped_s",
        "tpot",
        "tpots",
        "v",
        "variant",
        "view",
    )

    def __init__(
        self,
        replica_id: str,
        service: ServiceModel,
        requested_s: float,
        spread: random.Random | None = None,
        variant: str = "default",
        spot: bool = False,
        owner: Any = None,
        standby: str | None = None,
    ) -> None:
        self.replica_id = replica_id
        self.variant = variant
        self.spot = spot
        self.standby = standby  # a reserve member's tier (core.standby); None once it serves
        self.owner = owner  # the driver's per-pool state that handles this replica's events
        self.service = service
        self.slots = service.slots
        self.base_tpots = self.tpots = service.tpot_by_batch
        self.slow = 1.0
        # Per-request spread: (TTFT log-sds, TPOT log-sds, a seeded normal draw), or None when deterministic.
        self.sigmas = (
            (service.ttft_sigma_by_batch, service.tpot_sigma_by_batch, spread.gauss)
            if spread is not None and service.has_spread
            else None
        )
        self.requested_s = requested_s
        self.ready_s: float | None = None
        self.stopped_s: float | None = None
        self.v = 0.0
        self.last_s = requested_s
        self.batch = 0
        self.tpot = self.tpots[0]
        self.heap: list[Running] = []
        self.scheduled_s = math.inf
        self.pos = -1  # index in the driver's list of views
        self.preempted = False
        self.set_state(ReplicaState.STARTING)

    def set_state(self, state: ReplicaState, now_s: float | None = None) -> None:
        self.state = state
        if state is ReplicaState.READY and now_s is not None:
            self.ready_s = now_s
        self._views: list[ReplicaView | None] = [None] * (self.slots + 1)
        self.view = self._view()

    def _view(self) -> ReplicaView:
        v = self._views[self.batch]
        if v is None:
            v = ReplicaView(
                self.replica_id, self.state, self.batch, self.slots, self.requested_s, self.ready_s, self.variant,
                self.spot, self.standby,
            )
            self._views[self.batch] = v
        return v

    def start_request(
        self, now_s: float, seq: int, arrival_s: float, prompt_tokens: int, output_tokens: int, cls: int = 0
    ) -> float:
        """Start a request now; returns its TTFT from now (prefill at the new batch size)."""
        if self.batch:
            self.v += (now_s - self.last_s) / self.tpot
        self.last_s = now_s
        self.batch += 1
        self.tpot = tpot = self.tpots[self.batch]
        ttft = self.service.ttft_s(prompt_tokens, self.batch) * self.slow
        work = output_tokens - 1.0
        if self.sigmas is not None:  # this request's own speed: TTFT and TPOT multipliers, median 1
            s_ttft, s_tpot, gauss = self.sigmas
            ttft *= math.exp(s_ttft[self.batch] * gauss(0.0, 1.0))
            work *= math.exp(s_tpot[self.batch] * gauss(0.0, 1.0))
        heapq.heappush(
            self.heap, (self.v + ttft / tpot + work, seq, arrival_s, now_s + ttft, output_tokens, now_s, cls)
        )
        self.view = self._view()
        return ttft

    def pop_due(self, now_s: float, force: bool) -> list[Running]:
        """Finish every sequence whose virtual finish has been reached (``force``: at least the first one)."""
        if self.batch:
            self.v += (now_s - self.last_s) / self.tpot
        self.last_s = now_s
        heap, limit = self.heap, self.v + EPS_TOKENS
        done: list[Running] = []
        while heap and (heap[0][0] <= limit or (force and not done)):
            done.append(heapq.heappop(heap))
        if done:
            self.batch -= len(done)
            self.tpot = self.tpots[self.batch]
            self.view = self._view()
        return done

    def set_slowdown(self, now_s: float, factor: float) -> None:
        """From now on prefill and decode take ``factor`` × their modelled time (a shared, oversubscribed host);
        progress so far is kept. The caller reschedules the next finish if it moved earlier."""
        if self.batch:
            self.v += (now_s - self.last_s) / self.tpot
        self.last_s = now_s
        self.slow = factor
        self.tpots = self.base_tpots if factor == 1.0 else tuple(t * factor for t in self.base_tpots)
        self.tpot = self.tpots[self.batch]

    def next_finish_s(self) -> float:
        heap = self.heap
        if not heap:
            return math.inf
        ahead = heap[0][0] - self.v
        return self.last_s + ahead * self.tpot if ahead > 0 else self.last_s

    def abort_all(self) -> list[Running]:
        done, self.heap, self.batch = self.heap, [], 0
        self.view = self._view()
        return done
