"""A `Sink` that archives events as Avro Object Container Files, one series of parts per group.

Layout::

    <data_dir>/<instance>/state.sqlite              committed cursors and file positions
    <data_dir>/<instance>/<group_id>/part-000001.avro
    <data_dir>/<instance>/<group_id>/part-000002.avro  ...

Exactly-once across crashes: a commit appends the batch's records to the files and fsyncs them, then
stores every touched group's cursor together with its (current part, byte length) in ONE SQLite
transaction; that transaction is the commit point. Bytes past the committed length, and parts past the
committed part, belong to no commit: opening the sink (and a failed commit) cuts them off again. Appending
after a committed length continues a valid file, because an OCF is a header followed by self-delimited
blocks that each end with the file's sync marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import fastavro
from fastavro.write import Writer

from emitter.codec import AvroRecord, message_schema, to_avro
from emitter.cursor import GroupCursor
from emitter.cursor_store import SqliteCursorStore
from emitter.errors import ConfigError, FatalError, RetriableError
from emitter.protocols import Batch
from emitter.records import MessageEvent

__all__ = ["CODECS", "DEFAULT_ROTATE_BYTES", "FileSink", "read_group"]

DEFAULT_ROTATE_BYTES: Final = 64 * 1024 * 1024
CODECS: Final = frozenset({"null", "deflate", "bzip2", "xz"})
"""The codecs that need no extra package on either side, so any Avro tool can read the files."""

STATE_FILE: Final = "state.sqlite"
_PART_RE: Final = re.compile(r"part-(\d{6,})\.avro")
_GROUP_DIR_RE: Final = re.compile(r"-?\d+")
# Avro's usual block size; smaller when parts are tiny, so that rotation can still split a batch.
_BLOCK_BYTES: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class _Position:
    """The committed end of a group's files: its current part and that part's length in bytes."""

    part: int
    length: int

    def to_bytes(self) -> bytes:
        return json.dumps({"file": _part_name(self.part), "length": self.length}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> _Position:
        try:
            doc = json.loads(data)
            name, length = str(doc["file"]), int(doc["length"])
        except (KeyError, TypeError, ValueError) as e:
            raise FatalError(f"unreadable file position in the sink state: {e}") from e
        match = _PART_RE.fullmatch(name)
        if match is None:
            raise FatalError(f"unreadable file position in the sink state: {name!r} is not a part file")
        return cls(int(match.group(1)), length)


def _part_name(part: int) -> str:
    return f"part-{part:06d}.avro"


class FileSink:
    """Writes batches to per-group Avro files with their cursors in SQLite, exactly once across crashes.

    Args:
        data_dir: the root directory; the sink owns `<data_dir>/<instance>/`.
        instance: the emitter instance name, a single path component.
        rotate_bytes: start a new part once the current one has reached this size.
        codec: the Avro block codec of new parts (existing parts keep theirs).
    """

    def __init__(
        self,
        data_dir: Path,
        instance: str,
        *,
        rotate_bytes: int = DEFAULT_ROTATE_BYTES,
        codec: str = "deflate",
    ) -> None:
        if not instance or instance in {".", ".."} or "/" in instance or "\\" in instance or "\0" in instance:
            raise ConfigError(f"instance name {instance!r} cannot be a directory name")
        if rotate_bytes < 1:
            raise ConfigError(f"rotate_bytes must be positive, got {rotate_bytes}")
        if codec not in CODECS:
            raise ConfigError(f"unsupported Avro codec {codec!r}; choose one of {', '.join(sorted(CODECS))}")
        self.directory = data_dir / instance
        self.instance = instance
        self._rotate_bytes = rotate_bytes
        self._codec = codec
        self._sync_interval = min(_BLOCK_BYTES, rotate_bytes)
        self._schema = message_schema().parsed
        self._store = SqliteCursorStore(self.directory / STATE_FILE)
        self._positions: dict[int, _Position] = {}
        self._lock = asyncio.Lock()
        self._inflight: asyncio.Task[None] | None = None
        self._open = False
        self._closed = False
        self._broken: str | None = None

    async def __aenter__(self) -> Self:
        """Open the state and cut the files back to the last commit."""
        if self._closed:
            raise RuntimeError("FileSink is closed; create a new one")
        try:
            await asyncio.to_thread(self.directory.mkdir, mode=0o700, parents=True, exist_ok=True)
            await self._store.open()
            await self._recover()
        except BaseException:
            await self.stop()
            raise
        self._open = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Wait for a commit still running, then close the state; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._open = False
        async with self._lock:
            await self._settle()
            await self._store.close()

    async def load_cursors(self) -> dict[int, GroupCursor]:
        """The committed cursors of this instance, by group id."""
        self._check_open()
        async with self._lock:
            await self._settle()
            self._check_open()
            return await self._store.load(self.instance)

    async def commit(self, batch: Batch) -> None:
        """Append the batch's records to their groups' files and commit them with the cursors.

        If the caller is cancelled, the commit still runs to its end (committed, or undone); the next call
        waits for it, and `load_cursors()` tells which.

        Raises:
            RetriableError: an I/O or SQLite error; the files were cut back to the last commit.
            FatalError: the files could not be cut back; reopen the sink to recover.
        """
        self._check_open()
        async with self._lock:
            await self._settle()
            self._check_open()
            if self._broken is not None:
                raise FatalError(self._broken)
            self._inflight = asyncio.create_task(self._commit(batch))
            await asyncio.shield(self._inflight)

    # --- the async steps -----------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._open:
            raise RuntimeError("FileSink is not open; use `async with FileSink(...)`")

    async def _settle(self) -> None:
        """Wait for a commit whose caller was cancelled, so that no two commits overlap."""
        task = self._inflight
        if task is None:
            return
        # Unlike `await task`, being cancelled while waiting here does not cancel the commit.
        await asyncio.wait([task])
        self._inflight = None
        if not task.cancelled():
            task.exception()  # its outcome went to the cancelled caller; mark it retrieved

    async def _commit(self, batch: Batch) -> None:
        if not batch.events and not batch.cursors:
            return
        try:
            positions = await asyncio.to_thread(self._append_batch, batch.events)
            extra = {group_id: p.to_bytes() for group_id, p in positions.items()}
            await self._store.save(self.instance, batch.cursors, extra)
        except BaseException as e:
            await self._undo(e)
            raise
        self._positions.update(positions)

    async def _undo(self, error: BaseException) -> None:
        """Cut the files back to what the state says is committed, after a commit failed."""
        try:
            await self._recover()
        except Exception as undo_error:
            self._broken = f"file sink {self.directory}: could not undo a failed commit ({undo_error})"
            raise FatalError(self._broken) from error
        if isinstance(error, OSError | sqlite3.Error):
            raise RetriableError(f"file sink {self.directory}: commit failed: {error}") from error

    async def _recover(self) -> None:
        """Make the files hold exactly what the committed state says, reading that state afresh."""
        committed = await self._store.load_extra(self.instance)
        positions = {group_id: _Position.from_bytes(b) for group_id, b in committed.items()}
        await asyncio.to_thread(_cut_back, self.directory, positions)
        self._positions = positions

    # --- blocking file I/O, run in a worker thread ---------------------------------------------------------

    def _append_batch(self, events: Sequence[MessageEvent]) -> dict[int, _Position]:
        """Append every group's records, fsynced; return each touched group's new end of file."""
        by_group: dict[int, list[AvroRecord]] = {}
        for event in events:
            by_group.setdefault(event.group_id, []).append(to_avro(event))
        return {group_id: self._append_group(group_id, records) for group_id, records in by_group.items()}

    def _append_group(self, group_id: int, records: list[AvroRecord]) -> _Position:
        group_dir = self.directory / str(group_id)
        committed = self._positions.get(group_id)
        if committed is None:
            group_dir.mkdir(mode=0o700, exist_ok=True)
            _fsync_dir(self.directory)
            part, new = 1, True
        elif committed.length >= self._rotate_bytes:
            part, new = committed.part + 1, True
        else:
            part, new = committed.part, False
        created = new
        done = 0
        while True:
            done, length = self._write_part(group_dir / _part_name(part), records, done, new=new)
            if done == len(records):
                break
            part, new, created = part + 1, True, True
        if created:
            # The new parts' directory entries must be durable before the state points at them.
            _fsync_dir(group_dir)
        return _Position(part, length)

    def _write_part(self, path: Path, records: list[AvroRecord], start: int, *, new: bool) -> tuple[int, int]:
        """Write `records[start:]` to one part until it reaches the rotation size; fsync it.

        Returns the index of the first record not written, and the part's length.
        """
        # "wb" for a new part also drops a torn leftover; "a+b" lets fastavro read the existing header and
        # sync marker and append blocks that continue the same file.
        with path.open("wb" if new else "a+b") as fo:
            writer = Writer(fo, self._schema, codec=self._codec, sync_interval=self._sync_interval)
            i = start
            # At least one record per part, or a header larger than rotate_bytes would never let go.
            while i < len(records) and (i == start or fo.tell() < self._rotate_bytes):
                writer.write(records[i])
                i += 1
            writer.flush()
            os.fsync(fo.fileno())
            return i, fo.tell()


def _cut_back(directory: Path, positions: dict[int, _Position]) -> None:
    """Truncate each group's current part to its committed length and drop everything after it."""
    for group_id, committed in positions.items():
        current = directory / str(group_id) / _part_name(committed.part)
        if not current.is_file():
            raise FatalError(f"committed file {current} is missing: the archive was changed by hand")
    for entry in directory.iterdir():
        if not (entry.is_dir() and _GROUP_DIR_RE.fullmatch(entry.name)):
            continue
        position = positions.get(int(entry.name))
        for part, path in _parts(entry):
            if position is None or part > position.part:
                path.unlink()
            elif part == position.part:
                _truncate(path, position.length)
        if position is None:
            # Only our files went; anything else a user put there keeps the directory alive.
            with contextlib.suppress(OSError):
                entry.rmdir()
        else:
            _fsync_dir(entry)
    _fsync_dir(directory)


def _truncate(path: Path, length: int) -> None:
    size = path.stat().st_size
    if size < length:
        raise FatalError(f"{path} has {size} bytes but {length} were committed: the archive was changed by hand")
    if size > length:
        with path.open("r+b") as fo:
            fo.truncate(length)
            os.fsync(fo.fileno())


def _parts(group_dir: Path) -> list[tuple[int, Path]]:
    """The group's part files, in order."""
    found = ((_PART_RE.fullmatch(p.name), p) for p in group_dir.iterdir())
    return sorted((int(m.group(1)), p) for m, p in found if m is not None)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_group(data_dir: Path, instance: str, group_id: int) -> Iterator[AvroRecord]:
    """The records of one group, all parts in order, as fastavro decodes them.

    Reads the files as they are: after a crash, blocks written past the last commit stay visible until a
    `FileSink` opens the directory again and cuts them off.
    """
    group_dir = data_dir / instance / str(group_id)
    if not group_dir.is_dir():
        return
    for _, path in _parts(group_dir):
        with path.open("rb") as fo:
            for record in fastavro.reader(fo):
                if not isinstance(record, dict):
                    raise TypeError(f"{path} holds {type(record).__name__} values, not records")
                yield record
