"""Per-phase timing of replica starts: milestones on the fleet's clock → how long each phase took.

A start reaches milestones, each in seconds after the start was asked for (the scale decision):

- ``provision`` — the provider placed the process (local: spawned; Ray: an actor on a node, then spawned);
- ``process_start`` — the worker's interpreter runs; ``engine_import`` — the engine is imported;
  ``weights_staged`` — remote weights fetched, verified and read into the page cache (or found in the node's
  cache; a local file: at once); ``weights_loaded`` — the engine constructed with its model. These four are
  written by the worker (``--phases``, wall-clock epochs on its node) and placed on the fleet's clock through
  the provider's ``spawned`` epoch, taken on the same node;
- ``listening`` — the first answer on its port (LOADING or READY); ``health_ok`` — the first health 200;
- ``first_token`` — the answer to one 1-token warm-up request, sent before the replica takes traffic.

A phase's duration is the time from the milestone reached just before it (in time order) to it, so the phases
add up to the whole start, and a phase that overlaps an earlier one is not counted twice (llama.cpp listens while
it loads: ``listening`` comes before ``weights_loaded``, which then counts from there). A promotion from a hot
standby records ``wake`` (promotion → health 200); a warm one records a start from local disk like a cold start.

Usage: ``durations = phase_durations({"provision": 0.01, "health_ok": 3.2})``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "PHASES",
    "PHASE_COLUMNS",
    "WORKER_MILESTONES",
    "format_phases",
    "phase_durations",
    "phase_rows",
    "worker_milestones",
]

PHASES = ("provision", "process_start", "engine_import", "weights_staged", "weights_loaded", "listening",
          "health_ok", "first_token", "wake")  # fmt: skip
WORKER_MILESTONES = {"started": "process_start", "engine_import": "engine_import",
                     "weights_staged": "weights_staged", "weights_loaded": "weights_loaded"}  # fmt: skip


def phase_durations(milestones: Mapping[str, float]) -> dict[str, float]:
    """Each reached milestone's phase duration (seconds), in time order; phases sum to the last milestone."""
    ordered = sorted(milestones.items(), key=lambda kv: (kv[1], PHASES.index(kv[0]) if kv[0] in PHASES else 99))
    out: dict[str, float] = {}
    previous = 0.0
    for name, at_s in ordered:
        out[name] = max(0.0, at_s - previous)
        previous = max(previous, at_s)
    return out


def worker_milestones(reported: Mapping[str, Any], spawned_after_s: float) -> dict[str, float]:
    """The worker's epoch milestones as seconds after the request, given that its ``spawned`` epoch (taken by
    the provider on the same node) fell ``spawned_after_s`` after the request. Missing or odd entries are left
    out: timing is informative, never a reason to fail a start."""
    spawned = reported.get("spawned")
    if not isinstance(spawned, int | float):
        return {}
    out: dict[str, float] = {}
    for key, name in WORKER_MILESTONES.items():
        at = reported.get(key)
        if isinstance(at, int | float) and at >= spawned:
            out[name] = spawned_after_s + (at - spawned)
    return out


def format_phases(durations: Mapping[str, float]) -> str:
    """``provision 0.01 s · engine_import 0.08 s · ... = 3.40 s`` in the canonical phase order."""
    parts = [f"{name} {durations[name]:.2f} s" for name in PHASES if name in durations]
    return " · ".join(parts) + f" = {sum(durations.values()):.2f} s" if parts else "-"


PHASE_COLUMNS = ("replica", "start", *PHASES, "total")


def phase_rows(starts: list[dict[str, Any]]) -> list[list[str]]:
    """Table rows (``PHASE_COLUMNS``) for stored starts (``Store.start_phases``): seconds, "-" where absent."""
    rows = []
    for start in starts:
        phases: dict[str, float] = start["phases"]
        cells = [f"{phases[name]:.2f}" if name in phases else "-" for name in PHASES]
        rows.append([str(start["replica_id"]), str(start["kind"]), *cells, f"{sum(phases.values()):.2f}"])
    return rows
