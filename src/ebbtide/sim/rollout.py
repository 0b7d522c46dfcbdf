"""A pool's rollout in the twin: the same ``core.rollout`` verdicts as ``serve/control/rollouts.py``, on modelled time.

Canary: each request takes the candidate arm with the current step's share (once a candidate is ready), else
the baseline arm. Shadow: requests stay on the baseline and a ``percent`` share is copied to the candidate (the
copies load it but are nobody's answer). Blue-green: once the baseline has served ``min_requests`` (or one step
interval) the pool switches to the candidate variant keeping the old one, and every request goes to the
candidate when it is ready. Each tick ``step_rollout`` compares the arms' recent latency and errors: it steps,
promotes (the candidate becomes the serving variant) or rolls back.
"""

from __future__ import annotations

import random
from collections import deque
from typing import TYPE_CHECKING

from ebbtide.core.fleet import CANDIDATE
from ebbtide.core.rollout import RolloutState, arm_stats, step_rollout, traffic_percent
from ebbtide.core.signals import ReplicaState
from ebbtide.sim.replica import Running

if TYPE_CHECKING:
    from ebbtide.sim.pool import SimPool

__all__ = ["BASELINE", "SimRollout"]

BASELINE = "baseline"
SAMPLES = 10_000


class SimRollout:
    def __init__(self, pool: SimPool, rng: random.Random) -> None:
        spec = pool.spec.rollout
        assert spec is not None
        self.pool, self.spec, self.rng = pool, spec, rng
        self.state = RolloutState(step_started_s=0.0)
        self.samples: dict[str, deque[tuple[float, float, bool]]] = {
            BASELINE: deque(maxlen=SAMPLES), CANDIDATE: deque(maxlen=SAMPLES)}
        self.switched = spec.mode != "blue-green"
        self.events: list[tuple[float, str]] = []
        self.shadow_copies = 0
        if spec.mode != "blue-green":
            pool.retarget(0.0, candidates=spec.replicas)

    @property
    def active(self) -> bool:
        return self.state.status == "running"

    def _candidate_ready(self) -> bool:
        return any(r.variant == CANDIDATE and r.state is ReplicaState.READY for r in self.pool.replicas.values())

    def arrive(self, now_s: float, prompt: int, output: int, cls: int) -> None:
        pool, spec = self.pool, self.spec
        if not self.active:
            pool.arrive(now_s, prompt, output, cls)
            return
        if spec.mode == "blue-green":
            pool.arrive(now_s, prompt, output, cls, CANDIDATE if self.switched and self._candidate_ready() else None)
        elif spec.mode == "shadow":
            pool.arrive(now_s, prompt, output, cls, BASELINE)
            if self.rng.random() * 100 < spec.percent:
                self.shadow_copies += 1
                pool.arrive(now_s, prompt, output, -1, CANDIDATE)
        else:
            take = self._candidate_ready() and self.rng.random() * 100 < traffic_percent(spec, self.state)
            pool.arrive(now_s, prompt, output, cls, CANDIDATE if take else BASELINE)

    def observe(self, variant: str, done: list[Running], now_s: float) -> None:
        arm = self.samples[CANDIDATE if variant == CANDIDATE else BASELINE]
        for item in done:
            arm.append((now_s, now_s - item[2], True))

    def tick(self, now_s: float) -> None:
        if not self.active or not self._switch_to_green(now_s):
            return
        window = self.spec.rollback.window_s
        stats = {arm: arm_stats(list(s), (s[-1][0] if s else now_s) - window) for arm, s in self.samples.items()}
        self.state, event = step_rollout(self.spec, self.state, stats[BASELINE], stats[CANDIDATE], now_s)
        if event is None:
            return
        self.events.append((now_s, event))
        pool = self.pool
        if self.state.status == "promoted":
            pool.retarget(now_s, candidates=0, variant=CANDIDATE, hold_old=False)
        elif self.state.status == "rolled_back":
            back = pool.target.variant if pool.target.variant != CANDIDATE else "default"
            pool.retarget(now_s, candidates=0, variant=back, hold_old=False)

    def _switch_to_green(self, now_s: float) -> bool:
        if self.switched:
            return True
        baseline_ready = any(r.variant != CANDIDATE and r.state is ReplicaState.READY
                             for r in self.pool.replicas.values())
        enough = len(self.samples[BASELINE]) >= self.spec.rollback.min_requests
        if baseline_ready and (enough or now_s - self.state.step_started_s >= self.spec.step_interval_s):
            self.events.append((now_s, "blue-green: green takes all traffic once ready"))
            self.pool.retarget(now_s, variant=CANDIDATE, hold_old=True)
            self.state = RolloutState(step_started_s=now_s)
            self.switched = True
        return self.switched
