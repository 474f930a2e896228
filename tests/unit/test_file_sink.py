"""FileSink: per-group Avro container files with cursors in SQLite, exactly once across crashes."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import stat
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import avro.datafile
import avro.io
import fastavro
import pytest

from emitter.cursor import GroupCursor
from emitter.cursor_store import SqliteCursorStore
from emitter.errors import ConfigError, FatalError, RetriableError
from emitter.file_sink import FileSink, read_group
from emitter.protocols import Batch, Sink
from emitter.records import EventType, Group, MessageEvent, Source

CHANNEL = -1001234567890
BASIC = -4242
INSTANCE = "test"
SMALL_PARTS = 20_000  # a part's header alone is ~12 kB, so a few records fill one
_TEXT_RNG = random.Random(7)


def _event(group_id: int, message_id: int, *, big: bool = False) -> MessageEvent:
    # Random text does not deflate away, so sizes (and rotation) stay predictable.
    text = "".join(_TEXT_RNG.choices("abcdefghij ", k=2000)) if big else f"message {message_id}"
    return MessageEvent(
        event_type=EventType.NEW,
        group=Group(group_id, title=f"group {group_id}"),
        message_id=message_id,
        source=Source.BACKFILL,
        ingest_time=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        text=text,
    )


def _batch(ids: dict[int, Iterable[int]], *, big: bool = False) -> Batch:
    """A batch of NEW events, with each group's cursor walked to its highest id."""
    events = [_event(g, m, big=big) for g, msgs in ids.items() for m in msgs]
    cursors = {g: GroupCursor(g).walked_to(max(e.message_id for e in events if e.group_id == g)) for g in ids}
    return Batch(events, cursors)


def _ids(tmp_path: Path, group_id: int) -> list[int]:
    return [r["message_id"] for r in read_group(tmp_path, INSTANCE, group_id)]


def _parts(tmp_path: Path, group_id: int) -> list[Path]:
    return sorted((tmp_path / INSTANCE / str(group_id)).glob("part-*.avro"))


