"""The sweep planner: holes to fetch, and a cursor that never passes an id Telegram left out."""

from __future__ import annotations

import pytest

from emitter.cursor import GroupCursor, PeerRef
from emitter.protocols import Page
from emitter.records import EventType, Group, MessageEvent, Source, utc_now
from emitter.sweep import chunks, holes_to_fetch, proven_to
from emitter.tracker import Tracker


def event(group: Group, msg_id: int) -> MessageEvent:
    return MessageEvent(EventType.NEW, group, msg_id, Source.SWEEP, utc_now())


def live(cursor: int, *ids: int) -> GroupCursor:
    cur = GroupCursor(1, cursor=cursor)
    for msg_id in ids:
        cur = cur.with_live(msg_id)
    return cur


def test_a_cursor_without_live_ids_has_no_holes() -> None:
    """Nothing was published above the cursor: nothing to fetch by id, the tail walk does it all."""
    assert holes_to_fetch(GroupCursor(1, cursor=10)) == []


def test_too_many_holes_means_walking_history() -> None:
    """Past the limit the planner says walk (None) instead of fetching thousands of ids."""
    assert holes_to_fetch(live(0, 5000), limit=1000) is None
    assert holes_to_fetch(live(0, 11), limit=10) == list(range(1, 11))


@pytest.mark.parametrize(
    ("cursor", "returned", "empty", "expected"),
    [
        # live 14..15 and 18; holes 11, 12, 13, 16, 17
        (live(10, 14, 15, 18), {11, 12, 13, 16, 17}, set(), 18),  # all returned: up to the highest live id
        (live(10, 14, 15, 18), {11, 13, 16, 17}, {12}, 18),  # 12 deleted (MessageEmpty): proven gone
        (live(10, 14, 15, 18), {11, 13, 16, 17}, set(), 11),  # 12 left out: the cursor stops before it
        (live(10, 14, 15, 18), {11, 12, 13, 17}, set(), 15),  # 16 left out: stops after the live run
        (live(10, 14, 15, 18), set(), set(), 10),  # everything left out: the cursor stays
    ],
)
def test_the_cursor_moves_only_over_ids_proven(
    cursor: GroupCursor, returned: set[int], empty: set[int], expected: int
) -> None:
    """Returned, deleted or published live: only those ids let the cursor pass (Telegram omits ids)."""
    assert proven_to(cursor, returned, empty) == expected


def test_an_omitted_id_is_read_by_the_next_walk() -> None:
    """After the cursor stops in front of an omitted id, the history walk from it starts at that id."""
    cur = live(10, 14, 15, 18)
    moved = cur.walked_to(proven_to(cur, {11, 13, 16, 17}, set()))
    assert moved.cursor == 11
    assert not moved.is_published(12)
    assert moved.is_published(14) and moved.is_published(18)


def test_chunks_respect_telegrams_hundred_ids_per_request() -> None:
    """GetMessages takes at most 100 ids."""
    parts = chunks(list(range(250)))
    assert [len(p) for p in parts] == [100, 100, 50]
    assert [i for p in parts for i in p] == list(range(250))


def test_a_stored_peer_survives_the_cursor_document() -> None:
    """The input peer stored with the cursor comes back from its bytes (resolve once)."""
    cur = GroupCursor(-1001234, cursor=7, peer=PeerRef("channel", 1234, 987654321, "somechannel"))
    assert GroupCursor.from_bytes(cur.to_bytes()) == cur
    old = GroupCursor(-1001234, cursor=7)
    assert GroupCursor.from_bytes(old.to_bytes()).peer is None
    assert cur.walked_to(9).peer == cur.peer and cur.with_live(12).peer == cur.peer


def test_ids_returned_beyond_an_omitted_one_count_as_published() -> None:
    """A by-id page whose cursor stops before an omitted id still records what it returned above it, so the
    history walk that follows does not publish those ids a second time."""
    group = Group(id=1)
    tracker = Tracker({1: live(0, 10)})
    returned = [event(group, i) for i in (1, 2, 4, 5)]  # 3 left out, 6-9 too
    events, cur = tracker.accept(Page(group, returned, walked_to=proven_to(tracker.cursor(1), {1, 2, 4, 5}, set())))
    assert [e.message_id for e in events] == [1, 2, 4, 5]
    assert cur.cursor == 2 and cur.is_published(4) and cur.is_published(5) and not cur.is_published(3)
    walk = [event(group, i) for i in range(3, 11)]
    again, cur = tracker.accept(Page(group, walk, walked_to=10))
    assert [e.message_id for e in again] == [3, 6, 7, 8, 9]
    assert cur.cursor == 10 and cur.above == ()
