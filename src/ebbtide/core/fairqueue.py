"""Who waits next: strict priority between classes, weighted fair queueing across tenants within a class.

Each tenant's items get virtual finish tags (start = max(class virtual time, tenant's last tag), tag = start +
1/weight), so a tenant sending 100 requests cannot starve one sending 1. When the queue is full, the newest item
of the lowest-priority class is the one to shed, so ``batch`` goes before ``interactive``.

Pure and clock-free: the driver passes everything in; items are opaque payloads. Cancelled items are removed
lazily (``discard`` marks them, ``pop``/``peek`` skip them).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["DEFAULT_CLASSES", "FairQueue", "Queued"]

T = TypeVar("T")
DEFAULT_CLASSES = ("interactive", "batch")


@dataclass(eq=False)
class Queued(Generic[T]):
    payload: T
    tenant: str
    priority_class: str
    rank: int
    tag: float
    seq: int
    live: bool = field(default=True)

    def key(self) -> tuple[int, float, int]:
        return (self.rank, self.tag, self.seq)

    def __lt__(self, other: Queued[T]) -> bool:
        return self.key() < other.key()


class FairQueue(Generic[T]):
    """Usage: ``q = FairQueue(["interactive", "batch"]); item = q.push(x, "acme", "batch"); q.pop()``."""

    def __init__(self, classes: Sequence[str] = DEFAULT_CLASSES, tenant_weights: Mapping[str, float] | None = None):
        self._rank = {name: i for i, name in enumerate(classes)}
        self._weights = dict(tenant_weights or {})
        self._heap: list[tuple[int, float, int, Queued[T]]] = []  # (rank, tag, seq, item): C-level ordering
        self._seq = itertools.count()
        self._class_vtime: dict[int, float] = {}
        self._tenant_tag: dict[tuple[int, str], float] = {}
        self.size = 0  # live items (an attribute, not len(): the twin's hot loop reads it)

    def __len__(self) -> int:
        return self.size

    def rank_of(self, priority_class: str) -> int:
        return self._rank.get(priority_class, len(self._rank))

    def push(self, payload: T, tenant: str, priority_class: str) -> Queued[T]:
        rank = self.rank_of(priority_class)
        start = max(self._class_vtime.get(rank, 0.0), self._tenant_tag.get((rank, tenant), 0.0))
        tag = start + 1.0 / max(self._weights.get(tenant, 1.0), 1e-9)
        self._tenant_tag[(rank, tenant)] = tag
        item = Queued(payload, tenant, priority_class, rank, tag, next(self._seq))
        heapq.heappush(self._heap, (rank, tag, item.seq, item))
        self.size += 1
        return item

    def discard(self, item: Queued[T]) -> None:
        if item.live:
            item.live = False
            self.size -= 1
            self._forget_if_empty()

    def peek(self) -> Queued[T] | None:
        heap = self._heap
        while heap and not heap[0][3].live:
            heapq.heappop(heap)
        return heap[0][3] if heap else None

    def pop(self) -> Queued[T] | None:
        item = self.peek()
        if item is not None:
            self.take(item)
        return item

    def take(self, item: Queued[T]) -> None:
        """Remove ``item`` as served (not cancelled): its class's virtual time moves on, so a tenant arriving
        later starts level with the others instead of ahead of everyone who waited."""
        if item.live:
            item.live = False
            self.size -= 1
            started = item.tag - 1.0 / max(self._weights.get(item.tenant, 1.0), 1e-9)
            self._class_vtime[item.rank] = max(self._class_vtime.get(item.rank, 0.0), started)
            self._forget_if_empty()

    def in_order(self) -> Iterator[Queued[T]]:
        """Live items in service order (a sorted copy: for the rare case the head cannot be served)."""
        return iter(entry[3] for entry in sorted(e for e in self._heap if e[3].live))

    def shed_candidate(self, incoming_class: str) -> Queued[T] | None:
        """The item to drop so an ``incoming_class`` item can enter a full queue: the newest of a lower class."""
        incoming = self.rank_of(incoming_class)
        victims = [e[3] for e in self._heap if e[0] > incoming and e[3].live]
        return max(victims, key=lambda i: (i.rank, i.seq)) if victims else None

    def _forget_if_empty(self) -> None:
        if self.size == 0:
            self._heap.clear()
            self._class_vtime.clear()
            self._tenant_tag.clear()