def _read_with_official_avro(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as fo, avro.datafile.DataFileReader(fo, avro.io.DatumReader()) as reader:
        return [cast(dict[str, Any], record) for record in reader]


async def test_is_a_sink(tmp_path: Path) -> None:
    """FileSink satisfies the Sink protocol."""
    async with FileSink(tmp_path, INSTANCE) as sink:
        assert isinstance(sink, Sink)


async def test_groups_land_in_their_own_files(tmp_path: Path) -> None:
    """Each group's records go to <dir>/<instance>/<group id>/part-000001.avro, in order."""
    async with FileSink(tmp_path, INSTANCE) as sink:
        await sink.commit(_batch({CHANNEL: [1, 2, 3], BASIC: [10]}))
        await sink.commit(_batch({CHANNEL: [4, 5]}))
    assert _parts(tmp_path, CHANNEL) == [tmp_path / INSTANCE / str(CHANNEL) / "part-000001.avro"]
    assert _ids(tmp_path, CHANNEL) == [1, 2, 3, 4, 5]
    assert _ids(tmp_path, BASIC) == [10]
    first = next(read_group(tmp_path, INSTANCE, CHANNEL))
    assert first["group"]["id"] == CHANNEL
    assert first["ingest_time"] == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("codec", ["deflate", "null"])
async def test_files_are_standard_avro(tmp_path: Path, codec: str) -> None:
    """fastavro and the official avro package both read the files, with the chosen codec in the header."""
    async with FileSink(tmp_path, INSTANCE, codec=codec) as sink:
        await sink.commit(_batch({CHANNEL: [1, 2]}))
        await sink.commit(_batch({CHANNEL: [3]}))
    (path,) = _parts(tmp_path, CHANNEL)
    with path.open("rb") as fo:
        reader = fastavro.reader(fo)
        assert reader.codec == codec
        assert [cast(dict[str, Any], r)["message_id"] for r in reader] == [1, 2, 3]
    records = _read_with_official_avro(path)
    assert [r["message_id"] for r in records] == [1, 2, 3]
    assert records[2]["text"] == "message 3"


async def test_reopened_file_keeps_header_and_sync_marker(tmp_path: Path) -> None:
    """Appending after a restart continues the same file: one header, one sync marker, one codec."""
    async with FileSink(tmp_path, INSTANCE, codec="null") as sink:
        await sink.commit(_batch({CHANNEL: [1]}))
    (path,) = _parts(tmp_path, CHANNEL)
    with path.open("rb") as fo:
        marker = fastavro.reader(fo)._header["sync"]
    async with FileSink(tmp_path, INSTANCE, codec="deflate") as sink:
        await sink.commit(_batch({CHANNEL: [2]}))
    data = path.read_bytes()
    assert data.count(b"avro.schema") == 1
    assert data.count(marker) == 3  # the header's, and one after each block
    with path.open("rb") as fo:
        assert fastavro.reader(fo).codec == "null"
    assert [r["message_id"] for r in _read_with_official_avro(path)] == [1, 2]


async def test_rotation_splits_by_size_and_keeps_every_record_once(tmp_path: Path) -> None:
    """Parts rotate by size, within a batch and between batches; reading them in order gives each record once."""
    async with FileSink(tmp_path, INSTANCE, rotate_bytes=SMALL_PARTS) as sink:
        await sink.commit(_batch({CHANNEL: range(1, 31)}, big=True))
        await sink.commit(_batch({CHANNEL: range(31, 41)}, big=True))
    parts = _parts(tmp_path, CHANNEL)
    assert len(parts) > 2
    assert _ids(tmp_path, CHANNEL) == list(range(1, 41))
    # A finished part only ran past the limit by its last block (at most a block's worth of records).
    for part in parts[:-1]:
        assert part.stat().st_size < 2 * SMALL_PARTS + 2_500
    # Every part stands alone, for tools that read one file.
    ids = [r["message_id"] for p in parts for r in _read_with_official_avro(p)]
    assert ids == list(range(1, 41))


async def test_tiny_rotation_size_still_makes_progress(tmp_path: Path) -> None:
    """A rotation size smaller than the header gives one block per part instead of looping."""
    async with FileSink(tmp_path, INSTANCE, rotate_bytes=1) as sink:
        await sink.commit(_batch({CHANNEL: [1, 2, 3]}))
    assert len(_parts(tmp_path, CHANNEL)) == 3
    assert _ids(tmp_path, CHANNEL) == [1, 2, 3]


async def test_crash_before_state_commit_keeps_only_committed_batches(tmp_path: Path) -> None:
    """Blocks fsynced but never committed in SQLite are cut off on reopen; a retry then lands once."""
    batch1, batch2 = _batch({CHANNEL: [1, 2], BASIC: [5]}), _batch({CHANNEL: [3, 4], BASIC: [6]})
    sink = FileSink(tmp_path, INSTANCE)
    async with sink:
        await sink.commit(batch1)
        # The commit's file step alone: the process "dies" before the SQLite transaction.
        await asyncio.to_thread(sink._append_batch, batch2.events)
    assert _ids(tmp_path, CHANNEL) == [1, 2, 3, 4]  # what a crash leaves on disk
    with (tmp_path / INSTANCE / str(CHANNEL) / "part-000001.avro").open("ab") as fo:
        fo.write(b"\x06torn half of a block")  # and a write cut short by the crash

    async with FileSink(tmp_path, INSTANCE) as sink:
        assert _ids(tmp_path, CHANNEL) == [1, 2]
        assert _ids(tmp_path, BASIC) == [5]
        assert await sink.load_cursors() == dict(batch1.cursors)
        await sink.commit(batch2)
    assert _ids(tmp_path, CHANNEL) == [1, 2, 3, 4]
    assert _ids(tmp_path, BASIC) == [5, 6]


async def test_crash_during_rotation_drops_new_parts(tmp_path: Path) -> None:
    """Parts created after the last commit, even torn ones, are deleted on reopen; the retry lands once."""
    batch1 = _batch({CHANNEL: range(1, 6)}, big=True)
    batch2 = _batch({CHANNEL: range(6, 31)}, big=True)
    sink = FileSink(tmp_path, INSTANCE, rotate_bytes=SMALL_PARTS)
    async with sink:
        await sink.commit(batch1)
        committed_parts = _parts(tmp_path, CHANNEL)
        await asyncio.to_thread(sink._append_batch, batch2.events)
    after_crash = _parts(tmp_path, CHANNEL)
    assert len(after_crash) > len(committed_parts)
    # The crash hit while the next part's header was being written.
    torn = after_crash[-1].with_name(f"part-{len(after_crash) + 1:06d}.avro")
    torn.write_bytes(after_crash[0].read_bytes()[:100])

    async with FileSink(tmp_path, INSTANCE, rotate_bytes=SMALL_PARTS) as sink:
        assert _parts(tmp_path, CHANNEL) == committed_parts
        assert _ids(tmp_path, CHANNEL) == [1, 2, 3, 4, 5]
        assert await sink.load_cursors() == dict(batch1.cursors)
        await sink.commit(batch2)
    assert _ids(tmp_path, CHANNEL) == list(range(1, 31))


async def test_uncommitted_group_is_removed_on_reopen(tmp_path: Path) -> None:
    """A group whose first records never committed leaves no files behind."""
    sink = FileSink(tmp_path, INSTANCE)
    async with sink:
        await sink.commit(_batch({CHANNEL: [1]}))
        await asyncio.to_thread(sink._append_batch, _batch({BASIC: [5]}).events)
    assert (tmp_path / INSTANCE / str(BASIC)).is_dir()
    async with FileSink(tmp_path, INSTANCE) as sink:
        assert not (tmp_path / INSTANCE / str(BASIC)).exists()
        assert await sink.load_cursors() == {CHANNEL: GroupCursor(CHANNEL, 1)}


async def test_failed_state_commit_is_undone_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the SQLite commit fails, the files are cut back before RetriableError, so a retry lands once."""
    batch1, batch2 = _batch({CHANNEL: [1]}), _batch({CHANNEL: [2, 3]})
    real_save = SqliteCursorStore.save
    failures = iter([sqlite3.OperationalError("disk I/O error")])

    async def flaky_save(self: SqliteCursorStore, *args: object, **kwargs: object) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        await real_save(self, *args, **kwargs)  # type: ignore[arg-type]

    async with FileSink(tmp_path, INSTANCE) as sink:
        await sink.commit(batch1)
        monkeypatch.setattr(SqliteCursorStore, "save", flaky_save)
        with pytest.raises(RetriableError, match="disk I/O error"):
            await sink.commit(batch2)
        assert _ids(tmp_path, CHANNEL) == [1]
        assert await sink.load_cursors() == dict(batch1.cursors)
        await sink.commit(batch2)
        assert _ids(tmp_path, CHANNEL) == [1, 2, 3]
        assert await sink.load_cursors() == dict(batch2.cursors)


async def test_cancelled_commit_still_completes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancelling the caller mid-commit neither tears the commit nor lets the next one overlap it."""
    real_save = SqliteCursorStore.save
    entered, release = asyncio.Event(), asyncio.Event()

    async def gated_save(self: SqliteCursorStore, *args: object, **kwargs: object) -> None:
        entered.set()
        await release.wait()
        await real_save(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SqliteCursorStore, "save", gated_save)
    async with FileSink(tmp_path, INSTANCE) as sink:
        caller = asyncio.create_task(sink.commit(_batch({CHANNEL: [1, 2]})))
        await entered.wait()
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        release.set()
        assert await sink.load_cursors() == {CHANNEL: GroupCursor(CHANNEL, 2)}
        await sink.commit(_batch({CHANNEL: [3]}))
    assert _ids(tmp_path, CHANNEL) == [1, 2, 3]


async def test_cursors_survive_reopen(tmp_path: Path) -> None:
    """load_cursors after reopening returns the last committed cursors, including cursor-only groups."""
    live = GroupCursor(BASIC, 10).with_live(15).with_failure("banned")
    async with FileSink(tmp_path, INSTANCE) as sink:
        await sink.commit(_batch({CHANNEL: [1, 2]}))
        await sink.commit(Batch([], {BASIC: live}))
    async with FileSink(tmp_path, INSTANCE) as sink:
        assert await sink.load_cursors() == {CHANNEL: GroupCursor(CHANNEL, 2), BASIC: live}


async def test_missing_committed_file_stops_the_sink(tmp_path: Path) -> None:
    """A committed part removed by hand is reported instead of silently restarting the archive."""
    async with FileSink(tmp_path, INSTANCE) as sink:
        await sink.commit(_batch({CHANNEL: [1]}))
    _parts(tmp_path, CHANNEL)[0].unlink()
    with pytest.raises(FatalError, match="missing"):
        async with FileSink(tmp_path, INSTANCE):
            pass


async def test_state_and_directories_are_private(tmp_path: Path) -> None:
    """The instance directory (group ids in its names) and the state database are owner-only."""
    async with FileSink(tmp_path, INSTANCE) as sink:
        await sink.commit(_batch({CHANNEL: [1]}))
    assert stat.S_IMODE((tmp_path / INSTANCE).stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / INSTANCE / "state.sqlite").stat().st_mode) == 0o600


