"""Album assembly: records sharing a grouped_id become one post, as tgdata's assemble_albums groups them."""

from __future__ import annotations

from emitter.albums import assemble_albums
from emitter.records import EventType, Group, GroupType
from tests.factories import event

OTHER = Group(id=-1009999, title="other", type=GroupType.SUPERGROUP)


def test_consecutive_members_of_one_album_become_one_post_in_id_order() -> None:
    """Three records with one grouped_id between two singles give three posts, the album's members ascending."""
    records = [event(1), event(4, grouped_id=77), event(2, grouped_id=77, text="caption"), event(3, grouped_id=77)]
    records.append(event(5))
    posts = assemble_albums(records)
    assert [p.message_ids for p in posts] == [(1,), (2, 3, 4), (5,)]
    album = posts[1]
    assert (album.grouped_id, album.text) == (77, "caption")
    assert album.post_id.endswith(":album:77")
    assert posts[0].post_id.endswith(":message:1")


def test_interleaved_members_still_join_their_album() -> None:
    """Members of two albums interleaved (a live update between sweep results) land in their own posts."""
    posts = assemble_albums([event(10, grouped_id=1), event(12, grouped_id=2), event(11, grouped_id=1)])
    assert [(p.grouped_id, p.message_ids) for p in posts] == [(1, (10, 11)), (2, (12,))]


def test_the_same_grouped_id_in_two_groups_is_two_albums() -> None:
    """grouped_id is unique per chat only: equal ids in two groups are not merged."""
    posts = assemble_albums([event(1, grouped_id=5), event(2, grouped_id=5, group=OTHER)])
    assert len(posts) == 2
    assert {p.group_id for p in posts} == {OTHER.id, event(1).group_id}


def test_an_album_split_across_pages_merges_with_the_previous_post() -> None:
    """The second page's members join the post assembled from the first page, given as previous."""
    (first,) = assemble_albums([event(1, grouped_id=9), event(2, grouped_id=9)])
    (merged,) = assemble_albums([event(3, grouped_id=9)], previous={first.post_id: first})
    assert merged.message_ids == (1, 2, 3)


def test_an_edit_replaces_its_member_and_a_delete_removes_it() -> None:
    """A later version of a member replaces it (tgdata would refuse the conflict); a DELETE, which carries no
    grouped_id, removes its member; an album whose members are all deleted is gone."""
    (album,) = assemble_albums([event(1, grouped_id=3, text="a"), event(2, grouped_id=3)])
    edited = event(1, kind=EventType.EDIT, grouped_id=3, text="b")
    (after,) = assemble_albums([edited, event(2, kind=EventType.DELETE, date=None)], previous={album.post_id: album})
    assert (after.message_ids, after.text) == ((1,), "b")
    gone = assemble_albums([event(1, kind=EventType.DELETE, date=None)], previous={after.post_id: after})
    assert gone == ()
