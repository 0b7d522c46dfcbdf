"""The only place serve/ reads time. ``WallClock`` for events; ``PolicyClock`` runs policy time ``scale`` × faster."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["PolicyClock", "WallClock"]


class WallClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class PolicyClock:
    """Policy seconds: epoch at start, then ``scale`` policy seconds per wall second (``--time-scale``)."""

    scale: float = 1.0
    _epoch0: float = field(default_factory=time.time)
    _mono0: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return self._epoch0 + (time.monotonic() - self._mono0) * self.scale
