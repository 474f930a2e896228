"""Batching: whole pages gather until the batch holds enough records or has waited long enough.

Pure and synchronous; the monitor drives it. A page is never split across batches, because its cursor
covers all of its events: committing half a page with that cursor would lose the other half on a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from emitter.cursor import GroupCursor
from emitter.protocols import Batch
from emitter.records import MessageEvent

MAX_LINKS: Final = 128
"""Span links per transaction: enough to find the pages, bounded so a huge batch stays cheap."""


class Batcher:
    """Accumulates events and the cursors that cover them."""

    def __init__(self, max_records: int, max_wait: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_records = max_records
        self.max_wait = max_wait
        self._clock = clock
        self._events: list[MessageEvent] = []
        self._cursors: dict[int, GroupCursor] = {}
        self._since: float | None = None
        self._links: list[Any] = []

    def __len__(self) -> int:
        return len(self._events)

    @property
    def empty(self) -> bool:
        """Nothing to commit: no events and no cursor moves."""
        return not self._events and not self._cursors

    def add(self, events: Sequence[MessageEvent], cursor: GroupCursor, link: Any = None) -> None:
        """Add one page's events and the group's cursor after them (a later page's cursor wins).

        `link` is the page's span context; the transaction's span links to it.
        """
        if self._since is None:
            self._since = self._clock()
        self._events.extend(events)
        self._cursors[cursor.group_id] = cursor
        if link is not None and len(self._links) < MAX_LINKS:
            self._links.append(link)

    def due(self) -> bool:
        """Whether the batch should be committed now."""
        return len(self._events) >= self.max_records or (not self.empty and self.time_left() <= 0)

    def time_left(self) -> float:
        """Seconds until a partial batch is due (infinite when empty)."""
        if self._since is None:
            return float("inf")
        return self._since + self.max_wait - self._clock()

    def take(self) -> Batch:
        """The batch so far; the batcher starts empty again."""
        batch = Batch(tuple(self._events), dict(self._cursors), self._since or self._clock(), tuple(self._links))
        self._events, self._cursors, self._since, self._links = [], {}, None, []
        return batch
