"""Fakes for tests of code built on the emitter (ours and yours): an in-memory sink and a list source."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from types import TracebackType
from typing import Self

from emitter.cursor import GroupCursor
from emitter.errors import RetriableError, SourceError
from emitter.protocols import Batch, CursorView, Page
from emitter.records import Group, MessageEvent


class MemorySink:
    """A `Sink` that keeps committed batches in memory and can fail on purpose.

    Args:
        fail_commits: commit attempt numbers (1-based) that raise RetriableError instead of committing.
    """

    def __init__(self, cursors: dict[int, GroupCursor] | None = None, *, fail_commits: Iterable[int] = ()) -> None:
        self.cursors: dict[int, GroupCursor] = dict(cursors or {})
        self.events: list[MessageEvent] = []
        self.attempts = 0
        self._fail = set(fail_commits)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def load_cursors(self) -> dict[int, GroupCursor]:
        """The committed cursors."""
        return dict(self.cursors)

    async def commit(self, batch: Batch) -> None:
        """Keep the batch, or fail if this attempt was scripted to fail."""
        self.attempts += 1
        if self.attempts in self._fail:
            raise RetriableError(f"scripted failure of commit attempt {self.attempts}")
        self.events.extend(batch.events)
        self.cursors.update(batch.cursors)


class ListSource:
    """A `MessageSource` that replays fixed pages per group, then ends (or fails a group on request)."""

    name = "list"

    def __init__(self, pages: dict[Group, Sequence[Page]], *, fail: dict[int, str] | None = None) -> None:
        self._pages = pages
        self._fail = fail or {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def groups(self) -> Sequence[Group]:
        """The groups that have pages."""
        return list(self._pages)

    async def pages(self, group: Group, cursor: CursorView) -> AsyncIterator[Page]:
        """The group's pages, then the scripted failure if any."""
        for page in self._pages[group]:
            yield page
        if group.id in self._fail:
            raise SourceError(group.id, self._fail[group.id])
