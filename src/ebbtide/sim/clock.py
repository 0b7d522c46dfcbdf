"""The twin's clock: a heap of ``(time_s, seq, handler, payload)``; ``seq`` keeps equal times in push order.

No wall clock anywhere: ``now_s`` moves when an event is popped or the driver runs the clock up to a time (an
arrival it merges in). An event is its handler: ``handler(at_s, payload)`` is called when its time comes, so the
hot loop has no dispatch table. Usage::

    clock = EventClock(start_s)
    clock.push(t, pool.on_ready, replica)
    clock.interleave(arrivals, deliver, end_s)   # or run_until(t), or: at_s, handler, payload = clock.pop()
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["EventClock", "Handler"]

Handler = Callable[[float, Any], None]


class EventClock:
    __slots__ = ("counter", "heap", "now_s")

    def __init__(self, start_s: float) -> None:
        self.now_s = start_s
        self.heap: list[tuple[float, int, Handler, Any]] = []
        self.counter = itertools.count()

    def push(self, at_s: float, handler: Handler, payload: Any) -> None:
        if at_s < self.now_s:
            raise ValueError(f"event at {at_s} is before now {self.now_s}")
        heapq.heappush(self.heap, (at_s, next(self.counter), handler, payload))

    def peek_s(self) -> float:
        return self.heap[0][0] if self.heap else math.inf

    def pop(self) -> tuple[float, Handler, Any]:
        at_s, _, handler, payload = heapq.heappop(self.heap)
        self.now_s = at_s
        return at_s, handler, payload

    def run_until(self, until_s: float, inclusive: bool = True) -> None:
        """Run every event at or before ``until_s`` (before it, if not ``inclusive``) in time order, including
        events their handlers push meanwhile; then time is ``until_s``."""
        heap, pop = self.heap, heapq.heappop
        if inclusive:
            while heap and heap[0][0] <= until_s:
                at_s, _, handler, payload = pop(heap)
                self.now_s = at_s
                handler(at_s, payload)
        else:
            while heap and heap[0][0] < until_s:
                at_s, _, handler, payload = pop(heap)
                self.now_s = at_s
                handler(at_s, payload)
        if until_s > self.now_s:
            self.now_s = until_s

    def interleave(self, arrivals: Iterable[tuple[Any, ...]], deliver: Callable[..., None], end_s: float) -> bool:
        """Merge a time-ordered stream into the events: before each arrival ``(t, *fields)``, run the events at or
        before ``t``, then ``deliver(t, *fields)``. Returns False at the first arrival at or after ``end_s``."""
        heap, pop = self.heap, heapq.heappop
        for arrival in arrivals:
            t = arrival[0]
            if t >= end_s:
                return False
            while heap and heap[0][0] <= t:
                at_s, _, handler, payload = pop(heap)
                self.now_s = at_s
                handler(at_s, payload)
            self.now_s = t
            deliver(*arrival)
        return True

    def __len__(self) -> int:
        return len(self.heap)
