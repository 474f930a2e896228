"""Message trackers: remember which messages were processed, so that nothing is handled twice.

A tracker implements the tgdata contract, `MessageTrackerInterface` (see `emitter.protocols`)::

    async def is_processed(self, message_id: int, group_id: int) -> bool
    async def mark_processed(self, message_info: MessageInfo) -> None
    async def mark_batch_processed(self, messages: Sequence[MessageInfo]) -> None

Any object with these three methods works with `TgData`. The trackers shipped here are all **cursor-based**:
per group they keep a `GroupCursor` (every message with id <= `cursor` that an ascending history walk
returned is processed; ids above it processed out of order are kept as ranges), never a set of ids, so their
memory and storage do not grow with history. Besides the contract they offer `cursor(group_id)` and
`mark_walked(group_id, walked_to)`, which `TgData` uses to resume an ascending walk where processing stands.

- `MemoryTracker`: in-process (optionally over a shared `MemoryCursorStore`).
- `SqliteTracker`: one SQLite file (mode 0600), durable on every mark.
- `KafkaTracker`: the emitter's compacted cursor topic, restored `read_committed`, written in transactions.
- `RedisTracker`: one Redis hash, updated atomically, so several processes can share it.

The first three keep the cursors of the groups they touched in memory and write through on every mark: one
tracker instance (per `instance` name) owns its groups at a time, as one emitter instance does. The Redis
tracker reads Redis on every call instead.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Protocol, Self

from emitter.cursor import GroupCursor
from emitter.cursor_store import CursorStore, MemoryCursorStore, SqliteCursorStore
from emitter.errors import RetriableError
from emitter.protocols import Batch, MessageInfo, MessageTrackerInterface
from emitter.settings import KafkaSettings

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "CursorTracker",
    "KafkaTracker",
    "MemoryTracker",
    "MessageInfo",
    "MessageTrackerInterface",
    "RedisTracker",
    "SqliteTracker",
    "StoreTracker",
]

Change = Callable[[GroupCursor], GroupCursor]
"""How one mark changes a group's cursor (a pure function of the cursor before it)."""

DEFAULT_INSTANCE: Final = "tracker"
"""The instance name trackers store their cursors under unless told otherwise."""


def _live_ids(ids: Sequence[int]) -> Change:
    def apply(cursor: GroupCursor) -> GroupCursor:
        for msg_id in sorted(ids):
            cursor = cursor.with_live(msg_id)
        return cursor

    return apply


def _walked(walked_to: int) -> Change:
    return lambda cursor: cursor.walked_to(walked_to)


class CursorTracker(ABC):
    """A `MessageTrackerInterface` over per-group `GroupCursor`s; subclasses say where cursors live.

    Subclasses implement `_get` (one group's cursor) and `_update` (apply changes to several groups
    atomically). Every method is safe to call from concurrent tasks of one event loop.
    """

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:  # noqa: B027 - most trackers have nothing to release
        """Release connections and files (idempotent)."""

    async def cursor(self, group_id: int) -> GroupCursor:
        """The group's cursor (a fresh one for a group never marked)."""
        return await self._get(group_id)

    async def is_processed(self, message_id: int, group_id: int) -> bool:
        """Whether the message was marked processed (directly, or by a walk past it)."""
        return (await self._get(group_id)).is_published(message_id)

    async def mark_processed(self, message_info: MessageInfo) -> None:
        """Record one message as processed."""
        await self.mark_batch_processed([message_info])

    async def mark_batch_processed(self, messages: Sequence[MessageInfo]) -> None:
        """Record several messages (of any groups) as processed, in one write."""
        by_group: dict[int, list[int]] = defaultdict(list)
        for info in messages:
            by_group[info.group_id].append(info.message_id)
        if by_group:
            await self._update({gid: _live_ids(ids) for gid, ids in by_group.items()})

    async def mark_walked(self, group_id: int, walked_to: int) -> None:
        """Record that an ascending history walk processed every message of the group up to `walked_to`.

        This is what keeps a tracker small when ids have gaps (deleted messages, basic groups sharing the
        account's id counter): the cursor jumps over them instead of remembering each id.
        """
        await self._update({group_id: _walked(walked_to)})

    @abstractmethod
    async def _get(self, group_id: int) -> GroupCursor: ...

    @abstractmethod
    async def _update(self, changes: Mapping[int, Change]) -> None: ...


