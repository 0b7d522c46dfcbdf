"""Drives a pool's rollout (core/rollout.py) live: which arm a request takes, shadow copies, per-tick verdicts."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from typing import Any

import aiohttp

from ebbtide.core.rollout import RolloutState, arm_stats, step_rollout, traffic_percent
from ebbtide.serve.broker import ANY, Arm, QueueFull
from ebbtide.serve.fleet import CANDIDATE, Fleet

__all__ = ["BASELINE_ARM", "CANDIDATE_ARM", "RolloutDriver"]

BASELINE_ARM = Arm(avoid=CANDIDATE)
CANDIDATE_ARM = Arm(only=CANDIDATE)
SHADOW_WAIT_S = 30.0


class RolloutDriver:
    """Usage: ``driver = RolloutDriver(spec, fleet, rng)``; per request ``arm = driver.arm()``; ``driver.record``;
    each tick ``driver.tick(now)``."""

    def __init__(self, spec: Any, fleet: Fleet, rng: random.Random) -> None:
        self.spec = spec
        self.fleet = fleet
        self.rng = rng
        self.state = RolloutState(step_started_s=time.monotonic())
        self.samples: dict[str, deque[tuple[float, float, bool]]] = {
            "baseline": deque(maxlen=10_000), "candidate": deque(maxlen=10_000),
        }
        self._shadows: set[asyncio.Task[None]] = set()
        fleet.emit("rollout", None, f"{spec.mode} of candidate started")
        if spec.mode == "blue-green":
            fleet.switch_variant(CANDIDATE, "blue-green: green takes all traffic once ready", hold_old=True)
        else:
            fleet.set_candidates(spec.replicas)

    @property
    def active(self) -> bool:
        return self.state.status == "running"

    def arm(self) -> Arm:
        if self.state.status == "promoted" or (not self.active and self.spec.mode == "blue-green"):
            return ANY
        if not self.active or self.spec.mode != "canary":
            return BASELINE_ARM if self.spec.mode == "shadow" and self.active else ANY
        ready = any(r.variant == CANDIDATE and r.state == "ready" for r in self.fleet.live_replicas())
        take = ready and self.rng.random() * 100 < traffic_percent(self.spec, self.state)
        return CANDIDATE_ARM if take else BASELINE_ARM

    def arm_name(self, replica_variant: str) -> str:
        return "candidate" if replica_variant == CANDIDATE else "baseline"

    def record(self, replica_variant: str, latency_s: float, ok: bool) -> None:
        self.samples[self.arm_name(replica_variant)].append((time.monotonic(), latency_s, ok))

    def want_shadow(self) -> bool:
        return self.active and self.spec.mode == "shadow" and self.rng.random() * 100 < self.spec.percent

    def mirror(self, session: aiohttp.ClientSession, path: str, raw: bytes) -> None:
        task = asyncio.ensure_future(self._mirror(session, path, raw))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _mirror(self, session: aiohttp.ClientSession, path: str, raw: bytes) -> None:
        broker = self.fleet.broker
        try:
            replica = await broker.acquire(SHADOW_WAIT_S, arm=CANDIDATE_ARM, priority_class="shadow")
        except (QueueFull, TimeoutError):
            return
        started = time.monotonic()
        ok = False
        try:
            async with session.post(replica.base_url + path, data=raw,
                                    headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                ok = resp.status < 500
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        finally:
            broker.release(replica)
            self.samples["candidate"].append((time.monotonic(), time.monotonic() - started, ok))

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.spec.mode, "status": self.state.status, "step": self.state.step,
            "traffic_percent": traffic_percent(self.spec, self.state), "reason": self.state.reason,
            "requests": {arm: len(samples) for arm, samples in self.samples.items()},
        }

    def tick(self) -> None:
        if not self.active:
            return
        now = time.monotonic()
        window = self.spec.rollback.window_s
        stats = {}
        for arm, samples in self.samples.items():
            last = samples[-1][0] if samples else now
            stats[arm] = arm_stats(list(samples), last - window)
        self.state, event = step_rollout(self.spec, self.state, stats["baseline"], stats["candidate"], now)
        if event is None:
            return
        self.fleet.emit("rollout", None, event)
        if self.state.status == "promoted":
            self.fleet.set_candidates(0)
            self.fleet.switch_variant(CANDIDATE, "promoted", hold_old=False)
        elif self.state.status == "rolled_back":
            self.fleet.set_candidates(0)
            if self.fleet.variant == CANDIDATE:
                self.fleet.switch_variant(self.fleet.previous_variant, "rolled back", hold_old=False)
