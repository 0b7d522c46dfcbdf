"""The twin's clock: a heap of ``(time_s, seq, kind, payload)``; ``seq`` keeps equal times in push order.

No wall clock anywhere: ``now_s`` only moves when an event is popped. Usage::

    clock = EventClock(start_s)
    clock.push(t, READY, replica_id)
    t, kind, payload = clock.pop()
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import Any

__all__ = ["COMPLETE", "DRAIN_TIMEOUT", "PREEMPT", "READY", "STARTUP_FAILED", "EventClock"]

COMPLETE = 0
READY = 1
STARTUP_FAILED = 2
DRAIN_TIMEOUT = 3
TICK = 4
MINUTE = 5
PREEMPT = 6


class EventClock:
    __slots__ = ("counter", "heap", "now_s")

    def __init__(self, start_s: float) -> None:
        self.now_s = start_s
        # The driver's hot loop pushes ``(t, next(counter), kind, payload)`` on ``heap`` directly.
        self.heap: list[tuple[float, int, int, Any]] = []
        self.counter = itertools.count()

    def push(self, at_s: float, kind: int, payload: Any) -> None:
        if at_s < self.now_s:
            raise ValueError(f"event at {at_s} is before now {self.now_s}")
        heapq.heappush(self.heap, (at_s, next(self.counter), kind, payload))

    def peek_s(self) -> float:
        return self.heap[0][0] if self.heap else math.inf

    def pop(self) -> tuple[float, int, Any]:
        at_s, _, kind, payload = heapq.heappop(self.heap)
        self.now_s = at_s
        return at_s, kind, payload

    def advance(self, to_s: float) -> None:
        """Move time forward to an externally merged event (an arrival or a tick)."""
        if to_s < self.now_s:
            raise ValueError(f"cannot go back from {self.now_s} to {to_s}")
        self.now_s = to_s

    def __len__(self) -> int:
        return len(self.heap)
