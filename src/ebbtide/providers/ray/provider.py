"""Ray provider: each replica is a detached, named Ray actor, placed by the pool's resources on a cluster.

The actor (``host.ReplicaHost``) starts the engine's server on its node, bound to the node's IP on a
port picked there, and the gateway routes to ``http://<node ip>:<port>``. Lifecycle (startup timeout,
health, drain, replace) stays in ``serve/control/fleet.py``: losing a node kills its actors, ``alive`` turns False
and the fleet replaces the replica wherever the cluster has room. Actors are named and detached so a
restarted controller can adopt them (DESIGN §7); the controller's lease (``renew``) keeps them, and an actor
not renewed for ``orphan_grace_s`` stops its server and exits, so nothing outlives a dead controller for
long.

A hot standby pauses and resumes the server through its actor (SIGSTOP/SIGCONT of the server's process group
on its node). A warm standby (``stage``) runs the stage-only command in a short-lived actor placed like a
replica, so the weights land in that node's cache; the replica it later becomes is placed by Ray again, so on a
cluster of several nodes it may start on another node (and fetch there): no node affinity is kept.

Ray is imported lazily: without the ``ray`` extra, building this provider raises ``RayUnavailable``. Ray
calls that can block (connect, create, look up, kill) run in a worker thread; method calls are awaited as
ObjectRefs.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from ebbtide.config import PoolSpec, RayPlacementSpec, RayProviderSpec, VllmEngineSpec
from ebbtide.engines.base import Engine
from ebbtide.providers.base import Launched
from ebbtide.providers.local import LocalProvider
from ebbtide.providers.ray.host import ReplicaHost

__all__ = ["INSTALL_HINT", "RayProvider", "RayUnavailable", "actor_options", "bind_host", "import_ray"]

INSTALL_HINT = "provider kind ray needs Ray on this machine: pip install 'ebbtide[ray]'"
CALL_TIMEOUT_S = 10.0


class RayUnavailable(RuntimeError):
    """The Ray provider was selected but Ray cannot be imported (the ``ray`` extra is not installed)."""


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable(f"{INSTALL_HINT} ({exc})") from None
    return ray


def actor_options(pool: PoolSpec) -> dict[str, Any]:
    """Ray resource options for one replica of ``pool``: GPUs default to vLLM's tensor-parallel degree."""
    placement = _placement(pool)
    gpus = placement.num_gpus
    if gpus is None:
        gpus = float(pool.engine.tensor_parallel) if isinstance(pool.engine, VllmEngineSpec) else 0.0
    opts: dict[str, Any] = {"num_cpus": placement.num_cpus, "num_gpus": gpus}
    opts["resources"] = dict(placement.resources)
    if placement.strategy == "spread":
        opts["scheduling_strategy"] = "SPREAD"
    return opts


def bind_host(argv: list[str], host: str) -> list[str]:
    """Point the engine's listen-address flag at ``host`` (the node's IP): the gateway may be elsewhere."""
    out = list(argv)
    for flag in ("--host", "--hostname"):
        if flag in out[:-1]:
            out[out.index(flag) + 1] = host
    return out


def _placement(pool: PoolSpec) -> RayPlacementSpec:
    return pool.ray or RayPlacementSpec.model_validate({})


def _threads(pool: PoolSpec) -> int:
    explicit = getattr(pool.engine, "threads", None)
    return int(explicit) if explicit else max(1, math.ceil(_placement(pool).num_cpus))


