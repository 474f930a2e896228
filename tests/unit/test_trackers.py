"""Trackers without services: the memory and SQLite trackers, and what every tracker promises at construction."""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path

import pytest

from emitter.cursor import GroupCursor
from emitter.cursor_store import MemoryCursorStore
from emitter.protocols import MessageInfo, MessageTrackerInterface
from emitter.settings import KafkaSettings
from emitter.trackers import KafkaTracker, MemoryTracker, RedisTracker, SqliteTracker, StoreTracker

GROUP = -1001234567890


class FailingStore(MemoryCursorStore):
    """A memory store whose saves fail on demand."""

    fail = False

    async def save(
        self, instance: str, cursors: Mapping[int, GroupCursor], extra: Mapping[int, bytes] | None = None
    ) -> None:
        if self.fail:
            raise OSError("disk full")
        await super().save(instance, cursors, extra)


async def test_sqlite_file_is_private_and_durable(tmp_path: Path) -> None:
    """The SQLite tracker's file is created mode 0600 and keeps its marks for the next instance."""
    path = tmp_path / "new-dir" / "tracker.db"
    async with SqliteTracker(path) as tracker:
        await tracker.mark_processed(MessageInfo(5, GROUP))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    async with SqliteTracker(str(path)) as again:
        assert await again.is_processed(5, GROUP)


async def test_instances_share_a_store_without_seeing_each_other(tmp_path: Path) -> None:
    """Trackers with different instance names keep separate cursors in one file."""
    path = tmp_path / "tracker.db"
    async with SqliteTracker(path, "a") as a, SqliteTracker(path, "b") as b:
        await a.mark_walked(GROUP, 10)
        assert await a.is_processed(10, GROUP)
        assert not await b.is_processed(10, GROUP)


async def test_memory_trackers_share_only_a_store_they_are_given() -> None:
    """Two memory trackers are independent, unless built on one MemoryCursorStore."""
    store = MemoryCursorStore()
    first, second, alone = MemoryTracker(store), MemoryTracker(store), MemoryTracker()
    await first.mark_processed(MessageInfo(1, GROUP))
    assert await second.is_processed(1, GROUP)
    assert not await alone.is_processed(1, GROUP)


async def test_a_failed_save_changes_nothing() -> None:
    """When the store refuses a save, the tracker's view stays as it was and the error reaches the caller."""
    store = FailingStore()
    tracker = StoreTracker(store)
    await tracker.mark_walked(GROUP, 10)
    store.fail = True
    with pytest.raises(OSError, match="disk full"):
        await tracker.mark_batch_processed([MessageInfo(11, GROUP), MessageInfo(12, GROUP)])
    assert not await tracker.is_processed(11, GROUP)
    assert await tracker.cursor(GROUP) == GroupCursor(GROUP, 10)


async def test_a_walk_folds_live_ranges_into_the_cursor() -> None:
    """Live marks just above a walked cursor merge into it, so state shrinks back to one number."""
    tracker = MemoryTracker()
    await tracker.mark_batch_processed([MessageInfo(i, GROUP) for i in (11, 12, 13, 20)])
    assert (await tracker.cursor(GROUP)).above == ((11, 13), (20, 20))
    await tracker.mark_walked(GROUP, 10)
    assert await tracker.cursor(GROUP) == GroupCursor(GROUP, 13, ((20, 20),))
    await tracker.mark_walked(GROUP, 19)
    assert await tracker.cursor(GROUP) == GroupCursor(GROUP, 20)


async def test_every_tracker_is_a_message_tracker_without_connecting(tmp_path: Path) -> None:
    """All four trackers satisfy MessageTrackerInterface, and building one opens no connection."""
    redis = RedisTracker("redis://127.0.0.1:1/0")  # nothing listens there: it must not be contacted
    kafka = KafkaTracker(KafkaSettings(bootstrap_servers=["127.0.0.1:1"]), "i")
    trackers = [MemoryTracker(), SqliteTracker(tmp_path / "t.db"), kafka, redis]
    assert all(isinstance(t, MessageTrackerInterface) for t in trackers)
    for tracker in trackers:
        await tracker.close()


def test_kafka_tracker_needs_brokers() -> None:
    """A Kafka tracker without bootstrap servers is a configuration mistake caught at once."""
    with pytest.raises(ValueError, match="bootstrap_servers"):
        KafkaTracker(KafkaSettings())
