"""Cursor arithmetic: the rules that make the stream lossless and duplicate-free."""

from __future__ import annotations

import pytest

from emitter.cursor import GroupCursor


@pytest.mark.parametrize(
    ("live", "expected_above"),
    [
        ([5], ((5, 5),)),
        ([5, 6, 7], ((5, 7),)),
        ([7, 5, 6], ((5, 7),)),
        ([5, 9, 7], ((5, 5), (7, 7), (9, 9))),
        ([5, 9, 7, 6, 8], ((5, 9),)),
        ([2, 3], ()),  # at or below the cursor: already published
    ],
)
def test_live_ids_are_kept_as_merged_ranges(live: list[int], expected_above: tuple[tuple[int, int], ...]) -> None:
    """Live ids above the cursor are stored as sorted, merged ranges."""
    cur = GroupCursor(1, cursor=3)
    for msg_id in live:
        cur = cur.with_live(msg_id)
    assert cur.above == expected_above
    assert cur.cursor == 3


def test_published_means_at_or_below_cursor_or_live() -> None:
    """An id is published when the walk passed it or a live update delivered it."""
    cur = GroupCursor(1, cursor=10).with_live(15)
    assert [i for i in range(8, 18) if cur.is_published(i)] == [8, 9, 10, 15]


@pytest.mark.parametrize(
    ("above", "walk_to", "cursor", "left"),
    [
        (((15, 20),), 12, 12, ((15, 20),)),  # a hole 13-14 remains: the live range stays apart
        (((15, 20),), 14, 20, ()),  # touching the live range folds it in
        (((15, 20), (30, 31)), 25, 25, ((30, 31),)),  # passed ranges are dropped
        (((15, 20), (22, 23)), 21, 23, ()),  # contiguous chains fold repeatedly
        ((), 5, 10, ()),  # the cursor never moves backwards
    ],
)
def test_walk_moves_cursor_and_folds_live_ranges(
    above: tuple[tuple[int, int], ...], walk_to: int, cursor: int, left: tuple[tuple[int, int], ...]
) -> None:
    """An ascending walk moves the cursor and absorbs live ranges it reaches."""
    cur = GroupCursor(1, cursor=10, above=above).walked_to(walk_to)
    assert (cur.cursor, cur.above) == (cursor, left)


def test_holes_lists_unpublished_ids_below_the_highest_live_id() -> None:
    """Holes are exactly the ids between cursor and live ranges that nobody published."""
    cur = GroupCursor(1, cursor=10, above=((13, 14), (17, 17)))
    assert cur.holes(100) == [11, 12, 15, 16]
    assert cur.holes(3) == [11, 12, 15]
    assert cur.highest == 17


def test_bytes_roundtrip_keeps_every_field() -> None:
    """The cursor topic's JSON value restores the same cursor."""
    cur = GroupCursor(-1001, cursor=42, above=((50, 60), (70, 70)), failed="ChannelPrivateError", moved_to=-1002)
    assert GroupCursor.from_bytes(cur.to_bytes()) == cur
    assert GroupCursor.from_bytes(GroupCursor(5).to_bytes()) == GroupCursor(5)


def test_bytes_roundtrip_keeps_the_read_budget_spending() -> None:
    """A cursor's read-budget buckets survive the cursor topic, so a restart does not reset the budget."""
    cur = GroupCursor(-1001, cursor=42, reads=((1_700_000_400, 300), (1_700_004_000, 700)))
    assert b'"reads":[[1700000400,300],[1700004000,700]]' in cur.to_bytes()
    assert GroupCursor.from_bytes(cur.to_bytes()).reads == cur.reads


@pytest.mark.parametrize("raw", [b"", b"{}", b'{"v": 99, "group_id": 1, "cursor": 1}', b"[1,2]", b"not json"])
def test_garbage_is_not_a_cursor(raw: bytes) -> None:
    """Anything but a cursor document raises ValueError instead of restoring a wrong position."""
    with pytest.raises(ValueError, match="cursor"):
        GroupCursor.from_bytes(raw)
