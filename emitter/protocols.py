"""The pluggable pieces of the emitter, as Protocols, and the plain values that pass between them.

Data flows one way: a `MessageSource` yields `Page`s per group; the tracker drops what was already
published and moves the cursor; a `Batch` of events and cursors goes to a `Sink`, which commits both
atomically. Sources know nothing of sinks, and sinks nothing of Telegram.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from emitter.cursor import GroupCursor, PeerRef
from emitter.read_budget import Spending
from emitter.records import Group, MessageEvent


@dataclass(frozen=True, slots=True)
class Page:
    """Events of one group as a source produced them.

    `walked_to` is set when an ascending walk (backfill, sweep, export) covered every id up to it, so the
    cursor may move there; live pages leave it None and their NEW ids join the cursor's `above` set.
    """

    group: Group
    events: Sequence[MessageEvent]
    walked_to: int | None = None
    moved_to: Group | None = None
    """Set when the group migrated (basic group → supergroup): follow the new one from here."""
    total: int | None = None
    """Messages in the group's history as the source last saw it (for backfill progress)."""
    span_context: Any = None
    """The OpenTelemetry SpanContext of the page's fetch, linked from the transaction that carries it."""
    peer: PeerRef | None = None
    """How to reach the group without resolving it again, stored with its cursor."""
    failed: str | None = None
    """Set on an empty page when the group cannot be read now (lost access): the cursor records why, and the
    source tries again later. A later page without it marks the group healthy again."""
    pts: int | None = None
    """The group's update position once this page is published: every change up to it is in this page or
    an earlier one (see `GroupCursor.pts`)."""
    pts_date: int | None = None
    """The account box's date at `pts` (basic groups)."""
    heartbeat: int | None = None
    """Set (Unix ms) on the pages a quiet group yields to say it is alive; the cursor records it."""
    paused_until: float | None = None
    """Set on the empty page a backfill yields when it pauses (the read budget is spent): when it resumes,
    Unix seconds, for the progress board."""
    reads: Spending | None = None
    """The group's read-budget spending once this page is published (backfill pages under a budget)."""


@dataclass(frozen=True, slots=True)
class Batch:
    """What one sink commit writes: the events, and the cursor of every group they touch."""

    events: Sequence[MessageEvent]
    cursors: Mapping[int, GroupCursor]
    first_added: float = 0.0
    """Monotonic time the oldest event joined the batch (for latency metrics)."""
    links: tuple[Any, ...] = ()
    """SpanContexts of the pages in the batch (at most `MAX_LINKS`)."""


@dataclass(frozen=True, slots=True)
class Window:
    """Bounds of the backfill (never of following): where the first walk starts and when it stops."""

    start_date: datetime | None = None
    end_date: datetime | None = None
    after_id: int | None = None
    limit: int | None = None


CursorView = Callable[[int], GroupCursor]
"""Returns a group's latest accepted cursor by id, so a source can start a sweep where publishing stands
(and, after a migration, find the cursor of the group it moved to)."""


@runtime_checkable
class MessageSource(Protocol):
    """Yields pages of events for the groups it serves."""

    name: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def groups(self) -> Sequence[Group]:
        """The groups to monitor, resolved (ids, titles)."""
        ...

    def pages(self, group: Group, cursor: CursorView) -> AsyncIterator[Page]:
        """Events of `group` after the cursor: backfill first, then (for a live source) follow forever."""
        ...


@runtime_checkable
class Sink(Protocol):
    """Where batches go; a commit is atomic: the events and the cursors land together or not at all."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def load_cursors(self) -> dict[int, GroupCursor]:
        """The committed cursors of this emitter instance, by group id."""
        ...

    async def commit(self, batch: Batch) -> None:
        """Write the batch atomically; raise RetriableError to have it retried, FatalError to stop."""
        ...


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """What a tracker records of one processed message (the tgdata `MessageInfo` shape)."""

    message_id: int
    group_id: int
    sender_id: int | None = None
    date: datetime | None = None
    extra: Mapping[str, object] = field(default_factory=dict)


@runtime_checkable
class MessageTrackerInterface(Protocol):
    """Remembers which messages were processed, so that nothing is handled twice.

    The tgdata contract: implement these two, plus `mark_batch_processed` for speed.
    """

    async def is_processed(self, message_id: int, group_id: int) -> bool:
        """Whether the message was already processed."""
        ...

    async def mark_processed(self, message_info: MessageInfo) -> None:
        """Record the message as processed."""
        ...

    async def mark_batch_processed(self, messages: Sequence[MessageInfo]) -> None:
        """Record several messages as processed at once."""
        ...
