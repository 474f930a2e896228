"""The tracker's change rules and the digest that carries what was published across restarts."""

from __future__ import annotations

import zlib
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emitter.cursor import GroupCursor
from emitter.digest import Digest, entry_of, message_hash
from emitter.protocols import Page
from emitter.records import Change, EventType, Reaction, Source
from emitter.tracker import Tracker
from tests.factories import GROUP, event


def _published(tracker: Tracker, *ids: int) -> None:
    tracker.accept(Page(GROUP, [event(i) for i in ids], walked_to=max(ids)))


def test_an_edit_of_a_message_never_published_becomes_its_new() -> None:
    """A consumer never sees an EDIT of a message it has no NEW for: the first one it gets is the NEW."""
    tracker = Tracker(digest_limit=500)
    _published(tracker, 1)
    fresh, cur = tracker.accept(Page(GROUP, [event(5, kind=EventType.EDIT, text="v2", source=Source.LIVE)]))
    assert [(e.event_type, e.text) for e in fresh] == [(EventType.NEW, "v2")]
    assert cur.is_published(5)
    fresh, _ = tracker.accept(Page(GROUP, [event(5, source=Source.SWEEP, text="v2")], walked_to=5))
    assert fresh == []  # the sweep finding it later is a duplicate


def test_an_edit_that_changes_nothing_published_is_dropped_and_a_reaction_change_says_so() -> None:
    """Same content twice (catch-up then rescan) publishes once; reactions alone make change=REACTIONS."""
    tracker = Tracker(digest_limit=500)
    _published(tracker, 1)
    edit = event(1, kind=EventType.EDIT, text="v2", source=Source.CATCHUP)
    assert len(tracker.accept(Page(GROUP, [edit]))[0]) == 1
    assert tracker.accept(Page(GROUP, [replace(edit, source=Source.RESCAN)]))[0] == []
    reacted = replace(edit, source=Source.RESCAN, reactions=(Reaction("👍", 3),))
    fresh, _ = tracker.accept(Page(GROUP, [reacted]))
    assert [(e.event_type, e.change) for e in fresh] == [(EventType.EDIT, Change.REACTIONS)]
    assert tracker.unchanged == 1


def test_changes_at_or_below_the_position_are_stale() -> None:
    """An EDIT or DELETE whose pts the group's position has passed was published already."""
    tracker = Tracker(digest_limit=500)
    _published(tracker, 1, 2)
    fresh, cur = tracker.accept(Page(GROUP, [event(1, kind=EventType.EDIT, text="x", pts=10)], pts=10))
    assert len(fresh) == 1 and cur.pts == 10
    fresh, _ = tracker.accept(Page(GROUP, [event(2, kind=EventType.DELETE, pts=9)], pts=10))
    assert fresh == [] and tracker.stale == 1


def test_a_delete_of_a_message_no_consumer_has_is_dropped() -> None:
    """Never published, or deleted already (the digest covers its id): nothing to delete."""
    tracker = Tracker(digest_limit=500)
    _published(tracker, 1, 2, 3)
    assert len(tracker.accept(Page(GROUP, [event(2, kind=EventType.DELETE)]))[0]) == 1
    assert tracker.accept(Page(GROUP, [event(2, kind=EventType.DELETE)]))[0] == []
    assert tracker.accept(Page(GROUP, [event(50, kind=EventType.DELETE)]))[0] == []
    assert tracker.unseen_deletes == 2


def test_the_digest_keeps_the_newest_ids_and_survives_the_cursor_record() -> None:
    """Bounded to the newest `limit` ids; what a restart reads back is what was written."""
    tracker = Tracker(digest_limit=3)
    _published(tracker, *range(1, 8))
    cur = tracker.cursor(GROUP.id)
    assert sorted(cur.digest) == [5, 6, 7]
    assert GroupCursor.from_bytes(cur.to_bytes()) == cur
    assert cur.digest.get(7) == entry_of(event(7))


@given(st.dictionaries(st.integers(-(2**40), 2**40), st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))))
def test_digest_text_round_trips(entries: dict[int, tuple[int, int]]) -> None:
    """Any digest parses back from its text form."""
    digest = Digest(entries)
    assert Digest.from_text(digest.to_text()) == digest


@given(st.text(), st.booleans())
def test_message_hashes_stay_what_committed_digests_hold(text: str, pinned: bool) -> None:
    """A message's hash is the CRC-32 of its joined parts, whichever path computes it, so digests committed by
    an older emitter still match after an upgrade (a mismatch would publish every rescanned message again)."""
    joined = "\x00".join((text, "", "", "p" if pinned else ""))
    assert message_hash(event(1, text=text, pinned=pinned)) == zlib.crc32(joined.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("junk", ["%%%", "AQ==", "gA=="])
def test_a_damaged_digest_is_a_value_error(junk: str) -> None:
    """Bad base64, a truncated entry or a truncated id: ValueError, like every bad cursor field."""
    with pytest.raises(ValueError, match="digest"):
        Digest.from_text(junk)


def test_seconds_since_last_event_is_a_gauge_per_group_that_grows() -> None:
    """emitter_seconds_since_last_event is computed at scrape time from the group's last commit."""
    from emitter.metrics import Metrics  # noqa: PLC0415 - this test only
    from emitter.protocols import Batch  # noqa: PLC0415

    metrics = Metrics()
    assert b"emitter_seconds_since_last_event{" not in metrics.render()
    metrics.observe_commit(Batch([event(1)], {}), 0.01)
    line = next(x for x in metrics.render().decode().splitlines() if x.startswith("emitter_seconds_since_last_event{"))
    assert f'group="{GROUP.id}"' in line and float(line.split()[-1]) >= 0
