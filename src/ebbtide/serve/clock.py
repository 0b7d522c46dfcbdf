"""The only place serve/ reads time. Everything else takes a ``Clock`` (injected), so tests can run serve's
lifecycle, admission and decisions on a ``ManualClock``.

``Clock.now()`` is epoch seconds (events, the store, replica timestamps); ``Clock.monotonic()`` measures durations
(request latency, slot time, drain and quota deadlines); ``Clock.wait_for(awaitable, timeout_s)`` is a deadline on
that clock (a queued request's). ``PolicyClock`` runs policy time ``scale`` × faster than its source clock
(``--time-scale``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

__all__ = ["Clock", "ManualClock", "PolicyClock", "WallClock"]

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> float: ...

    def monotonic(self) -> float: ...

    async def wait_for(self, awaitable: Awaitable[T], timeout_s: float) -> T: ...


class WallClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def wait_for(self, awaitable: Awaitable[T], timeout_s: float) -> T:
        return await asyncio.wait_for(awaitable, timeout_s)


class ManualClock:
    """A clock a test moves by hand: ``now()`` and ``monotonic()`` are the same virtual seconds."""

    def __init__(self, start_s: float = 0.0) -> None:
        self.t = start_s
        self._timers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    async def wait_for(self, awaitable: Awaitable[T], timeout_s: float) -> T:
        """TimeoutError once ``advance`` reaches ``timeout_s`` from now (the awaitable is then cancelled)."""
        task = asyncio.ensure_future(awaitable)
        timer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.t + timeout_s, timer)
        self._timers.append(entry)
        either: set[asyncio.Future[Any]] = {task, timer}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._timers.remove(entry)
        if task.done():
            return task.result()
        task.cancel()
        raise TimeoutError

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"seconds = {seconds}: a clock does not go back")
        self.t += seconds
        for due_s, timer in self._timers:
            if due_s <= self.t and not timer.done():
                timer.set_result(None)


class PolicyClock:
    """Policy seconds: the source's epoch at start, then ``scale`` policy seconds per source second."""

    def __init__(self, scale: float = 1.0, source: Clock | None = None) -> None:
        self.scale = scale
        self.source = source or WallClock()
        self._epoch0 = self.source.now()
        self._mono0 = self.source.monotonic()

    def now(self) -> float:
        return self._epoch0 + (self.source.monotonic() - self._mono0) * self.scale