class _ManagedStore(CursorStore, Protocol):
    """A cursor store that `StoreTracker` opens on first use and closes with itself."""

    async def __aenter__(self) -> object: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class StoreTracker(CursorTracker):
    """A cursor tracker over any `CursorStore` (memory, SQLite, or your own).

    The cursors of `instance` are loaded on first use and kept in memory; each mark saves the changed
    cursors (one atomic save) before it returns, and only then changes the in-memory copy, so a failed
    save changes nothing.

    Args:
        store: where cursors are kept; opened (entered) on first use and closed with the tracker when
            `owns_store` is true.
        instance: the name cursors are stored under: trackers with different names share a store without
            seeing each other's cursors.
    """

    def __init__(self, store: _ManagedStore, instance: str = DEFAULT_INSTANCE, *, owns_store: bool = True) -> None:
        self.store = store
        self.instance = instance
        self._owns_store = owns_store
        self._cursors: dict[int, GroupCursor] | None = None
        self._opened = False
        self._lock = asyncio.Lock()
        self._open_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(instance={self.instance!r})"

    async def open(self) -> None:
        """Open the store and load the cursors (idempotent; every other method calls it)."""
        if self._cursors is not None:
            return
        async with self._open_lock:
            if self._owns_store and not self._opened:
                await self.store.__aenter__()
                self._opened = True
            if self._cursors is None:
                self._cursors = await self.store.load(self.instance)

    async def close(self) -> None:
        """Close the store if the tracker opened it (idempotent)."""
        self._cursors = None
        if self._opened:
            self._opened = False
            await self.store.__aexit__(None, None, None)

    async def _get(self, group_id: int) -> GroupCursor:
        await self.open()
        assert self._cursors is not None  # noqa: S101 - open() just set it
        return self._cursors.get(group_id) or GroupCursor(group_id)

    async def _update(self, changes: Mapping[int, Change]) -> None:
        # The lock makes read-change-save one step: two concurrent marks of a group never lose one.
        async with self._lock:
            await self.open()
            assert self._cursors is not None  # noqa: S101 - open() just set it
            new = {gid: change(self._cursors.get(gid) or GroupCursor(gid)) for gid, change in changes.items()}
            await self.store.save(self.instance, new)
            self._cursors.update(new)


class MemoryTracker(StoreTracker):
    """Cursors in memory: gone with the process, unless several trackers share one `MemoryCursorStore`.

    Args:
        store: a store to share between tracker instances (a new one by default).
        instance: the name cursors are kept under in the store.
    """

    def __init__(self, store: MemoryCursorStore | None = None, instance: str = DEFAULT_INSTANCE) -> None:
        super().__init__(store or MemoryCursorStore(), instance)


class SqliteTracker(StoreTracker):
    """Cursors in one SQLite file (created mode 0600), saved durably on every mark.

    The file has the emitter's cursor-store layout (`emitter.cursor_store.SqliteCursorStore`): one row per
    group and instance, whatever the history's length.

    Args:
        path: the database file (its directory is created if missing).
        instance: the name cursors are kept under in the file.
    """

    def __init__(self, path: str | Path, instance: str = DEFAULT_INSTANCE) -> None:
        super().__init__(SqliteCursorStore(Path(path)), instance)


class _KafkaCursorStore:
    """The emitter's Kafka sink as a cursor store: a save is one transaction of cursor records only.

    Starting the sink initialises its transactional producer first, which fences an older process with the
    same identity; the cursors are read only after that, by the emitter's one cursor reader
    (`emitter.cursor_reader`, through the sink), so they are what was committed, even while another identity
    holds a transaction open on the shared topic.
    """

    def __init__(self, settings: KafkaSettings, instance: str) -> None:
        from emitter.kafka_sink import KafkaSink  # noqa: PLC0415 - aiokafka only for this tracker

        self.sink = KafkaSink(settings, instance)

    async def __aenter__(self) -> Self:
        await self.sink.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.sink.stop()

    def _check(self, instance: str) -> None:
        if instance != self.sink.instance:
            raise ValueError(f"this store keeps instance {self.sink.instance!r}, not {instance!r}")

    async def load(self, instance: str) -> dict[int, GroupCursor]:
        """The committed cursors of the instance."""
        self._check(instance)
        return await self.sink.load_cursors()

    async def load_extra(self, instance: str) -> dict[int, bytes]:
        """Nothing: the cursor topic holds cursors only."""
        self._check(instance)
        return {}

    async def save(
        self, instance: str, cursors: Mapping[int, GroupCursor], extra: Mapping[int, bytes] | None = None
    ) -> None:
        """Commit the cursors in one Kafka transaction."""
        self._check(instance)
        if extra:
            raise ValueError("the Kafka cursor store keeps no extra values")
        await self.sink.commit(Batch(events=(), cursors=dict(cursors)))


