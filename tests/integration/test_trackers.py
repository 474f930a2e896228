"""The tracker contract, one suite for every shipped tracker: memory, SQLite, Kafka (real broker), Redis (real)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from emitter.cursor import GroupCursor
from emitter.cursor_store import MemoryCursorStore
from emitter.kafka_sink import cursor_key
from emitter.protocols import MessageInfo, MessageTrackerInterface
from emitter.settings import Settings
from emitter.trackers import CursorTracker, KafkaTracker, MemoryTracker, RedisTracker, SqliteTracker
from tests.integration.kafka_read import read_committed
from tests.redis_server import redis_url_fixture  # noqa: F401 - registers the `redis_url` fixture

CHANNEL = -1001234567890
SUPERGROUP = -1009876543210
BASIC = -4242
MIGRATED_ID = -999_999_990
"""Telegram Desktop exports put history migrated from a basic group under ids shifted by -1,000,000,000."""
SMALL = 160
"""Bytes a group's stored state may take however many messages were marked (a cursor and a few ranges)."""


@dataclass
class Backend:
    """Makes trackers over one backing store (each `make` is a restart) and measures what they store."""

    name: str
    make_tracker: Callable[[], CursorTracker]
    measure: Callable[[CursorTracker, int], Awaitable[int]]
    cleanup: Callable[[], Awaitable[None]] | None = None
    made: list[CursorTracker] = field(default_factory=list)

    async def make(self) -> CursorTracker:
        """A new tracker instance on the same store; the previous one is closed first (a clean restart)."""
        for old in self.made:
            await old.close()
        tracker = self.make_tracker()
        self.made.append(tracker)
        return tracker


def _memory(_request: pytest.FixtureRequest, _tmp: Path) -> Backend:
    store = MemoryCursorStore()

    async def measure(tracker: CursorTracker, group_id: int) -> int:
        return len((await store.load("tracker"))[group_id].to_bytes())

    return Backend("memory", lambda: MemoryTracker(store), measure)


def _sqlite(_request: pytest.FixtureRequest, tmp: Path) -> Backend:
    path = tmp / "state" / "tracker.db"

    async def measure(tracker: CursorTracker, group_id: int) -> int:
        with sqlite3.connect(path) as db:
            (size,) = db.execute("SELECT length(cursor) FROM cursors WHERE group_id = ?", (group_id,)).fetchone()
        db.close()
        return int(size)

    return Backend("sqlite", lambda: SqliteTracker(path), measure)


def _kafka(request: pytest.FixtureRequest, _tmp: Path) -> Backend:
    settings: Settings = request.getfixturevalue("settings")
    instance = settings.emitter.instance

    async def measure(tracker: CursorTracker, group_id: int) -> int:
        bootstrap = (settings.kafka.bootstrap_servers or [""])[0]
        records = await read_committed(bootstrap, settings.kafka.cursor_topic, raw=True)
        values = [value for key, value in records if key == cursor_key(instance, group_id)]
        return len(values[-1])

    return Backend("kafka", lambda: KafkaTracker(settings.kafka, instance), measure)


def _redis(request: pytest.FixtureRequest, _tmp: Path) -> Backend:
    url: str = request.getfixturevalue("redis_url")
    prefix = f"test:{request.node.name}:"

    async def measure(tracker: CursorTracker, group_id: int) -> int:
        assert isinstance(tracker, RedisTracker)
        return await tracker.stored_bytes(group_id)

    async def cleanup() -> None:
        tracker = RedisTracker(url, prefix)
        await tracker.redis.delete(tracker.key)
        await tracker.close()

    return Backend("redis", lambda: RedisTracker(url, prefix), measure, cleanup)


BACKENDS = {"memory": _memory, "sqlite": _sqlite, "kafka": _kafka, "redis": _redis}


@pytest.fixture(params=list(BACKENDS))
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Each shipped tracker's backing store; every tracker made on it is closed afterwards."""
    made = BACKENDS[request.param](request, tmp_path)
    try:
        yield made
    finally:
        for tracker in made.made:
            await tracker.close()
        if made.cleanup is not None:
            await made.cleanup()


def info(message_id: int, group_id: int = CHANNEL) -> MessageInfo:
    return MessageInfo(message_id=message_id, group_id=group_id)


async def test_unprocessed_becomes_processed(backend: Backend) -> None:
    """A message is unprocessed until marked; marking one leaves its neighbours unprocessed."""
    tracker = await backend.make()
    assert isinstance(tracker, MessageTrackerInterface)
    assert not await tracker.is_processed(7, CHANNEL)
    await tracker.mark_processed(info(7))
    assert await tracker.is_processed(7, CHANNEL)
    assert not await tracker.is_processed(6, CHANNEL)
    assert not await tracker.is_processed(8, CHANNEL)


