"""The only place serve/ reads time. Everything else takes a ``Clock`` (injected), so tests can run serve's
lifecycle, admission and decisions on a ``ManualClock``.

``Clock.now()`` is epoch seconds (events, the store, replica timestamps); ``Clock.monotonic()`` measures durations
(request latency, slot time, drain and quota deadlines). ``PolicyClock`` runs policy time ``scale`` × faster
than its source clock (``--time-scale``).
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "PolicyClock", "WallClock"]


class Clock(Protocol):
    def now(self) -> float: ...

    def monotonic(self) -> float: ...


class WallClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock a test moves by hand: ``now()`` and ``monotonic()`` are the same virtual seconds."""

    def __init__(self, start_s: float = 0.0) -> None:
        self.t = start_s

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"seconds = {seconds}: a clock does not go back")
        self.t += seconds


class PolicyClock:
    """Policy seconds: the source's epoch at start, then ``scale`` policy seconds per source second."""

    def __init__(self, scale: float = 1.0, source: Clock | None = None) -> None:
        self.scale = scale
        self.source = source or WallClock()
        self._epoch0 = self.source.now()
        self._mono0 = self.source.monotonic()

    def now(self) -> float:
        return self._epoch0 + (self.source.monotonic() - self._mono0) * self.scale
