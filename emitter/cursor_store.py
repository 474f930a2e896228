"""Stores of committed `GroupCursor`s per emitter instance, for sinks that do not keep cursors themselves.

A save is atomic over every group it names: after a crash, either all of its cursors are stored or none.
Besides the cursor, a store keeps one opaque `extra` value per group, committed in the same save, so that a
sink can make its own per-group state (the file sink: which file, how many bytes) atomic with the cursors
without a second table, a second transaction or a view of the store's internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import warnings
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final, Protocol, Self, runtime_checkable

from emitter.cursor import GroupCursor

__all__ = ["CursorStore", "MemoryCursorStore", "SqliteCursorStore"]


@runtime_checkable
class CursorStore(Protocol):
    """Keeps the committed cursors (and one opaque value per group) of each emitter instance."""

    async def load(self, instance: str) -> dict[int, GroupCursor]:
        """The committed cursors of `instance`, by group id (empty if it never saved)."""
        ...

    async def load_extra(self, instance: str) -> dict[int, bytes]:
        """The committed extra values of `instance`, by group id."""
        ...

    async def save(
        self,
        instance: str,
        cursors: Mapping[int, GroupCursor],
        extra: Mapping[int, bytes] | None = None,
    ) -> None:
        """Store `cursors` and `extra` atomically: all of them or, if this raises, none.

        Groups not named keep their stored values; a group named in only one of the two mappings keeps
        its stored value in the other.
        """
        ...


def _check_keys(cursors: Mapping[int, GroupCursor]) -> None:
    # A cursor stored under another group's key would later restore the wrong group's position.
    for group_id, cursor in cursors.items():
        if cursor.group_id != group_id:
            raise ValueError(f"cursor of group {cursor.group_id} given under key {group_id}")


class MemoryCursorStore:
    """A `CursorStore` in a dict: for tests, and for a library user who keeps cursors elsewhere.

    Cursors go through `to_bytes`/`from_bytes` like in a real store, so a test catches what would not
    survive one.
    """

    def __init__(self) -> None:
        self._cursors: dict[str, dict[int, bytes]] = {}
        self._extra: dict[str, dict[int, bytes]] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Nothing to release; here so that both stores share one lifecycle."""

    async def load(self, instance: str) -> dict[int, GroupCursor]:
        """The committed cursors of `instance`, by group id."""
        return {g: GroupCursor.from_bytes(b) for g, b in self._cursors.get(instance, {}).items()}

    async def load_extra(self, instance: str) -> dict[int, bytes]:
        """The committed extra values of `instance`, by group id."""
        return dict(self._extra.get(instance, {}))

    async def save(
        self,
        instance: str,
        cursors: Mapping[int, GroupCursor],
        extra: Mapping[int, bytes] | None = None,
    ) -> None:
        """Store `cursors` and `extra` atomically (see `CursorStore.save`)."""
        _check_keys(cursors)
        # Build the new state aside and swap it in, so a failing `to_bytes` leaves the old one whole.
        new_cursors = dict(self._cursors.get(instance, {}))
        new_cursors.update({g: c.to_bytes() for g, c in cursors.items()})
        new_extra = dict(self._extra.get(instance, {}))
        new_extra.update({g: bytes(v) for g, v in (extra or {}).items()})
        self._cursors[instance] = new_cursors
        self._extra[instance] = new_extra


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS cursors (
    instance   TEXT    NOT NULL,
    group_id   INTEGER NOT NULL,
    cursor     BLOB,   -- GroupCursor.to_bytes(); NULL while only extra was saved
    extra      BLOB,   -- opaque per-group state of the sink, committed with the cursor
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (instance, group_id)
) WITHOUT ROWID
"""

# COALESCE keeps the stored value of the column a save does not mention for that group.
_UPSERT: Final = """
INSERT INTO cursors (instance, group_id, cursor, extra, updated_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (instance, group_id) DO UPDATE SET
    cursor = COALESCE(excluded.cursor, cursor),
    extra = COALESCE(excluded.extra, extra),
    updated_at = excluded.updated_at
"""

_Row = tuple[str, int, bytes | None, bytes | None, str]


class SqliteCursorStore:
    """A `CursorStore` in one SQLite file (WAL mode), created readable by its owner only.

    Every SQLite call runs in a worker thread: commits are durable (`synchronous=FULL` fsyncs the WAL),
    and an fsync can stall for milliseconds to seconds on a busy disk, which would freeze the event loop
    and with it Telegram keep-alives and the health probes.

    Args:
        path: the database file; created with mode 0600 (its rows reveal which groups are monitored),
            and its directory too if missing (mode 0700).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        # asyncio.to_thread may pick a different thread per call; the lock keeps one call on the
        # connection at a time, so two saves never interleave inside one transaction.
        self._lock = threading.Lock()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Create or open the database; idempotent."""
        if self._closed:
            raise RuntimeError(f"cursor store {self.path} is closed")
        if self._conn is None:
            self._conn = await asyncio.to_thread(self._connect)

    async def close(self) -> None:
        """Close the database; idempotent."""
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(self._locked_close, conn)

    async def load(self, instance: str) -> dict[int, GroupCursor]:
        """The committed cursors of `instance`, by group id."""
        rows = await asyncio.to_thread(
            self._query,
            "SELECT group_id, cursor FROM cursors WHERE instance = ? AND cursor IS NOT NULL",
            instance,
        )
        return {int(g): GroupCursor.from_bytes(bytes(b)) for g, b in rows}

    async def load_extra(self, instance: str) -> dict[int, bytes]:
        """The committed extra values of `instance`, by group id."""
        rows = await asyncio.to_thread(
            self._query,
            "SELECT group_id, extra FROM cursors WHERE instance = ? AND extra IS NOT NULL",
            instance,
        )
        return {int(g): bytes(b) for g, b in rows}

    async def save(
        self,
        instance: str,
        cursors: Mapping[int, GroupCursor],
        extra: Mapping[int, bytes] | None = None,
    ) -> None:
        """Store `cursors` and `extra` in one transaction (see `CursorStore.save`)."""
        _check_keys(cursors)
        await asyncio.to_thread(self._save, instance, cursors, extra or {})

    # --- worker-thread side ------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Create the file ourselves: sqlite would create it 0644 (umask permitting), and its WAL and
        # shared-memory files copy the database file's mode.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size == 0:
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a save is exactly one transaction.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"cursor store {self.path} is not open; use `async with` or open()")
        return self._conn

    def _locked_close(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            conn.close()

    def _query(self, sql: str, instance: str) -> list[tuple[int, bytes]]:
        with self._lock:
            return list(self._connection().execute(sql, (instance,)))

    def _save(self, instance: str, cursors: Mapping[int, GroupCursor], extra: Mapping[int, bytes]) -> None:
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_UPSERT, _rows(instance, cursors, extra))
                conn.execute("COMMIT")
            except BaseException:
                # The transaction may already be gone (sqlite rolls back on some errors by itself).
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

    def __del__(self) -> None:
        if getattr(self, "_conn", None) is not None:
            warnings.warn(f"unclosed cursor store {self.path}", ResourceWarning, source=self, stacklevel=1)


def _rows(instance: str, cursors: Mapping[int, GroupCursor], extra: Mapping[int, bytes]) -> Iterator[_Row]:
    # A generator, so serialising runs inside the transaction: a cursor that fails to serialise
    # half-way through rolls back the rows before it.
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    for group_id in sorted(cursors.keys() | extra.keys()):
        cursor = cursors.get(group_id)
        value = extra.get(group_id)
        yield (
            instance,
            group_id,
            None if cursor is None else cursor.to_bytes(),
            None if value is None else bytes(value),
            now,
        )
