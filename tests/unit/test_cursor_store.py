"""Cursor stores: one contract for every implementation, plus what only the SQLite store promises."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from emitter.cursor import GroupCursor
from emitter.cursor_store import CursorStore, MemoryCursorStore, SqliteCursorStore

CHANNEL = -1001234567890
BASIC = -4242


class _Unserialisable(GroupCursor):
    """A cursor that fails to serialise, to break a save half-way through."""

    def to_bytes(self) -> bytes:
        raise RuntimeError("cannot serialise")


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CursorStore]:
    if request.param == "memory":
        async with MemoryCursorStore() as memory:
            yield memory
    else:
        async with SqliteCursorStore(tmp_path / "state.sqlite") as sqlite:
            yield sqlite


def _rich_cursor(group_id: int) -> GroupCursor:
    return GroupCursor(group_id, cursor=100, above=((105, 107), (120, 120)), failed="lost access")


# --- the contract ------------------------------------------------------------------------------------------


async def test_implements_protocol(store: CursorStore) -> None:
    """Both stores satisfy the CursorStore protocol."""
    assert isinstance(store, CursorStore)


async def test_load_empty(store: CursorStore) -> None:
    """An instance that never saved has no cursors and no extra values."""
    assert await store.load("a") == {}
    assert await store.load_extra("a") == {}


async def test_roundtrip_keeps_above_ranges_failure_and_move(store: CursorStore) -> None:
    """A saved cursor loads back equal, with its live ranges, failure reason and migration target."""
    moved = GroupCursor(BASIC, cursor=7, moved_to=CHANNEL)
    await store.save("a", {CHANNEL: _rich_cursor(CHANNEL), BASIC: moved})
    assert await store.load("a") == {CHANNEL: _rich_cursor(CHANNEL), BASIC: moved}


async def test_later_save_replaces_only_the_groups_it_names(store: CursorStore) -> None:
    """A save overwrites the groups it names and leaves the others as they were."""
    await store.save("a", {CHANNEL: GroupCursor(CHANNEL, 1), BASIC: GroupCursor(BASIC, 1)})
    await store.save("a", {CHANNEL: GroupCursor(CHANNEL, 2)})
    assert await store.load("a") == {CHANNEL: GroupCursor(CHANNEL, 2), BASIC: GroupCursor(BASIC, 1)}


async def test_instances_are_isolated(store: CursorStore) -> None:
    """Cursors and extra values of one instance are invisible to another."""
    await store.save("a", {CHANNEL: GroupCursor(CHANNEL, 1)}, {CHANNEL: b"x"})
    await store.save("b", {CHANNEL: GroupCursor(CHANNEL, 9)})
    assert await store.load("a") == {CHANNEL: GroupCursor(CHANNEL, 1)}
    assert await store.load("b") == {CHANNEL: GroupCursor(CHANNEL, 9)}
    assert await store.load_extra("b") == {}


async def test_extra_is_saved_with_cursors_and_kept_when_not_named(store: CursorStore) -> None:
    """Extra values commit with the cursors; a save without them keeps the stored ones, and vice versa."""
    await store.save("a", {CHANNEL: GroupCursor(CHANNEL, 1)}, {CHANNEL: b"one"})
    await store.save("a", {CHANNEL: GroupCursor(CHANNEL, 2)})
    assert await store.load_extra("a") == {CHANNEL: b"one"}
    await store.save("a", {}, {CHANNEL: b"two", BASIC: b"extra only"})
    assert await store.load("a") == {CHANNEL: GroupCursor(CHANNEL, 2)}
    assert await store.load_extra("a") == {CHANNEL: b"two", BASIC: b"extra only"}


async def test_multi_group_save_is_atomic(store: CursorStore) -> None:
    """A save that fails part-way changes no group, not even those written before the failure."""
    await store.save("a", {BASIC: GroupCursor(BASIC, 1), 5: GroupCursor(5, 1)}, {BASIC: b"old"})
    bad = {BASIC: GroupCursor(BASIC, 2), 5: _Unserialisable(5, 2)}
    with pytest.raises(RuntimeError, match="cannot serialise"):
        await store.save("a", bad, {BASIC: b"new"})
    assert await store.load("a") == {BASIC: GroupCursor(BASIC, 1), 5: GroupCursor(5, 1)}
    assert await store.load_extra("a") == {BASIC: b"old"}


async def test_cursor_under_wrong_key_is_rejected(store: CursorStore) -> None:
    """A cursor stored under another group's id is refused before anything is written."""
    with pytest.raises(ValueError, match="under key"):
        await store.save("a", {BASIC: GroupCursor(CHANNEL, 1)})
    assert await store.load("a") == {}


# --- SQLite only ---------------------------------------------------------------------------------------------


async def test_sqlite_files_are_private(tmp_path: Path) -> None:
    """The database and its WAL companions are readable by their owner only; a new directory too."""
    path = tmp_path / "new" / "state.sqlite"
    async with SqliteCursorStore(path) as store:
        await store.save("a", {CHANNEL: GroupCursor(CHANNEL, 1)})
        companions = [p for p in path.parent.iterdir() if p.name.startswith("state.sqlite")]
        assert len(companions) > 1  # the WAL files exist while the store is open
        for p in companions:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


async def test_sqlite_uses_wal(tmp_path: Path) -> None:
    """The database is in WAL mode, so readers never block the emitter's commits."""
    path = tmp_path / "state.sqlite"
    async with SqliteCursorStore(path):
        pass
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


async def test_sqlite_survives_reopen(tmp_path: Path) -> None:
    """Cursors and extra values saved before closing load back after reopening the file."""
    path = tmp_path / "state.sqlite"
    async with SqliteCursorStore(path) as store:
        await store.save("a", {CHANNEL: _rich_cursor(CHANNEL)}, {CHANNEL: b"pos"})
    async with SqliteCursorStore(path) as store:
        assert await store.load("a") == {CHANNEL: _rich_cursor(CHANNEL)}
        assert await store.load_extra("a") == {CHANNEL: b"pos"}


async def test_sqlite_lifecycle(tmp_path: Path) -> None:
    """Using the store before open or after close fails clearly; close is idempotent."""
    store = SqliteCursorStore(tmp_path / "state.sqlite")
    with pytest.raises(RuntimeError, match="not open"):
        await store.load("a")
    await store.open()
    await store.open()
    await store.close()
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.open()
