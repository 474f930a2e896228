"""The sweep planner: which ids to fetch by id, and how far a fetch lets the cursor move (pure).

A sweep fills what live updates missed. In channels and supergroups ids are assigned one after another, so
the holes between the cursor and the highest live id are fetched by id. Telegram may leave ids that exist
out of a `GetMessages` answer (NOTES.md): an id that came back neither as a message nor as `MessageEmpty`
is unknown, not deleted, so the cursor stops in front of it and the history walk that follows reads it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from emitter.cursor import GroupCursor

MAX_HOLES: Final = 1000
"""Above this many holes a sweep walks history instead of fetching ids."""
IDS_PER_REQUEST: Final = 100
"""Telegram's limit for one `GetMessages`."""


def holes_to_fetch(cursor: GroupCursor, limit: int = MAX_HOLES) -> list[int] | None:
    """Ids to fetch by id before the tail walk; None when there are too many (walk history instead)."""
    if not cursor.above:
        return []
    holes = cursor.holes(limit + 1)
    return holes if len(holes) <= limit else None


def chunks(ids: list[int], size: int = IDS_PER_REQUEST) -> list[list[int]]:
    """`ids` in requests of at most `size`."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def proven_to(cursor: GroupCursor, returned: Iterable[int], empty: Iterable[int]) -> int:
    """The highest id the cursor may move to after fetching its holes.

    Every id between the cursor and the result was returned (and is published with this page), came back
    empty (deleted), or was already published live. The first id that was left out stops it.
    """
    known = set(returned) | set(empty)
    position = max(cursor.cursor, 0)
    for lo, hi in cursor.above:
        for msg_id in range(position + 1, lo):
            if msg_id not in known:
                return max(cursor.cursor, msg_id - 1)
        position = hi
    return max(cursor.cursor, position)