class RayProvider:
    """Usage: ``provider = RayProvider(cfg.provider, state_dir)``; the first ``launch`` joins the cluster."""

    name = "ray"

    def __init__(
        self, spec: RayProviderSpec, state_dir: Path, *, call_timeout_s: float = CALL_TIMEOUT_S
    ) -> None:
        self._ray = import_ray()
        self.spec = spec
        self.state_dir = state_dir
        self.call_timeout_s = call_timeout_s
        self._connected = False
        self._connect_lock = asyncio.Lock()
        self._host_cls: Any = None
        self._actors: dict[str, Any] = {}

    async def connect(self) -> None:
        async with self._connect_lock:
            if self._connected:
                return
            await asyncio.to_thread(
                self._ray.init, address=self.spec.address, namespace=self.spec.namespace,
                log_to_driver=False, ignore_reinit_error=True,
            )  # fmt: skip
            self._host_cls = self._ray.remote(ReplicaHost)
            self._connected = True

    async def launch(self, pool: PoolSpec, engine: Engine, replica_id: str) -> Launched:
        if not engine.launches:
            url = getattr(pool.engine, "url", "").rstrip("/")
            return Launched(replica_id, pool.name, url, {"external": 1})
        await self.connect()
        name = f"ebbtide-{replica_id}-{uuid.uuid4().hex[:8]}"
        opts = actor_options(pool)
        actor = await asyncio.to_thread(self._create, name, opts, replica_id, pool.replica.orphan_grace_s)
        self._actors[replica_id] = actor
        try:
            try:
                info = await asyncio.wait_for(actor.prepare.remote(), pool.replica.startup_timeout_s)
            except TimeoutError:
                raise TimeoutError(
                    f"no Ray node could host the replica ({_describe(opts)}) within startup_timeout_s "
                    f"{pool.replica.startup_timeout_s:g}"
                ) from None
            plan = engine.launch_plan(int(info["port"]), _threads(pool), Path(info["lease"]))
            argv = LocalProvider._with_lease_timeout(plan.argv, pool.replica.orphan_grace_s)
            argv = bind_host(argv, info["node_ip"])
            started = actor.start.remote(argv, plan.env, sys.executable)
            pid = await asyncio.wait_for(started, self.call_timeout_s)
        except BaseException:
            self._actors.pop(replica_id, None)
            await self._kill(actor)
            raise
        handle: dict[str, str | int | float] = {
            "actor": name, "namespace": self.spec.namespace, "node_id": str(info["node_id"]),
            "node_ip": str(info["node_ip"]), "server_pid": int(pid),
        }  # fmt: skip
        return Launched(replica_id, pool.name, f"http://{info['node_ip']}:{info['port']}", handle)

    async def pause(self, launched: Launched) -> None:
        await self._call(launched, "pause")

    async def resume(self, launched: Launched) -> None:
        await self._call(launched, "resume")

    async def phases(self, launched: Launched) -> dict[str, Any] | None:
        found = await self._call(launched, "phases")
        return found if isinstance(found, dict) else None

    async def stage(self, pool: PoolSpec, engine: Engine, replica_id: str) -> None:
        plan = engine.stage_plan()
        if plan is None:
            return
        await self.connect()
        name = f"ebbtide-stage-{replica_id}-{uuid.uuid4().hex[:8]}"
        actor = await asyncio.to_thread(self._create, name, actor_options(pool), replica_id,
                                        pool.replica.orphan_grace_s)
        try:
            await asyncio.wait_for(actor.prepare.remote(), pool.replica.startup_timeout_s)
            code = await asyncio.wait_for(actor.stage.remote(plan.argv, plan.env, sys.executable),
                                          pool.replica.startup_timeout_s)
            if code != 0:
                tail = await asyncio.wait_for(actor.log_tail.remote(), self.call_timeout_s)
                raise RuntimeError(f"staging weights for {replica_id} exited {code}: {tail[-600:]}")
        finally:
            await self._kill(actor)

    async def _call(self, launched: Launched, method: str) -> Any:
        actor = await self._actor(launched)
        if actor is None:
            return None
        with contextlib.suppress(TimeoutError, self._ray.exceptions.RayError):
            return await asyncio.wait_for(getattr(actor, method).remote(), self.call_timeout_s)
        return None

    def _create(self, name: str, opts: dict[str, Any], replica_id: str, grace_s: float) -> Any:
        return self._host_cls.options(
            name=name, namespace=self.spec.namespace, lifetime="detached", max_restarts=0, **opts
        ).remote(replica_id, grace_s)

    async def terminate(self, launched: Launched, grace_s: float) -> None:
        actor = await self._actor(launched)
        if actor is None:
            return
        with contextlib.suppress(TimeoutError, self._ray.exceptions.RayError):
            await asyncio.wait_for(actor.stop.remote(grace_s), grace_s + self.call_timeout_s)
        self._actors.pop(launched.replica_id, None)
        await self._kill(actor)

    async def alive(self, launched: Launched) -> bool:
        if "actor" not in launched.handle:
            return True
        actor = await self._actor(launched)
        if actor is None:
            return False
        try:
            return bool(await asyncio.wait_for(actor.running.remote(), self.call_timeout_s))
        except (TimeoutError, self._ray.exceptions.RayError):
            # An actor that cannot answer a trivial call in time is as good as gone (its node is likely lost).
            return False

    async def renew(self, launched: Launched) -> None:
        actor = await self._actor(launched)
        if actor is not None:
            with contextlib.suppress(TimeoutError, self._ray.exceptions.RayError):
                await asyncio.wait_for(actor.renew.remote(), self.call_timeout_s)

    async def log_tail(self, launched: Launched) -> str:
        actor = await self._actor(launched)
        if actor is None:
            return ""
        with contextlib.suppress(TimeoutError, self._ray.exceptions.RayError):
            return str(await asyncio.wait_for(actor.log_tail.remote(), self.call_timeout_s))
        return ""

    async def close(self) -> None:
        self._actors.clear()
        if self._connected:
            self._connected = False
            await asyncio.to_thread(self._ray.shutdown)

    async def _actor(self, launched: Launched) -> Any:
        """The replica's actor handle: ours, or looked up by name (adopted after a controller restart)."""
        if "actor" not in launched.handle:
            return None
        actor = self._actors.get(launched.replica_id)
        if actor is not None:
            return actor
        await self.connect()
        name = str(launched.handle["actor"])
        namespace = str(launched.handle.get("namespace", self.spec.namespace))
        try:
            actor = await asyncio.to_thread(self._ray.get_actor, name, namespace)
        except ValueError:
            return None
        self._actors[launched.replica_id] = actor
        return actor

    async def _kill(self, actor: Any) -> None:
        with contextlib.suppress(self._ray.exceptions.RayError, ValueError):
            await asyncio.to_thread(self._ray.kill, actor, no_restart=True)


def _describe(opts: dict[str, Any]) -> str:
    parts = [f"num_cpus={opts['num_cpus']:g}", f"num_gpus={opts['num_gpus']:g}"]
    parts += [f"{k}={v:g}" for k, v in sorted(opts["resources"].items())]
    return ", ".join(parts)
