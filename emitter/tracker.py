"""The tracker: per-group cursors accepted ahead of the committed ones, and duplicate filtering.

It is the seed library's `MessageTrackerInterface` backed by `GroupCursor`s instead of a set of ids, so
its memory does not grow with history: `is_processed` asks the cursor, `mark_processed` adds a live id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from emitter.cursor import GroupCursor
from emitter.digest import Entry, entry_of
from emitter.protocols import MessageInfo, Page
from emitter.records import Change, EventType, MessageEvent


class Tracker:
    """Accepted cursors of every group; `accept` turns a source's page into the events to publish.

    The rules that make each change reach a consumer once, and in an order it can apply:
    - a NEW already published is a duplicate (a live update the sweep found too);
    - an EDIT or DELETE at or below the group's update position was published already (a difference
      fetched twice, a live update Telethon's own gap filling delivered again);
    - an EDIT of a message no NEW was published for becomes that message's NEW, so a consumer never sees
      an edit of a message it does not know (its NEW update was lost, the sweep has not found it yet);
    - an EDIT that leaves what was published unchanged (the digest says so) is dropped, and one that changed
      only reactions says so (`change = REACTIONS`), whichever path found it;
    - a DELETE of a message no consumer was given (never published, or already deleted) is dropped.
    """

    def __init__(self, committed: Mapping[int, GroupCursor] | None = None, *, digest_limit: int = 0) -> None:
        self._cursors: dict[int, GroupCursor] = dict(committed or {})
        self.digest_limit = digest_limit
        """Newest messages per group whose hashes the cursors keep (0: none; see `emitter.digest`)."""
        self.duplicates = 0
        """NEW events dropped because they were already published (a live update the sweep also found)."""
        self.stale = 0
        """EDIT and DELETE events dropped because the group's position was past them."""
        self.unchanged = 0
        """EDIT events dropped because what was published already is what they carry."""
        self.unseen_deletes = 0
        """DELETE events dropped because no consumer was given the message."""

    def cursor(self, group_id: int) -> GroupCursor:
        """The group's latest accepted cursor (a fresh one for a group never seen)."""
        found = self._cursors.get(group_id)
        if found is None:
            found = self._cursors[group_id] = GroupCursor(group_id)
        return found

    def set(self, cursor: GroupCursor) -> None:
        """Replace a group's cursor (failures, migrations)."""
        self._cursors[cursor.group_id] = cursor

    def accept(self, page: Page) -> tuple[list[MessageEvent], GroupCursor]:
        """The page's events minus duplicates, and the group's cursor once they are published."""
        cur = self.cursor(page.group.id).with_peer(page.peer)
        if page.failed is not None:
            self._cursors[cur.group_id] = cur = cur.with_failure(page.failed)
            return [], cur
        if cur.failed is not None:  # a group that yields pages again has recovered (access restored)
            cur = cur.with_failure(None)
        taking = _Taking(cur, digest=self.digest_limit > 0)
        fresh = [e for e in map(taking.take, page.events) if e is not None]
        self.duplicates += taking.duplicates
        self.stale += taking.stale
        self.unchanged += taking.unchanged
        self.unseen_deletes += taking.unseen_deletes
        changes, last_date, new_ids = taking.changes, taking.last_date, taking.new_ids
        if page.walked_to is not None:
            cur = cur.walked_to(page.walked_to)
        # Whatever lies above the cursor once the page is taken is published all the same: live events, and
        # ids a by-id fetch returned beyond an id Telegram left out (the cursor stopped in front of that one).
        for msg_id in new_ids:
            if msg_id > cur.cursor:
                cur = cur.with_live(msg_id)
        if page.moved_to is not None:
            cur = cur.with_move(page.moved_to.id)
        cur = _positioned(cur, page, changes, last_date, self.digest_limit)
        self._cursors[cur.group_id] = cur
        return fresh, cur

    # --- MessageTrackerInterface ------------------------------------------------------------------------

    async def is_processed(self, message_id: int, group_id: int) -> bool:
        """Whether a NEW event for the message was already accepted."""
        return self.cursor(group_id).is_published(message_id)

    async def mark_processed(self, message_info: MessageInfo) -> None:
        """Record one message as processed (as a live id above the cursor)."""
        self.set(self.cursor(message_info.group_id).with_live(message_info.message_id))

    async def mark_batch_processed(self, messages: Sequence[MessageInfo]) -> None:
        """Record several messages as processed."""
        for info in messages:
            await self.mark_processed(info)