class KafkaTracker(StoreTracker):
    """Cursors in the emitter's compacted cursor topic (`kafka.cursor_topic`), keyed `<instance>:<group id>`.

    Marks are Kafka transactions (one per call: prefer `mark_batch_processed`). The transactional id is
    `<kafka.transactional_id_prefix>-<instance>`: a second tracker with the same identity fences the first,
    so give the tracker an instance name of its own, different from any running emitter's.

    Args:
        settings: brokers, security and topic names (`Settings.kafka`); both topics are created if missing.
        instance: the tracker's identity.
    """

    def __init__(self, settings: KafkaSettings, instance: str = DEFAULT_INSTANCE) -> None:
        if not settings.bootstrap_servers:
            raise ValueError("KafkaTracker needs kafka.bootstrap_servers")
        super().__init__(_KafkaCursorStore(settings, instance), instance)


class RedisTracker(CursorTracker):
    """Cursors in one Redis hash, `<prefix>cursors`: a field per group id, the cursor's JSON as value.

    Every call reads Redis, and every mark is an optimistic transaction (WATCH, read, change, MULTI/EXEC,
    retried on conflict), so several processes can share one tracker without losing marks. Needs the
    `redis` package.

    Args:
        url: a Redis URL (``redis://host:6379/0``, ``rediss://…``, ``unix:///path``).
        prefix: prepended to the key, so that several trackers share one database.
        client: an existing `redis.asyncio.Redis` to use instead of `url` (not closed by `close`).
    """

    MAX_CONFLICTS: Final = 100

    def __init__(
        self, url: str = "redis://localhost:6379/0", prefix: str = "emitter:tracker:", *, client: Redis | None = None
    ) -> None:
        if client is None:
            from redis.asyncio import Redis  # noqa: PLC0415 - an optional dependency

            client = Redis.from_url(url)
            self._owns_client = True
        else:
            self._owns_client = False
        self.redis: Redis = client
        self.key = f"{prefix}cursors"

    def __repr__(self) -> str:
        return f"RedisTracker(key={self.key!r})"

    async def close(self) -> None:
        """Close the connection pool if the tracker created it (idempotent)."""
        if self._owns_client:
            self._owns_client = False
            await self.redis.aclose()

    async def stored_bytes(self, group_id: int) -> int:
        """The size of the group's stored cursor, in bytes."""
        return int(await self.redis.hstrlen(self.key, str(group_id)))

    async def _get(self, group_id: int) -> GroupCursor:
        raw = await self.redis.hget(self.key, str(group_id))
        return _parse(group_id, raw)

    async def _update(self, changes: Mapping[int, Change]) -> None:
        from redis.exceptions import WatchError  # noqa: PLC0415 - an optional dependency

        fields = [str(gid) for gid in changes]
        async with self.redis.pipeline(transaction=True) as pipe:
            for _ in range(self.MAX_CONFLICTS):
                try:
                    await pipe.watch(self.key)
                    raws = await pipe.hmget(self.key, fields)
                    new = {
                        str(gid): change(_parse(gid, raw)).to_bytes()
                        for (gid, change), raw in zip(changes.items(), raws, strict=True)
                    }
                    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                    pipe.hset(self.key, mapping=new)  # type: ignore[arg-type]  # bytes values are fine
                    await pipe.execute()
                except WatchError:
                    continue
                return
        raise RetriableError(f"Redis key {self.key!r} changed under {self.MAX_CONFLICTS} marks in a row")


def _parse(group_id: int, raw: bytes | str | None) -> GroupCursor:
    if raw is None:
        return GroupCursor(group_id)
    return GroupCursor.from_bytes(raw.encode() if isinstance(raw, str) else raw)
