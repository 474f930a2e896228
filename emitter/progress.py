"""Backfill progress per group: done/total, rate and ETA, computed from committed events (pure)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from emitter.protocols import Batch
from emitter.records import EventType, Group, Source

BACKFILL_SOURCES = frozenset({Source.BACKFILL, Source.EXPORT})

ProgressCallback = Callable[[int, int | None, float], None]
"""The tgdata contract: ``progress_callback(current, total, rate)``, rate in messages per second."""


@dataclass
class GroupProgress:
    """How far one group's backfill is."""

    group: Group
    done: int = 0
    total: int | None = None
    started: float = field(default_factory=time.monotonic)
    paused_until: float | None = None
    """While the backfill waits for the read budget: when it resumes (Unix seconds)."""

    def rate(self, now: float | None = None) -> float:
        """Committed messages per second since the backfill began."""
        elapsed = (now if now is not None else time.monotonic()) - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at the current rate, when the total is known."""
        rate = self.rate(now)
        if self.total is None or rate <= 0:
            return None
        return max(0.0, (self.total - self.done) / rate)


class ProgressBoard:
    """Progress of every group, fed by the monitor."""

    def __init__(self) -> None:
        self.groups: dict[int, GroupProgress] = {}
        self.listeners: list[Callable[[GroupProgress], None]] = []

    def get(self, group: Group) -> GroupProgress:
        """The group's progress, created on first use."""
        found = self.groups.get(group.id)
        if found is None:
            found = self.groups[group.id] = GroupProgress(group)
        return found

    def set_total(self, group: Group, total: int | None) -> None:
        """Record the size of the group's history as the source reported it."""
        if total is not None:
            self.get(group).total = total

    def pause(self, group: Group, until: float) -> None:
        """The group's backfill waits until `until` (Unix seconds); tell the listeners."""
        p = self.get(group)
        p.paused_until = until
        for listener in self.listeners:
            listener(p)

    def committed(self, batch: Batch) -> None:
        """Count the batch's backfilled NEW events and tell the listeners."""
        backfilled = Counter(
            e.group for e in batch.events if e.event_type is EventType.NEW and e.source in BACKFILL_SOURCES
        )
        touched: dict[int, GroupProgress] = {}
        for group, n in backfilled.items():
            p = self.get(group)
            p.done += n
            p.paused_until = None  # backfilled again: the pause is over
            touched[group.id] = p
        for p in touched.values():
            for listener in self.listeners:
                listener(p)