async def test_batch_marking(backend: Backend) -> None:
    """A batch marks every message in it, across groups, and nothing else."""
    tracker = await backend.make()
    await tracker.mark_batch_processed([*(info(i) for i in range(1, 51)), info(70), info(3, BASIC)])
    assert all([await tracker.is_processed(i, CHANNEL) for i in range(1, 51)])
    assert await tracker.is_processed(70, CHANNEL)
    assert await tracker.is_processed(3, BASIC)
    assert not await tracker.is_processed(60, CHANNEL)
    assert not await tracker.is_processed(4, BASIC)
    await tracker.mark_batch_processed([])


async def test_groups_are_isolated(backend: Backend) -> None:
    """Marks in one group say nothing about the same ids in another."""
    tracker = await backend.make()
    await tracker.mark_batch_processed([info(i) for i in range(1, 11)])
    await tracker.mark_walked(SUPERGROUP, 500)
    assert not await tracker.is_processed(5, SUPERGROUP + 1)
    assert not await tracker.is_processed(5, BASIC)
    assert not await tracker.is_processed(501, SUPERGROUP)
    assert await tracker.is_processed(5, CHANNEL)
    assert await tracker.is_processed(500, SUPERGROUP)


async def test_restart_remembers(backend: Backend) -> None:
    """A new tracker instance on the same store knows what the closed one marked."""
    first = await backend.make()
    await first.mark_walked(CHANNEL, 100)
    await first.mark_batch_processed([info(150), info(151), info(9, BASIC)])
    before = await first.cursor(CHANNEL)
    second = await backend.make()
    assert await second.cursor(CHANNEL) == before == GroupCursor(CHANNEL, 100, ((150, 151),))
    assert await second.is_processed(42, CHANNEL)
    assert await second.is_processed(151, CHANNEL)
    assert not await second.is_processed(120, CHANNEL)
    assert await second.is_processed(9, BASIC)


async def test_negative_and_migrated_ids(backend: Backend) -> None:
    """Negative (migrated) message ids are tracked like any other, and a fresh group has none processed."""
    tracker = await backend.make()
    assert not await tracker.is_processed(MIGRATED_ID, BASIC)
    assert not await tracker.is_processed(0, BASIC)
    await tracker.mark_batch_processed([info(MIGRATED_ID, BASIC), info(MIGRATED_ID - 1, BASIC)])
    assert await tracker.is_processed(MIGRATED_ID, BASIC)
    assert await tracker.is_processed(MIGRATED_ID - 1, BASIC)
    assert not await tracker.is_processed(MIGRATED_ID + 1, BASIC)
    await tracker.mark_walked(BASIC, 20)  # an ascending walk covers the migrated history, then ids 1…20
    restarted = await backend.make()
    assert await restarted.is_processed(MIGRATED_ID + 1, BASIC)
    assert await restarted.is_processed(20, BASIC)
    assert not await restarted.is_processed(21, BASIC)


async def test_ten_thousand_ids_stay_small(backend: Backend) -> None:
    """10,000 marked ids take a few dozen bytes: contiguous ids merge, and a walk jumps over deleted ids."""
    tracker = await backend.make()
    for start in range(1, 10_001, 1_000):
        await tracker.mark_batch_processed([info(i) for i in range(start, start + 1_000)])
    assert await tracker.is_processed(10_000, CHANNEL)
    assert await backend.measure(tracker, CHANNEL) <= SMALL
    gappy = [i for i in range(1, 15_001) if i % 3]  # every third message deleted
    for start in range(0, len(gappy), 2_500):
        await tracker.mark_batch_processed([info(i, SUPERGROUP) for i in gappy[start : start + 2_500]])
        await tracker.mark_walked(SUPERGROUP, gappy[min(start + 2_500, len(gappy)) - 1])
    assert await tracker.is_processed(14_999, SUPERGROUP)
    assert await backend.measure(tracker, SUPERGROUP) <= SMALL
    assert (await tracker.cursor(SUPERGROUP)).above == ()


async def test_concurrent_marks_are_all_kept(backend: Backend) -> None:
    """Marks from 20 concurrent tasks of one process are all recorded (no lost update)."""
    tracker = await backend.make()
    await asyncio.gather(*(tracker.mark_processed(info(i * 2)) for i in range(1, 21)))
    assert all([await tracker.is_processed(i * 2, CHANNEL) for i in range(1, 21)])
    restarted = await backend.make()
    assert len((await restarted.cursor(CHANNEL)).above) == 20


async def test_redis_trackers_share_marks_across_processes(redis_url: str) -> None:
    """Two Redis trackers on one key see each other's marks at once, and concurrent marks all land."""
    prefix = "test:shared:"
    a, b = RedisTracker(redis_url, prefix), RedisTracker(redis_url, prefix)
    try:
        await a.mark_processed(info(1))
        assert await b.is_processed(1, CHANNEL)
        await asyncio.gather(*(t.mark_processed(info(i)) for i in range(10, 40) for t in (a, b)))
        assert (await a.cursor(CHANNEL)).above == ((1, 1), (10, 39))
    finally:
        await a.redis.delete(a.key)
        await a.close()
        await b.close()
