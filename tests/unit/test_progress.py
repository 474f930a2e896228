"""Backfill progress: the board's counts and the progress bars drawn from them."""

from __future__ import annotations

from rich.console import Console

from emitter.demo_source import DemoSource, demo_group
from emitter.monitor import Monitor
from emitter.progress import GroupProgress, ProgressBoard
from emitter.progress_view import ProgressView
from emitter.protocols import Batch
from emitter.records import EventType, MessageEvent, Source, utc_now
from emitter.testing import MemorySink


async def test_progress_bar_shows_done_of_total_per_group() -> None:
    """A one-shot backfill draws one bar per group that ends at done/total of the history."""
    console = Console(record=True, force_terminal=True, width=120, color_system=None)
    monitor = Monitor(DemoSource(2, history=250, rate=1000, limit=250), MemorySink(), batch_size=50)
    with ProgressView(monitor.progress, console):
        await monitor.run()
    text = console.export_text()
    for i in (1, 2):
        assert f"Demo group {i}" in text
    assert "250/250" in text
    assert {p.done for p in monitor.progress.groups.values()} == {250}


def test_rate_and_eta_follow_from_counts() -> None:
    """Rate is done per elapsed second; ETA is what is left at that rate."""
    p = GroupProgress(demo_group(1), done=100, total=400, started=10.0)
    assert p.rate(now=20.0) == 10.0
    assert p.eta(now=20.0) == 30.0
    assert GroupProgress(demo_group(1), done=5, total=None, started=0.0).eta(now=1.0) is None


def test_a_paused_backfill_shows_when_it_resumes_until_it_backfills_again() -> None:
    """A read-budget pause marks the group's progress with its resume time; the bar says so; backfilled
    messages clear it."""
    board = ProgressBoard()
    group = demo_group(1)
    seen: list[float | None] = []
    board.listeners.append(lambda p: seen.append(p.paused_until))
    console = Console(record=True, force_terminal=True, width=160, color_system=None)
    with ProgressView(board, console):
        board.pause(group, 1_800_000_000.0)
    assert seen[0] == 1_800_000_000.0
    assert "read budget spent: resumes" in console.export_text()
    event = MessageEvent(
        event_type=EventType.NEW, group=group, message_id=1, source=Source.BACKFILL, ingest_time=utc_now()
    )
    board.committed(Batch([event], {}))
    assert board.get(group).paused_until is None
