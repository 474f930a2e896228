"""The pure record of one Telegram message event, independent of where it came from or where it goes.

Every source (Telethon, a Desktop export, the demo generator) maps its input to `MessageEvent`; the codec
turns a `MessageEvent` into Avro. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

_T = TypeVar("_T")


class EventType(enum.StrEnum):
    """What happened to the message."""

    NEW = "NEW"
    EDIT = "EDIT"
    DELETE = "DELETE"


class Source(enum.StrEnum):
    """Which path of the emitter produced the event."""

    BACKFILL = "BACKFILL"
    LIVE = "LIVE"
    SWEEP = "SWEEP"
    EXPORT = "EXPORT"
    DEMO = "DEMO"
    CATCHUP = "CATCHUP"
    """Telegram's difference since the stored position (updates.getChannelDifference / getDifference)."""
    RESCAN = "RESCAN"
    """A re-read of the group's recent window, compared with what was published (when Telegram says "too long")."""


class Change(enum.StrEnum):
    """What an EDIT event changed.

    Reaction changes are EDITs, not an event type of their own: a consumer holding the previous schema
    would read an unknown event type as the enum's default, NEW, and count the message twice; as an EDIT it
    replaces the message with its current state, which is right for it too.
    """

    MESSAGE = "MESSAGE"
    """The message itself (text, media, entities, …): what Telegram calls an edit."""
    REACTIONS = "REACTIONS"
    """Only its reactions: the record carries the current counts."""


class GroupType(enum.StrEnum):
    """The kind of Telegram chat a group is."""

    CHANNEL = "CHANNEL"
    SUPERGROUP = "SUPERGROUP"
    GROUP = "GROUP"
    PRIVATE = "PRIVATE"
    UNKNOWN = "UNKNOWN"


class PeerKind(enum.StrEnum):
    """The kind of peer that sent or forwarded a message."""

    USER = "USER"
    CHANNEL = "CHANNEL"
    CHAT = "CHAT"


CHANNEL_ID_OFFSET: Final = 10**12
"""Marked channel and supergroup ids are -(10**12 + id): the "-100" prefix."""


def marked_id(bare_id: int, kind: PeerKind) -> int:
    """Telegram's marked id of a peer: users as they are, basic groups negated, channels -100-prefixed."""
    if kind is PeerKind.CHANNEL:
        return -(CHANNEL_ID_OFFSET + bare_id)
    if kind is PeerKind.CHAT:
        return -bare_id
    return bare_id


def _slot_init(cls: type[_T]) -> type[_T]:
    """Give a frozen, slotted dataclass an `__init__` that fills its slots through their descriptors.

    The dataclass's own `__init__` of a frozen class calls `object.__setattr__` once per field, which for the
    29 fields of `MessageEvent` costs more than the rest of mapping a message (and for `Media`'s 27 nearly as
    much). This one has the same
    signature, defaults and default factories, and sets each slot with its member descriptor directly; the
    class stays frozen (its `__setattr__` still refuses), and `replace`, `==`, `repr` and pickling are the
    dataclass's.
    """
    namespace: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    params: list[str] = []
    body: list[str] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]  # a dataclass, by the decorator's contract
        if not f.init or f.kw_only:
            raise TypeError(f"{cls.__name__}.{f.name}: _slot_init supports plain fields only")
        namespace[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            body.append(f"    if {f.name} is _MISSING: {f.name} = _factory_{f.name}()")
        else:
            params.append(f.name)
        body.append(f"    _set_{f.name}(self, {f.name})")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body or ["    pass"]) + "\n"
    exec(source, namespace)  # noqa: S102 - source built above from the class's own field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[method-assign]  # replacing the generated __init__ is the point
    return cls


