"""The cyclic garbage collector, tuned for the monitor's allocation pattern while it runs.

Every history page allocates thousands of short-lived objects (Telethon's TL objects, events, encoded
records) that live until the page is published: a page of 100 messages is about 2,000 objects. With
CPython's default first-generation threshold (700 net allocations) the collector ran some 370 times per
50,000 records and, because each run finds the page's objects still alive and promotes them, it spent about
a tenth of the backfill's CPU walking objects that reference counting frees a moment later anyway. Nearly
nothing the monitor allocates forms cycles, so the threshold is raised while a monitor runs; the older
generations keep their defaults, and whatever cycles form are still collected.

Process-wide, so it is reference counted: the defaults come back when the last running monitor ends (a
notebook that runs one and goes on with other work gets its collector back as it was).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Final

FIRST_GENERATION_THRESHOLD: Final = 50_000
"""Net allocations between first-generation collections while a monitor runs (CPython's default: 700)."""

_active = 0
_saved: tuple[int, int, int] | None = None


@contextlib.contextmanager
def tuned_for_throughput() -> Iterator[None]:
    """Raise the first generation's threshold for the duration (nested and concurrent uses share it)."""
    global _active, _saved  # noqa: PLW0603 - the collector is process-wide state
    if _active == 0:
        _saved = gc.get_threshold()
        if _saved[0] != 0:  # 0: collection switched off by the application, which is its choice
            gc.set_threshold(max(FIRST_GENERATION_THRESHOLD, _saved[0]), _saved[1], _saved[2])
    _active += 1
    try:
        yield
    finally:
        _active -= 1
        if _active == 0 and _saved is not None:
            gc.set_threshold(*_saved)
            _saved = None