async def test_lifecycle(tmp_path: Path) -> None:
    """Commits need an open sink; stop is idempotent; a stopped sink cannot reopen."""
    sink = FileSink(tmp_path, INSTANCE)
    with pytest.raises(RuntimeError, match="not open"):
        await sink.commit(_batch({CHANNEL: [1]}))
    async with sink:
        pass
    await sink.stop()
    with pytest.raises(RuntimeError, match="not open"):
        await sink.load_cursors()
    with pytest.raises(RuntimeError, match="closed"):
        await sink.__aenter__()


@pytest.mark.parametrize(
    ("instance", "kwargs"),
    [("..", {}), ("a/b", {}), ("", {}), ("ok", {"rotate_bytes": 0}), ("ok", {"codec": "snappy"})],
)
def test_bad_configuration_is_refused(tmp_path: Path, instance: str, kwargs: dict[str, object]) -> None:
    """Unsafe instance names, non-positive rotation sizes and codecs needing extra packages are refused."""
    with pytest.raises(ConfigError):
        FileSink(tmp_path, instance, **kwargs)  # type: ignore[arg-type]


def test_read_group_of_unknown_group_is_empty(tmp_path: Path) -> None:
    """Reading a group that has no files yields nothing."""
    assert list(read_group(tmp_path, INSTANCE, CHANNEL)) == []