@dataclass(frozen=True, slots=True)
class Group:
    """A monitored chat. `id` is Telegram's marked id (channels -100…, basic groups negative)."""

    id: int
    title: str | None = None
    username: str | None = None
    type: GroupType = GroupType.UNKNOWN


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sent the message, as far as the source knows."""

    id: int
    kind: PeerKind = PeerKind.USER
    name: str | None = None
    username: str | None = None
    is_bot: bool | None = None


@_slot_init
@dataclass(frozen=True, slots=True)
class Entity:
    """A formatting entity over `text`, in UTF-16 code units as Telegram counts them."""

    type: str
    offset: int
    length: int
    url: str | None = None
    user_id: int | None = None
    language: str | None = None
    custom_emoji_id: int | None = None


@_slot_init
@dataclass(frozen=True, slots=True)
class Reply:
    """What the message answers: a message, a thread top, or a forum topic."""

    to_message_id: int | None = None
    to_top_id: int | None = None
    forum_topic: bool = False
    to_peer_id: int | None = None
    quote_text: str | None = None


@_slot_init
@dataclass(frozen=True, slots=True)
class Forward:
    """The forward header of a forwarded message."""

    from_id: int | None = None
    from_name: str | None = None
    date: datetime | None = None
    channel_post: int | None = None
    post_author: str | None = None
    saved_from_peer: int | None = None
    saved_from_msg_id: int | None = None


@_slot_init
@dataclass(frozen=True, slots=True)
class Media:
    """Metadata of attached media; with media storage on, where its bytes are stored (`storage_uri`, …)."""

    type: str
    id: int | None = None
    mime_type: str | None = None
    size: int | None = None
    file_name: str | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    title: str | None = None
    performer: str | None = None
    url: str | None = None
    description: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    phone_number: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    emoji: str | None = None
    poll_question: str | None = None
    poll_answers: tuple[str, ...] = ()
    poll_closed: bool | None = None
    poll_total_voters: int | None = None
    storage_uri: str | None = None
    """Where the bytes are stored, once the media sink stored them (None until then, or when it is off)."""
    sha256: str | None = None
    """SHA-256 of the stored bytes, lowercase hex."""
    stored_size: int | None = None
    """Size of the stored object in bytes."""


@dataclass(frozen=True, slots=True)
class Reaction:
    """One reaction and how many chose it."""

    emoji: str
    count: int


@_slot_init
@dataclass(frozen=True, slots=True)
class Action:
    """A service message's action (join, pin, migration, title change, …)."""

    type: str
    actor_id: int | None = None
    user_ids: tuple[int, ...] = ()
    title: str | None = None
    peer_id: int | None = None
    message_id: int | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Topic:
    """A forum topic: its id (the id of the message that created it; 1 for General) and its title."""

    id: int
    title: str | None = None


@dataclass(frozen=True, slots=True)
class CommentOf:
    """The channel post a message of the channel's discussion group comments on."""

    channel_id: int
    post_id: int


@_slot_init
@dataclass(frozen=True, slots=True)
class MessageEvent:
    """One NEW, EDIT or DELETE event of one message in one group."""

    event_type: EventType
    group: Group
    message_id: int
    source: Source
    ingest_time: datetime
    date: datetime | None = None
    edit_date: datetime | None = None
    sender: Sender | None = None
    text: str = ""
    entities: tuple[Entity, ...] = ()
    reply: Reply | None = None
    forward: Forward | None = None
    media: Media | None = None
    grouped_id: int | None = None
    views: int | None = None
    forwards: int | None = None
    replies: int | None = None
    reactions: tuple[Reaction, ...] = ()
    post_author: str | None = None
    via_bot_id: int | None = None
    pinned: bool = False
    is_post: bool = False
    action: Action | None = None
    extra: dict[str, str] = field(default_factory=dict)
    truncated: bool = False
    change: Change = Change.MESSAGE
    pts: int | None = None
    """The group's update position after this event (the channel's pts; the account's for basic groups), when
    the event came from Telegram's update stream; None for history walks, exports and the demo."""
    topic: Topic | None = None
    """The forum topic of a message in a forum supergroup; None elsewhere."""
    comment_of: CommentOf | None = None
    """The channel post a message of a followed discussion group belongs to (its auto-forward or a comment)."""

    @property
    def group_id(self) -> int:
        """The marked id of the group: the Kafka key and the cursor's key."""
        return self.group.id


def utc_now() -> datetime:
    """The current time, timezone-aware UTC, at millisecond precision as Avro stores it."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def from_unix(seconds: int | float) -> datetime:
    """A Unix timestamp as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)
