"""``ebbtide calibrate --cold-starts N``: start a pool's replica N times on this machine and record each start's
phases (``serve/control/phases.py``), so the twin can use measured cold starts instead of cited ones.

Each start runs through the same fleet ``ebbtide serve`` uses (local provider): scale 0 → 1, wait ready (the
1-token warm-up included), record, scale back to 0. The result has every start's phases, the median of each,
and a ``sim.cold_start`` block (``kind: empirical``, the measured totals) to paste into the pool's config.

Usage: ``result = asyncio.run(record_starts(pool, 5, state_dir))``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["record_starts", "starts_table"]

START_DEADLINE_S = 1800.0


async def record_starts(pool: Any, count: int, state_dir: Path, progress: Callable[[str], None] = print) -> list[
        dict[str, float]]:  # fmt: skip
    """The phases of ``count`` cold starts of ``pool`` (a ``PoolSpec``), one after another."""
    import aiohttp

    starts: list[dict[str, float]] = []
    async with aiohttp.ClientSession() as session:
        for k in range(count):
            phases = await _one_start(pool, f"calibrate-{k}", session, state_dir)
            starts.append(phases)
            progress(f"start {k + 1}/{count}: " + ", ".join(f"{n} {s:.2f} s" for n, s in phases.items()))
    return starts


async def _one_start(pool: Any, prefix: str, session: Any, state_dir: Path) -> dict[str, float]:
    from ebbtide.core.signals import ReplicaState
    from ebbtide.core.standby import COLD, StandbyWish
    from ebbtide.engines import build_engine
    from ebbtide.providers.local import LocalProvider
    from ebbtide.serve.control.fleet import Fleet

    recorded: list[dict[str, float]] = []
    ids = iter(range(1_000_000))
    fleet = Fleet(pool, LocalProvider(state_dir), build_engine(pool.engine), session, lambda *a: None,
                  lambda: f"{prefix}-{next(ids)}", 10,
                  record_phases=lambda replica, kind, phases: recorded.append(phases))  # fmt: skip
    try:
        fleet.set_desired(1, standby=StandbyWish(COLD, 0))
        deadline = time.monotonic() + min(pool.replica.startup_timeout_s, START_DEADLINE_S)
        while not recorded:
            if any(r.state is ReplicaState.FAILED for r in fleet.replicas.values()):
                raise RuntimeError(f"{prefix} failed: see {state_dir / 'logs'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{prefix} not ready within {pool.replica.startup_timeout_s:g} s")
            await asyncio.sleep(0.05)
    finally:
        await fleet.close()
    return recorded[0]


def starts_table(pool_name: str, starts: list[dict[str, float]]) -> dict[str, Any]:
    """The JSON written by ``ebbtide calibrate --cold-starts``."""
    from ebbtide.serve.control.phases import PHASES

    totals = [round(sum(s.values()), 3) for s in starts]
    medians = {n: round(statistics.median(s.get(n, 0.0) for s in starts), 4) for n in PHASES
               if any(n in s for s in starts)}  # fmt: skip
    return {
        "pool": pool_name,
        "starts": [{k: round(v, 4) for k, v in s.items()} for s in starts],
        "median_s": medians,
        "total_median_s": round(statistics.median(totals), 3),
        "sim_cold_start": {"kind": "empirical", "samples_s": totals},
    }
