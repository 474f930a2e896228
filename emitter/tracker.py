"""The tracker: per-group cursors accepted ahead of the committed ones, and duplicate filtering.

It is the seed library's `MessageTrackerInterface` backed by `GroupCursor`s instead of a set of ids, so
its memory does not grow with history: `is_processed` asks the cursor, `mark_processed` adds a live id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from emitter.cursor import GroupCursor
from emitter.protocols import MessageInfo, Page
from emitter.records import EventType, MessageEvent


class Tracker:
    """Accepted cursors of every group; `accept` turns a source's page into the events to publish."""

    def __init__(self, committed: Mapping[int, GroupCursor] | None = None) -> None:
        self._cursors: dict[int, GroupCursor] = dict(committed or {})
        self.duplicates = 0
        """NEW events dropped because they were already published (a live update the sweep also found)."""

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
        fresh: list[MessageEvent] = []
        new_ids: list[int] = []
        for event in page.events:
            if event.event_type is EventType.NEW:
                if cur.is_published(event.message_id):
                    self.duplicates += 1
                    continue
                new_ids.append(event.message_id)
            fresh.append(event)
        if page.walked_to is not None:
            cur = cur.walked_to(page.walked_to)
        # Whatever lies above the cursor once the page is taken is published all the same: live events, and
        # ids a by-id fetch returned beyond an id Telegram left out (the cursor stopped in front of that one).
        for msg_id in new_ids:
            if msg_id > cur.cursor:
                cur = cur.with_live(msg_id)
        if page.moved_to is not None:
            cur = cur.with_move(page.moved_to.id)
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