class _Taking:
    """The rules of `Tracker.accept` applied to one page's events in order, and what they found."""

    def __init__(self, cur: GroupCursor, *, digest: bool) -> None:
        self.cur = cur
        self.digest = digest
        self.new_ids: list[int] = []
        self.page_new: set[int] = set()
        self.changes: dict[int, Entry | None] = {}
        self.last_date: datetime | None = None
        self.duplicates = self.stale = self.unchanged = self.unseen_deletes = 0

    def take(self, event: MessageEvent) -> MessageEvent | None:
        """The event to publish for `event` (itself, or as a NEW or a REACTIONS change), or None to drop it."""
        cur, msg_id, kind = self.cur, event.message_id, event.event_type
        if kind is not EventType.NEW and event.pts is not None and cur.pts is not None and event.pts <= cur.pts:
            self.stale += 1
            return None
        published = msg_id in self.page_new or cur.is_published(msg_id)
        if kind is EventType.NEW or (kind is EventType.EDIT and not published):
            return self._new(event, published)
        old = self.changes[msg_id] if msg_id in self.changes else cur.digest.get(msg_id)
        if kind is EventType.DELETE:
            gone = old is None and (msg_id in self.changes or _digest_covers(cur, msg_id))
            if not published or gone:
                self.unseen_deletes += 1
                return None
            if self.digest:
                self.changes[msg_id] = None
            return event
        entry = entry_of(event) if self.digest else (0, 0)
        if old is not None:
            if old == entry:
                self.unchanged += 1
                return None
            change = Change.MESSAGE if old[0] != entry[0] else Change.REACTIONS
            if change is not event.change:
                event = replace(event, change=change)
        if self.digest:
            self.changes[msg_id] = entry
        return event

    def _new(self, event: MessageEvent, published: bool) -> MessageEvent | None:
        if published:
            self.duplicates += 1
            return None
        if event.event_type is not EventType.NEW:
            event = replace(event, event_type=EventType.NEW, change=Change.MESSAGE)
        self.page_new.add(event.message_id)
        self.new_ids.append(event.message_id)
        if self.digest:
            self.changes[event.message_id] = entry_of(event)
        if event.date is not None and (self.last_date is None or event.date > self.last_date):
            self.last_date = event.date
        return event


def _digest_covers(cur: GroupCursor, msg_id: int) -> bool:
    """Whether the digest would know `msg_id` if it were still there (it is not older than the digest)."""
    lowest = cur.digest.lowest
    return lowest is not None and msg_id >= lowest


def _positioned(
    cur: GroupCursor, page: Page, changes: Mapping[int, Entry | None], last_date: datetime | None, limit: int
) -> GroupCursor:
    """The cursor with the page's position, heartbeat, newest message time and digest changes."""
    updates: dict[str, object] = {}
    if page.pts is not None:
        updates["pts"] = page.pts
    if page.pts_date is not None:
        updates["pts_date"] = page.pts_date
    if page.heartbeat is not None:
        updates["heartbeat"] = page.heartbeat
    if page.reads is not None:
        updates["reads"] = page.reads
    if last_date is not None:
        ms = int(last_date.timestamp() * 1000)
        if cur.last_event is None or ms > cur.last_event:
            updates["last_event"] = ms
    if changes:
        updates["digest"] = cur.digest.updated(changes.items(), limit)
    return replace(cur, **updates) if updates else cur  # type: ignore[arg-type]  # fields of GroupCursor
