"""Telethon's queue of received updates, made to hand over what piled up in one take.

Telethon's update loop takes one `Updates` container from its queue per turn, and each turn costs about three
passes of the event loop (Python 3.11's `asyncio.wait_for` wraps the queue's `get` in a task of its own). A
busy group's updates arrive one container each, so once the loop is also mapping, committing and decrypting,
the containers pile up faster than the update loop takes them: at 2,000 msgs/s on two shared cores, updates
waited in this queue up to a second (p99) after Telethon had decrypted them, while the emitter's own loop was
never late by more than 20 ms.

So containers that Telegram itself could have sent as one are merged as they are queued: plain `updates`
with no `seq` (channel boxes and other pts-numbered changes, which a container does not order by `seq`),
every update in them numbered by pts, none an answer to the account's own request. Telethon then checks
and applies their pts one by one as it does for any container, in the same order, so gaps and duplicates are
handled as before; it only takes them in one turn. As in any container of several updates, each update's
entities are the container's: a user renamed within one merged burst is seen with the newer name.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from telethon import TelegramClient, types

log = logging.getLogger("emitter.telegram")

MAX_MERGED: Final = 100
"""Updates in one merged container at most: a long stall hands Telethon pieces, not one turn for everything."""


def _mergeable(item: Any) -> bool:
    return (
        type(item) is types.Updates
        and not item.seq
        and not getattr(item, "_self_outgoing", False)
        and all(hasattr(u, "pts_count") for u in item.updates)
    )


def _newest(earlier: list[Any], later: list[Any]) -> list[Any]:
    """`earlier + later` without the entities `later` has again: every container of a burst carries its author and
    its chat, and Telethon's caches keep the last of each anyway (`min` ones apart, so they are kept apart)."""
    if not earlier:
        return later
    again = {(type(e), e.id, getattr(e, "min", False)) for e in later}
    return [e for e in earlier if (type(e), e.id, getattr(e, "min", False)) not in again] + later


class CoalescingQueue(asyncio.Queue[Any]):
    """An `asyncio.Queue` that merges a mergeable container into the mergeable one queued last."""

    def _put(self, item: Any) -> None:
        queue = self._queue  # type: ignore[attr-defined]  # asyncio.Queue's deque, what `_put` exists to fill
        if queue and _mergeable(item):
            last = queue[-1]
            if _mergeable(last) and len(last.updates) + len(item.updates) <= MAX_MERGED:
                queue[-1] = types.Updates(
                    updates=[*last.updates, *item.updates],
                    users=_newest(last.users, item.users),
                    chats=_newest(last.chats, item.chats),
                    date=max(last.date, item.date),
                    seq=0,
                )
                return
        queue.append(item)


def coalesce_updates(client: TelegramClient) -> bool:
    """Make the client's update queue a `CoalescingQueue` (in place: its sender holds the same queue, and
    nothing queued is lost). False, with a debug line, when this Telethon's queue is not the one expected."""
    queue = getattr(client, "_updates_queue", None)
    if isinstance(queue, CoalescingQueue):
        return True
    if type(queue) is not asyncio.Queue:
        log.debug("Telethon's update queue is %r, not an asyncio.Queue: updates are taken one at a time", queue)
        return False
    queue.__class__ = CoalescingQueue
    return True
