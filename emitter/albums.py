"""Albums: the records of one Telegram album (several media sent together) assembled into one post.

Telegram has no album object: an album is messages that share a `grouped_id`, each with its own id, usually
consecutive, the caption on one of them. A reader that wants "posts" groups them back, as tgdata 0.1.4's
`assemble_albums` does, and as it does:

- every record with a `grouped_id` joins the post of its (group, grouped_id), wherever it stands in the input
  (albums are consecutive in practice, but a live update and a sweep can interleave them);
- a record without one is a post of its own;
- members are ordered by message id, posts by their first member's id;
- `previous` carries posts assembled earlier (an album split across two pages) and is merged into.

Where it differs: tgdata works on its `MessageBatch` JSON, returns hashed `TelegramPost` documents and refuses
a batch whose `previous` does not name every affected post, or that holds two different observations of one
message. Records here are events: a later observation of a member (an `EDIT`) replaces the earlier one
instead of being refused, a `DELETE` removes the member (and a post left empty), and `previous` is optional
(a post it lacks starts empty). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from emitter.records import EventType, MessageEvent

__all__ = ["Album", "assemble_albums"]


@dataclass(frozen=True, slots=True)
class Album:
    """One post: the members of an album (or a single message), ordered by message id."""

    group_id: int
    grouped_id: int | None
    members: tuple[MessageEvent, ...]

    @property
    def post_id(self) -> str:
        """tgdata's post key: ``tg:<group>:album:<grouped_id>``, or ``tg:<group>:message:<id>`` for a single."""
        if self.grouped_id is not None:
            return f"tg:{self.group_id}:album:{self.grouped_id}"
        return f"tg:{self.group_id}:message:{self.members[0].message_id}"

    @property
    def message_ids(self) -> tuple[int, ...]:
        """The members' message ids, ascending."""
        return tuple(m.message_id for m in self.members)

    @property
    def text(self) -> str:
        """The album's caption: the first member's text that is not empty ("" if none has one)."""
        return next((m.text for m in self.members if m.text), "")


def _key(event: MessageEvent) -> str:
    if event.grouped_id is not None:
        return f"tg:{event.group_id}:album:{event.grouped_id}"
    return f"tg:{event.group_id}:message:{event.message_id}"


def _holder(message_id: int, group_id: int, *posts: Mapping[str, Album] | dict[str, dict[int, MessageEvent]]) -> str:
    """The key of the post holding `message_id` (a DELETE carries no grouped_id), else its own key."""
    for known in posts:
        for key, post in known.items():
            ids = post.message_ids if isinstance(post, Album) else post
            if key.startswith(f"tg:{group_id}:") and message_id in ids:
                return key
    return f"tg:{group_id}:message:{message_id}"


def assemble_albums(records: Iterable[MessageEvent], previous: Mapping[str, Album] | None = None) -> tuple[Album, ...]:
    """The posts the records touch, each merged with its earlier state in `previous` (keyed by `post_id`).

    Returns only the posts the records affect, ordered by their first member's id; a post whose members
    were all deleted is left out.
    """
    prior = previous or {}
    members: dict[str, dict[int, MessageEvent]] = {}
    for event in records:
        deleted = event.event_type is EventType.DELETE
        key = _holder(event.message_id, event.group_id, members, prior) if deleted else _key(event)
        if key not in members:
            earlier = prior.get(key)
            members[key] = {} if earlier is None else {m.message_id: m for m in earlier.members}
        if deleted:
            members[key].pop(event.message_id, None)
        else:
            members[key][event.message_id] = event
    posts = []
    for found in members.values():
        if not found:
            continue
        ordered = tuple(found[i] for i in sorted(found))
        first = ordered[0]
        posts.append(Album(first.group_id, first.grouped_id, ordered))
    return tuple(sorted(posts, key=lambda p: p.members[0].message_id))
