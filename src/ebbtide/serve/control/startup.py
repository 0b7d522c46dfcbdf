"""A replica's way to ready for one pool's fleet: launch, watch health, warm up, time the phases, and — for the
standby reserve — park it once loaded and wake it when the fleet plan promotes it.

- **cold start**: ``launch`` asks the provider for the process, ``watch_ready`` polls health (``listening`` at
  the first answer, ``health_ok`` at the first 200), sends one 1-token warm-up request (``first_token``),
  reads the worker's own milestones from the provider and records every phase (``serve/control/phases.py``)
  before the replica takes traffic.
- **standby start** (``Start(..., standby=tier)``): ``hot`` is a cold start that ends paused (the engine's
  ``pause`` style: the provider's SIGSTOP, or the engine's sleep endpoint); ``warm`` only stages the weights on
  a node (``provider.stage``) and starts no engine. Either way the replica is parked (``standby``) and paid at
  its tier's price.
- **promotion** (``Promote``): a member still loading just serves once ready; a parked hot one is resumed (or
  woken) and routed at its first health 200 (``wake``); a parked warm one is launched from local disk like a
  cold start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from ebbtide.core.signals import ReplicaState
from ebbtide.core.standby import HOT, WARM
from ebbtide.engines.base import Health
from ebbtide.providers.base import Launched
from ebbtide.serve.control.phases import phase_durations, worker_milestones
from ebbtide.serve.gateway.broker import Replica

if TYPE_CHECKING:
    from ebbtide.serve.control.fleet import Fleet

__all__ = ["PhaseSink", "Startup"]

# (replica, kind of start: "cold" | "standby-hot" | "standby-warm" | "wake-hot" | "wake-warm", phase → seconds)
PhaseSink = Callable[[Replica, str, dict[str, float]], None]
STARTUP_POLL_S = 0.05
PHASES_WAIT_S = 1.0  # the worker writes its milestones right after its server is up: allow it that long


class Startup:
    def __init__(self, fleet: Fleet, record: PhaseSink) -> None:
        self.fleet = fleet
        self.record = record

    def _since(self, replica: Replica) -> float:
        return self.fleet.clock.now() - (replica.woke_at if replica.woke_at is not None else replica.requested_at)

    def _mark(self, replica: Replica, milestone: str) -> None:
        replica.milestones.setdefault(milestone, self._since(replica))

    async def launch(self, replica: Replica) -> None:
        fleet = self.fleet
        if replica.standby == WARM:
            await self._stage_warm(replica)
            return
        try:
            launched = await fleet.provider.launch(fleet.pool, fleet.engine_of(replica), replica.replica_id)
        except Exception as exc:
            fleet.fail(replica, f"launch failed: {exc}")
            return
        self._mark(replica, "provision")
        replica.base_url, replica.handle = launched.base_url, dict(launched.handle)
        if replica.state is not ReplicaState.REQUESTED:
            await fleet.provider.terminate(launched, fleet.pool.replica.stop_grace_s)
            return
        replica.state = ReplicaState.STARTING
        fleet.emit("starting", replica, f"{launched.base_url} {launched.handle}")
        await self.watch_ready(replica, launched, adopted=False)

    async def watch_ready(self, replica: Replica, launched: Launched, adopted: bool) -> None:
        fleet = self.fleet
        since = replica.woke_at if replica.woke_at is not None else replica.requested_at
        deadline = since + fleet.pool.replica.startup_timeout_s
        while replica.state is ReplicaState.STARTING:
            if not await fleet.provider.alive(launched):
                fleet.fail(replica, "process exited during startup")
                return
            health = await fleet.engine_of(replica).health(fleet.session, replica.base_url)
            if health is not Health.DOWN:
                self._mark(replica, "listening")
            if health is Health.READY:
                self._mark(replica, "health_ok")
                if not adopted:
                    await self._warm_up(replica)
                    await self._record_start(replica, launched)
                await self._loaded(replica, launched, adopted)
                return
            if fleet.clock.now() > deadline:
                fleet.fail(replica, f"not ready within startup_timeout_s {fleet.pool.replica.startup_timeout_s:g}")
                return
            await asyncio.sleep(STARTUP_POLL_S)

    async def _warm_up(self, replica: Replica) -> None:
        """One 1-token request before any client's: its answer is the ``first_token`` milestone."""
        engine = self.fleet.engine_of(replica)
        if await engine.warm_up(self.fleet.session, replica.base_url):
            self._mark(replica, "first_token")
        else:
            self.fleet.emit("warm-up", replica, "the 1-token warm-up request was not answered 200; serving anyway")

    async def _record_start(self, replica: Replica, launched: Launched) -> None:
        provision = replica.milestones.get("provision")
        reported = await self._worker_phases(launched) if provision is not None else None
        if reported is not None and provision is not None:
            for name, at in worker_milestones(reported, provision).items():
                replica.milestones.setdefault(name, at)
        kind = "wake-warm" if replica.woke_at is not None else (f"standby-{replica.standby}" if replica.standby
                                                                 else "cold")
        self.record(replica, kind, phase_durations(replica.milestones))

    async def _worker_phases(self, launched: Launched) -> dict[str, object] | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PHASES_WAIT_S
        while True:
            reported = await self.fleet.provider.phases(launched)
            if reported is None or "weights_loaded" in reported or loop.time() >= deadline:
                return reported
            await asyncio.sleep(STARTUP_POLL_S)

    async def _loaded(self, replica: Replica, launched: Launched, adopted: bool) -> None:
        """Health 200 (and warmed up): park a standby-bound replica, else route to it."""
        if replica.state is not ReplicaState.STARTING:
            return  # drained or failed meanwhile
        if replica.standby is not None:
            await self._park(replica, launched)
            return
        self._serve(replica, "adopted" if adopted else "ready")

    def _serve(self, replica: Replica, kind: str) -> None:
        fleet = self.fleet
        replica.state, replica.ready_at = ReplicaState.READY, fleet.clock.now()
        took = replica.ready_at - (replica.woke_at if replica.woke_at is not None else replica.requested_at)
        woke = f" (woken from {replica.parked} standby)" if replica.woke_at is not None else ""
        fleet.emit(kind, replica, f"ready after {took:.2f}s{woke}")
        fleet.reconcile()  # as the twin: plan first (old variant may drain), then serve the queue
        fleet.broker.wake()

    async def _park(self, replica: Replica, launched: Launched) -> None:
        fleet = self.fleet
        tier = replica.standby
        try:
            await self._pause(replica, launched)
        except Exception as exc:
            fleet.fail(replica, f"could not pause it for standby: {exc}")
            return
        if replica.state is not ReplicaState.STARTING:
            return
        if replica.standby is None:  # promoted while it was being paused
            await self._resume(replica, launched)
            self._serve(replica, "ready")
            return
        self._set_parked(replica, tier or HOT)

    def _set_parked(self, replica: Replica, tier: str) -> None:
        fleet = self.fleet
        replica.state, replica.parked = ReplicaState.STANDBY, tier
        replica.handle["standby"] = tier  # kept in the store: a restarted controller adopts it as standby
        fleet.reprice(replica)
        fleet.emit("standby", replica, f"parked as {tier} standby")
        fleet.reconcile()

    async def _stage_warm(self, replica: Replica) -> None:
        fleet = self.fleet
        replica.state = ReplicaState.STARTING
        try:
            await fleet.provider.stage(fleet.pool, fleet.engine_of(replica), replica.replica_id)
        except Exception as exc:
            fleet.fail(replica, f"staging weights for a warm standby failed: {exc}")
            return
        self._mark(replica, "weights_staged")
        self.record(replica, "standby-warm", phase_durations(replica.milestones))
        if replica.state is not ReplicaState.STARTING:
            return
        if replica.standby is None:  # promoted while staging: start it now, from local disk
            await self._launch_now(replica)
            return
        self._set_parked(replica, WARM)

    async def _launch_now(self, replica: Replica) -> None:
        replica.state, replica.woke_at, replica.milestones = ReplicaState.REQUESTED, self.fleet.clock.now(), {}
        await self.launch(replica)

    async def _pause(self, replica: Replica, launched: Launched) -> None:
        engine = self.fleet.engine_of(replica)
        if engine.pause == "http":
            await engine.sleep(self.fleet.session, replica.base_url)
        elif engine.pause == "signal":
            await self.fleet.provider.pause(launched)

    async def _resume(self, replica: Replica, launched: Launched) -> None:
        engine = self.fleet.engine_of(replica)
        if engine.pause == "http":
            await engine.wake(self.fleet.session, replica.base_url)
        elif engine.pause == "signal":
            await self.fleet.provider.resume(launched)

    def promote(self, replica: Replica, reason: str) -> None:
        """Carry out ``Promote``: the replica serves as soon as it can (module docstring)."""
        fleet = self.fleet
        replica.standby = None
        if replica.state is not ReplicaState.STANDBY:
            fleet.emit("promoted", replica, f"{reason} (still loading: serves once ready)")
            return
        replica.state, replica.woke_at = ReplicaState.STARTING, fleet.clock.now()
        fleet.reprice(replica)
        fleet.emit("promoted", replica, reason)
        fleet.spawn(self._wake(replica))

    async def _wake(self, replica: Replica) -> None:
        fleet = self.fleet
        if replica.parked == WARM:
            await self._launch_now(replica)
            return
        launched = fleet.launched(replica)
        replica.milestones = {}
        try:
            await self._resume(replica, launched)
        except Exception as exc:
            fleet.fail(replica, f"could not wake it from standby: {exc}")
            return
        deadline = replica.woke_at + fleet.pool.replica.startup_timeout_s if replica.woke_at else 0.0
        while replica.state is ReplicaState.STARTING:
            if await fleet.engine_of(replica).health(fleet.session, replica.base_url) is Health.READY:
                self._mark(replica, "wake")
                self.record(replica, "wake-hot", phase_durations(replica.milestones))
                self._serve(replica, "ready")
                return
            if fleet.clock.now() > deadline or not await fleet.provider.alive(launched):
                fleet.fail(replica, "did not wake from standby")
                return
            await asyncio.sleep(STARTUP_POLL_S)
