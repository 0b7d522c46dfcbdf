"""One sentence per scaling decision, e.g.
"scale out 2→3: target_tracking saw 812 invocations/replica/min > 600 for 3 min; schedule min 2 (morning-pre-warm)".
Works on the stored (dict) form of a decision so the CLI, admin API and dashboard share it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["explain"]


def explain(d: Mapping[str, Any]) -> str:
    current, desired = int(d["current"]), int(d["desired"])
    opinions: list[Mapping[str, Any]] = list(d.get("opinions", []))
    if desired > current:
        head = f"scale out {current}→{desired}"
    elif desired < current:
        head = f"scale in {current}→{desired}"
    else:
        head = f"hold {current}"
    drivers = [o for o in opinions if o.get("desired") is not None and _pushes(o["desired"], current, desired)]
    parts = [f"{o['policy']} {o['reason']}" for o in drivers] or [
        f"{o['policy']} {o['reason']}" for o in opinions if o.get("desired") is not None
    ]
    if d.get("bounds_source", "static") != "static" or _clamped(d, opinions):
        parts.append(f"bounds {d['min_replicas']}-{d['max_replicas']} from {d.get('bounds_source', 'static')}")
    if d.get("blocked_by"):
        parts.append(f"blocked by {d['blocked_by']}")
    parts.extend(d.get("notes", []))
    return f"{head}: " + "; ".join(parts) if parts else head


def _pushes(opinion: int, current: int, desired: int) -> bool:
    if desired > current:
        return opinion > current
    if desired < current:
        return opinion < current
    return opinion != current


def _clamped(d: Mapping[str, Any], opinions: list[Mapping[str, Any]]) -> bool:
    wanted = [o["desired"] for o in opinions if o.get("desired") is not None]
    return bool(wanted) and not d["min_replicas"] <= max(wanted) <= d["max_replicas"]
