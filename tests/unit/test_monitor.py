"""The monitor with the demo source and an in-memory sink: exactly-once logic without any service."""

from __future__ import annotations

import asyncio
from collections import Counter

from emitter.batcher import Batcher
from emitter.demo_source import DemoSource, demo_group
from emitter.monitor import Monitor
from emitter.protocols import Batch, Page
from emitter.records import EventType, Source
from emitter.testing import ListSource, MemorySink
from emitter.tracker import Tracker
from tests.factories import GROUP, event


def new_ids(sink: MemorySink, group_id: int) -> list[int]:
    return [e.message_id for e in sink.events if e.group.id == group_id and e.event_type is EventType.NEW]


async def test_demo_backfill_and_follow_publish_every_id_once() -> None:
    """Every demo message id reaches the sink once, in order, with edits and deletes beside them."""
    sink = MemorySink()
    stats = await Monitor(DemoSource(2, history=250, rate=500, limit=300), sink, batch_size=64).run()
    for i in (1, 2):
        assert new_ids(sink, demo_group(i).id) == list(range(1, 301))
        assert sink.cursors[demo_group(i).id].cursor == 300
    kinds = Counter(e.event_type for e in sink.events)
    assert kinds[EventType.EDIT] == 2 * (300 // 7)
    assert kinds[EventType.DELETE] == 2 * (300 // 13 - 0)
    assert stats.published == len(sink.events)


async def test_restart_from_committed_cursor_publishes_only_the_rest() -> None:
    """A second run resumes after the committed cursor: the union is each id exactly once."""
    sink = MemorySink()
    await Monitor(DemoSource(1, history=100, rate=1000, limit=100), sink).run()
    await Monitor(DemoSource(1, history=100, rate=1000, limit=180), sink).run()
    assert new_ids(sink, demo_group(1).id) == list(range(1, 181))


async def test_failed_commits_are_retried_without_loss_or_duplicates() -> None:
    """RetriableError on commit retries the same batch; the sink ends with each id once."""
    sink = MemorySink(fail_commits={1, 2, 3})
    stats = await Monitor(DemoSource(1, history=300, rate=1000, limit=300), sink, batch_size=50).run()
    assert new_ids(sink, demo_group(1).id) == list(range(1, 301))
    assert stats.retries == 3


async def test_stop_drains_what_was_accepted() -> None:
    """request_stop commits every accepted page before run returns, and the cursor covers exactly them."""
    sink = MemorySink()
    monitor = Monitor(DemoSource(1, history=0, rate=200), sink, batch_timeout=0.05)
    task = asyncio.create_task(monitor.run())
    async with asyncio.timeout(10):
        while len(sink.events) < 20:  # noqa: ASYNC110 - polling a plain list with a deadline
            await asyncio.sleep(0.01)
    monitor.request_stop()
    await asyncio.wait_for(task, 10)
    ids = new_ids(sink, demo_group(1).id)
    assert ids == list(range(1, len(ids) + 1))
    assert sink.cursors[demo_group(1).id].cursor == ids[-1]


async def test_a_failing_group_does_not_stop_the_others() -> None:
    """A SourceError marks its group failed in the cursor; the other group is fully published."""
    other = GROUP.__class__(id=-1009, title="other")
    source = ListSource(
        {
            GROUP: [Page(GROUP, [event(1), event(2)], walked_to=2)],
            other: [Page(other, [event(i, group=other) for i in range(1, 4)], walked_to=3)],
        },
        fail={GROUP.id: "ChannelPrivateError: lost access"},
    )
    sink = MemorySink()
    stats = await Monitor(source, sink).run()
    assert stats.failed == {GROUP.id: "ChannelPrivateError: lost access"}
    assert sink.cursors[GROUP.id].failed == "ChannelPrivateError: lost access"
    assert sink.cursors[GROUP.id].cursor == 2
    assert new_ids(sink, other.id) == [1, 2, 3]


def test_tracker_drops_live_duplicates_and_sweep_repeats() -> None:
    """Live ids above the cursor are published once; a sweep over them publishes only the holes."""
    tracker = Tracker()
    live = Page(GROUP, [event(5, source=Source.LIVE), event(7, source=Source.LIVE)])
    fresh, cur = tracker.accept(live)
    assert [e.message_id for e in fresh] == [5, 7]
    assert cur.above == ((5, 5), (7, 7))
    fresh, _ = tracker.accept(Page(GROUP, [event(5, source=Source.LIVE)]))
    assert fresh == []
    sweep = Page(GROUP, [event(i, source=Source.SWEEP) for i in range(1, 9)], walked_to=8)
    fresh, cur = tracker.accept(sweep)
    assert [e.message_id for e in fresh] == [1, 2, 3, 4, 6, 8]
    assert (cur.cursor, cur.above, tracker.duplicates) == (8, (), 3)


def test_tracker_never_drops_edits_or_deletes() -> None:
    """EDIT and DELETE events of published messages pass: they are events of their own."""
    tracker = Tracker()
    tracker.accept(Page(GROUP, [event(1)], walked_to=1))
    fresh, _ = tracker.accept(
        Page(GROUP, [event(1, kind=EventType.EDIT, text="edited"), event(1, kind=EventType.DELETE)])
    )
    assert [e.event_type for e in fresh] == [EventType.EDIT, EventType.DELETE]


def test_batcher_is_due_by_size_or_age_and_keeps_pages_whole() -> None:
    """A batch is due at max_records or max_wait; a page larger than the limit is not split."""
    now = [0.0]
    batcher = Batcher(3, 1.0, clock=lambda: now[0])
    assert batcher.empty and not batcher.due()
    tracker = Tracker()
    _, cur = tracker.accept(Page(GROUP, [event(1)], walked_to=1))
    batcher.add([event(1)], cur)
    assert not batcher.due()
    now[0] = 1.0
    assert batcher.due()
    big = [event(i) for i in range(2, 7)]
    _, cur = tracker.accept(Page(GROUP, big, walked_to=6))
    batcher.add(big, cur)
    batch = batcher.take()
    assert len(batch.events) == 6
    assert batch.cursors[GROUP.id].cursor == 6
    assert batcher.empty


def test_a_recovered_group_clears_its_failure() -> None:
    """A group marked failed (lost access) that yields pages again is healthy in its next cursor."""
    tracker = Tracker()
    tracker.set(tracker.cursor(GROUP.id).with_failure("ChannelPrivateError"))
    _, cur = tracker.accept(Page(GROUP, [event(1)], walked_to=1))
    assert cur.failed is None


async def test_a_commit_that_hangs_makes_the_emitter_unready() -> None:
    """A commit pending longer than stall_after flips readiness, and it comes back once the commit lands."""
    release = asyncio.Event()

    class SlowSink(MemorySink):
        async def commit(self, batch: Batch) -> None:
            await release.wait()
            await super().commit(batch)

    monitor = Monitor(DemoSource(1, history=10, rate=1000, limit=10), SlowSink(), batch_timeout=0.01)
    monitor.stall_after = 0.2
    task = asyncio.create_task(monitor.run())
    async with asyncio.timeout(10):
        while monitor._committing_since is None:  # noqa: ASYNC110 - polling with a deadline
            await asyncio.sleep(0.01)
        assert monitor.ready
        await asyncio.sleep(0.3)  # past stall_after: the time itself is what is tested
        assert not monitor.ready
        release.set()
        await task
    assert monitor.ready
