"""Drives a pool's rollout (core/rollout.py) live: which arm a request takes, shadow copies, per-tick verdicts."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from dataclasses import replace
from typing import Any

import aiohttp

from ebbtide.core.fleet import CANDIDATE
from ebbtide.core.rollout import RolloutSpec, RolloutState, arm_stats, step_rollout, traffic_percent
from ebbtide.serve.clock import Clock, WallClock
from ebbtide.serve.control.fleet import Fleet
from ebbtide.serve.gateway.broker import ANY, Arm, QueueFull

__all__ = ["BASELINE_ARM", "CANDIDATE_ARM", "RolloutDriver"]

BASELINE_ARM = Arm(avoid=CANDIDATE)
CANDIDATE_ARM = Arm(only=CANDIDATE)
SHADOW_WAIT_S = 30.0


class RolloutDriver:
    """Usage: ``driver = RolloutDriver(spec, fleet, rng, clock)``; per request ``arm = driver.arm()``;
    ``driver.record``; each tick ``driver.tick()``."""

    def __init__(self, spec: RolloutSpec, fleet: Fleet, rng: random.Random, clock: Clock | None = None) -> None:
        self.spec = spec
        self.fleet = fleet
        self.rng = rng
        self.clock = clock or WallClock()
        self.state = RolloutState(step_started_s=self.clock.monotonic())
        self.samples: dict[str, deque[tuple[float, float, bool]]] = {
            "baseline": deque(maxlen=10_000), "candidate": deque(maxlen=10_000),
        }
        self._shadows: set[asyncio.Task[None]] = set()
        self.started_s = self.clock.monotonic()
        self.switched = spec.mode != "blue-green"
        fleet.emit("rollout", None, f"{spec.mode} of candidate started")
        if spec.mode != "blue-green":
            fleet.set_candidates(spec.replicas)

    @property
    def active(self) -> bool:
        return self.state.status == "running"

    def _candidate_ready(self) -> bool:
        return any(r.variant == CANDIDATE and r.state == "ready" for r in self.fleet.live_replicas())

    def arm(self) -> Arm:
        """Which replicas this request may use: blue-green sends everything to green once it is ready; canary
        sends its step's share; shadow keeps live traffic on the baseline (copies go to the candidate)."""
        if not self.active:
            return ANY
        if self.spec.mode == "blue-green":
            return CANDIDATE_ARM if self.switched and self._candidate_ready() else ANY
        if self.spec.mode == "shadow":
            return BASELINE_ARM
        take = self._candidate_ready() and self.rng.random() * 100 < traffic_percent(self.spec, self.state)
        return CANDIDATE_ARM if take else BASELINE_ARM

    def arm_name(self, replica_variant: str) -> str:
        return "candidate" if replica_variant == CANDIDATE else "baseline"

    def record(self, replica_variant: str, latency_s: float, ok: bool) -> None:
        self.samples[self.arm_name(replica_variant)].append((self.clock.monotonic(), latency_s, ok))

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
        started = self.clock.monotonic()
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
            done = self.clock.monotonic()
            self.samples["candidate"].append((done, done - started, ok))

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.spec.mode, "status": self.state.status, "step": self.state.step,
            "traffic_percent": traffic_percent(self.spec, self.state), "reason": self.state.reason,
            "requests": {arm: len(samples) for arm, samples in self.samples.items()},
        }

    def _maybe_switch_to_green(self, now: float) -> bool:
        """Blue-green: switch once blue has served a baseline (min_requests, or one step interval)."""
        if self.switched:
            return True
        blue_ready = any(r.variant != CANDIDATE and r.state == "ready" for r in self.fleet.live_replicas())
        enough = len(self.samples["baseline"]) >= self.spec.rollback.min_requests
        if blue_ready and (enough or now - self.started_s >= self.spec.step_interval_s):
            self.fleet.switch_variant(CANDIDATE, "blue-green: green takes all traffic once ready", hold_old=True)
            self.state = replace(self.state, step_started_s=now)
            self.switched = True
        return self.switched

    def tick(self) -> None:
        if not self.active:
            return
        now = self.clock.monotonic()
        if not self._maybe_switch_to_green(now):
            return
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
