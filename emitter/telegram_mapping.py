"""Telethon messages to `MessageEvent`s: the pure half of the Telethon source.

Everything here reads attributes of objects already in memory: no client calls, no I/O, no clock. The input
is a raw TL `Message` / `MessageService` (or Telethon's custom `Message` subclass, which is what
`iter_messages` and the event handlers give; it carries the same raw attributes).

Robustness rules, because one odd message must never stall a group's stream:

- every attribute is read with `getattr(..., None)` and type-checked before use;
- numbers that do not fit their Avro field (int32 or int64) are dropped, not wrapped;
- unknown TL classes map to generic values (media "unsupported", entity and action types by class name);
- details without a field go to `extra` (string values, bounded length);
- if mapping still fails, `map_message` returns a minimal event with the error in `extra`.

Speed: the per-message work is attribute reads and dict lookups by class name; the only derived-name work
(class name to snake case, an action's field list) is cached per class.
"""

from __future__ import annotations

import inspect
import math
import operator
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any, Final, TypeAlias

from telethon import utils as tl_utils

from emitter.records import (
    Action,
    Entity,
    EventType,
    Forward,
    Group,
    GroupType,
    Media,
    MessageEvent,
    PeerKind,
    Reaction,
    Reply,
    Sender,
    Source,
    from_unix,
    marked_id,
)

__all__ = [
    "group_from_entity",
    "map_deleted",
    "map_edited",
    "map_message",
    "peer_marked_id",
]

TLObject: TypeAlias = Any
"""A Telethon TL object. Telethon is untyped, so this boundary is `Any` on purpose: every read is checked."""


EXTRA_VALUE_MAX: Final = 256
"""Longest `extra` value, in characters: `extra` is for hints, not payloads."""
ACTION_TEXT_MAX: Final = 1024
"""Longest `Action.text`."""

_INT_MIN: Final = -(2**31)
_INT_MAX: Final = 2**31 - 1
_LONG_MIN: Final = -(2**63)
_LONG_MAX: Final = 2**63 - 1
_UNIX_MAX: Final = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second `datetime` can hold

# Peer (and input peer) class name -> (attribute holding the bare id, kind).
_PEERS: Final[Mapping[str, tuple[str, PeerKind]]] = {
    "PeerUser": ("user_id", PeerKind.USER),
    "PeerChat": ("chat_id", PeerKind.CHAT),
    "PeerChannel": ("channel_id", PeerKind.CHANNEL),
    "InputPeerUser": ("user_id", PeerKind.USER),
    "InputPeerChat": ("chat_id", PeerKind.CHAT),
    "InputPeerChannel": ("channel_id", PeerKind.CHANNEL),
    "InputPeerUserFromMessage": ("user_id", PeerKind.USER),
    "InputPeerChannelFromMessage": ("channel_id", PeerKind.CHANNEL),
}

# Entity (user / chat / channel object) class name -> kind.
_ENTITY_KINDS: Final[Mapping[str, PeerKind]] = {
    "User": PeerKind.USER,
    "UserEmpty": PeerKind.USER,
    "Chat": PeerKind.CHAT,
    "ChatForbidden": PeerKind.CHAT,
    "ChatEmpty": PeerKind.CHAT,
    "Channel": PeerKind.CHANNEL,
    "ChannelForbidden": PeerKind.CHANNEL,
}

_MESSAGE_CLASSES: Final = frozenset({"Message", "MessageService"})

# Photo sizes that carry dimensions; stripped / path / empty sizes are thumbnails without them.
_SIZED_PHOTO_SIZES: Final = frozenset({"PhotoSize", "PhotoSizeProgressive", "PhotoCachedSize"})

# Action fields that land in `Action` fields rather than in its text.
_ACTION_CONSUMED: Final = frozenset({"users", "user_id", "title"})
_MIGRATION_FIELDS: Final[Mapping[str, str]] = {"chat_migrate_to": "channel_id", "channel_migrate_from": "chat_id"}


# --- plain value helpers: each takes anything and returns a value its Avro field accepts ---------------------


def _int32(value: object) -> int | None:
    """An Avro `int`: out-of-range values are dropped, not wrapped (bools are not numbers here)."""
    return value if type(value) is int and _INT_MIN <= value <= _INT_MAX else None


def _int64(value: object) -> int | None:
    """An Avro `long`, as `_int32`."""
    return value if type(value) is int and _LONG_MIN <= value <= _LONG_MAX else None


def _float(value: object) -> float | None:
    """A finite double (NaN would make records unequal to themselves)."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is int and _LONG_MIN <= value <= _LONG_MAX:
        return float(value)
    return None


def _str(value: object) -> str | None:
    """A string Avro can encode: lone surrogates (never on the wire, possible in hand-built objects) become '?'."""
    if type(value) is not str:
        return None
    if value.isascii():  # the common case, checked without allocating
        return value
    try:
        value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode()
    return value


def _text_of(value: object) -> str | None:
    """The text of a `TextWithEntities` (poll questions and answers in this layer) or of a plain string."""
    if type(value) is str:
        return _str(value)
    return _str(getattr(value, "text", None))


def _bounded(value: str, limit: int = EXTRA_VALUE_MAX) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _put(extra: dict[str, str], key: str, value: object) -> None:
    """Record a scalar in `extra` when it is present (None, empty strings and False are left out)."""
    if value is None or value is False or value == "":
        return
    if type(value) is str:
        text = _str(value)
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = str(value)
    if text is not None:
        extra[key] = _bounded(text)


def _utc(value: object) -> datetime | None:
    """An aware UTC datetime from a TL date (already aware UTC when Telethon parsed it), a naive one, or seconds."""
    if isinstance(value, datetime):
        if value.tzinfo is UTC:  # Telethon's dates: the fast path
            return value
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except (OverflowError, ValueError):
            return None
    if type(value) is int and 0 <= value <= _UNIX_MAX:
        return from_unix(value)
    return None


# --- names and ids ---------------------------------------------------------------------------------------


@cache
def _snake(name: str) -> str:
    """CamelCase to snake_case, once per class name; acronyms stay one word (SetMessagesTTL: set_messages_ttl)."""
    out: list[str] = []
    last = len(name) - 1
    for i, ch in enumerate(name):
        if ch.isupper():
            if i and (not name[i - 1].isupper() or (i < last and name[i + 1].islower())):
                out.append("_")
            out.append(ch.lower())
        else:
            out.append(ch)
    return "".join(out)


@cache
def _entity_type(class_name: str) -> str:
    """MessageEntityTextUrl -> text_url; the input twins (InputMessageEntityMentionName) name the same kind."""
    name = class_name.removeprefix("Input").removeprefix("MessageEntity")
    return _snake(name) or "unknown"


@cache
def _action_type(class_name: str) -> str:
    """MessageActionChatAddUser -> chat_add_user."""
    return _snake(class_name.removeprefix("MessageAction")) or "unknown"


@lru_cache(maxsize=4096)
def _marked_int(bare: int, kind: PeerKind) -> int | None:
    marked = marked_id(bare, kind)
    return marked if _LONG_MIN <= marked <= _LONG_MAX else None


def _marked(bare: object, kind: PeerKind) -> int | None:
    """The marked id (users as they are, chats negated, channels -100-prefixed), if it fits a long."""
    # The same few ids (the group, its active senders) come back on every message of a page: profiled at
    # 6.6% of a backfill's time when computed each time, a C-level cache finds them for less.
    return _marked_int(bare, kind) if type(bare) is int else None


def _peer(peer: TLObject) -> tuple[int, PeerKind] | None:
    # Arithmetic rather than telethon.utils.get_peer_id in the hot path: get_peer_id raises on anything that
    # is not a peer and *rewrites* out-of-range ids inside the object it is given; for valid ids the results
    # are equal (the tests check that).
    spec = _PEERS.get(type(peer).__name__)
    if spec is None:
        return None
    marked = _marked(getattr(peer, spec[0], None), spec[1])
    return None if marked is None else (marked, spec[1])


def peer_marked_id(peer: TLObject) -> int | None:
    """The marked id of a TL peer (`PeerUser`, `PeerChat`, `PeerChannel` or their `InputPeer*` twins).

    Users keep their id, basic groups are negated, channels and supergroups are -100-prefixed. Anything else
    (None, `InputPeerSelf`, a non-peer) gives None.
    """
    found = _peer(peer)
    return None if found is None else found[0]


def _entity_ident(entity: TLObject) -> tuple[int, PeerKind] | None:
    """The marked id and kind of a cached User / Chat / Channel object."""
    kind = _ENTITY_KINDS.get(type(entity).__name__)
    if kind is None:
        return None
    marked = _marked(getattr(entity, "id", None), kind)
    return None if marked is None else (marked, kind)


def _username(entity: TLObject) -> str | None:
    """The public username; accounts with several (collectible) usernames have only the `usernames` list."""
    username = _str(getattr(entity, "username", None))
    if username is None:
        usernames = getattr(entity, "usernames", None)
        if isinstance(usernames, list) and usernames:
            username = _str(getattr(usernames[0], "username", None))
    return username


def _display_name(entity: TLObject) -> str | None:
    if type(entity).__name__ in {"User", "UserEmpty"}:
        parts = [p for p in (_str(getattr(entity, "first_name", None)), _str(getattr(entity, "last_name", None))) if p]
        return " ".join(parts) or None
    return _str(getattr(entity, "title", None))


def group_from_entity(entity: TLObject) -> Group:
    """The `Group` of a resolved Telethon entity (or a bare peer), for the Telethon source.

    A broadcast `Channel` is a CHANNEL, a megagroup a SUPERGROUP, a `Chat` a GROUP, a `User` PRIVATE; the
    forbidden variants map like their full classes. The id comes from `telethon.utils.get_peer_id`.

    Raises:
        TypeError: `entity` is neither an entity nor a peer, so it has no id.
    """
    name = type(entity).__name__
    try:
        group_id = int(tl_utils.get_peer_id(entity))
    except (TypeError, ValueError, AttributeError) as e:
        raise TypeError(f"not a Telegram entity or peer: {name}") from e
    kind = _ENTITY_KINDS.get(name) or (_PEERS[name][1] if name in _PEERS else None)
    if kind is PeerKind.USER:
        group_type = GroupType.PRIVATE
    elif kind is PeerKind.CHAT:
        group_type = GroupType.GROUP
    elif getattr(entity, "megagroup", None):
        group_type = GroupType.SUPERGROUP
    elif getattr(entity, "broadcast", None):
        group_type = GroupType.CHANNEL
    else:  # a bare PeerChannel, or a channel without either flag, cannot be told apart
        group_type = GroupType.UNKNOWN
    return Group(id=group_id, title=_display_name(entity), username=_username(entity), type=group_type)


# --- message parts ---------------------------------------------------------------------------------------


def _sender(
    message: TLObject, from_id: TLObject, peer_id: TLObject, post: bool, entities: Mapping[int, TLObject] | None
) -> Sender | None:
    """Who sent the message: `from_id`, else the cached sender entity, else the user of a private chat.

    Names come only from entities already at hand: the one Telethon cached on its custom Message (`_sender`,
    which the `.sender` property returns as is), else the answer's own `entities`, looked up by the id
    Telethon's `sender_id` would give; `get_sender()` would make a network call and is never used.
    """
    cached = getattr(message, "_sender", None)
    ident = _peer(from_id) if from_id is not None else None
    if cached is None and entities and ident is not None:
        # A raw page's message with a from_id: its Sender depends on that id and the answer's entity only, so
        # the page's messages from one sender share one (a page has a few senders and a hundred messages).
        memo = _page_senders[0]
        if memo[0] is not entities:
            memo = _page_senders[0] = (entities, {})
        sender = memo[1].get(ident)
        if sender is None:
            sender = memo[1][ident] = _sender_of(entities.get(ident[0]), ident)
        return sender
    if cached is None and entities:
        private = not post and not getattr(message, "out", None) and type(peer_id).__name__ == "PeerUser"
        key = ident if ident is not None else (_peer(peer_id) if post or private else None)
        cached = None if key is None else entities.get(key[0])
    if ident is None:
        if cached is not None:
            ident = _entity_ident(cached)
        elif not post and not getattr(message, "out", None) and type(peer_id).__name__ == "PeerUser":
            # Since layer 119 incoming private messages have no from_id: the chat's user is the sender.
            ident = _peer(peer_id)
    if ident is None:
        return None
    return _sender_of(cached, ident)


def _sender_of(cached: TLObject | None, ident: tuple[int, PeerKind]) -> Sender:
    """The Sender `ident`, named from `cached` when that entity is the one `ident` names."""
    if cached is None or _entity_ident(cached) != ident:
        return Sender(id=ident[0], kind=ident[1])
    return _named_sender(cached, ident)


_page_senders: list[tuple[Mapping[int, TLObject] | None, dict[tuple[int, PeerKind], Sender]]] = [(None, {})]
"""The senders made for the last page's entities (the mapping itself), by marked id and kind."""


_last_sender: list[tuple[TLObject, tuple[int, PeerKind] | None, tuple[object, ...], Sender | None]] = [
    (None, None, (), None)
]
"""The last named sender, with the entity object, id and attribute values it was made from."""


def _named_sender(cached: TLObject, ident: tuple[int, PeerKind]) -> Sender:
    # Telethon attaches one entity object per user to all the messages of a page, so a page's consecutive
    # messages from one sender share one Sender (immutable) instead of building its names again each time.
    # The attributes are compared by identity, so an entity changed in place is read again.
    values = (
        getattr(cached, "first_name", None),
        getattr(cached, "last_name", None),
        getattr(cached, "title", None),
        getattr(cached, "username", None),
        getattr(cached, "usernames", None),
        getattr(cached, "bot", None),
    )
    entity, seen_ident, seen, sender = _last_sender[0]
    if sender is not None and entity is cached and seen_ident == ident and all(map(operator.is_, seen, values)):
        return sender
    is_bot = bool(getattr(cached, "bot", None)) if ident[1] is PeerKind.USER else None
    sender = Sender(id=ident[0], kind=ident[1], name=_display_name(cached), username=_username(cached), is_bot=is_bot)
    _last_sender[0] = (cached, ident, values, sender)
    return sender


def _entity(e: TLObject) -> Entity | None:
    offset = getattr(e, "offset", None)
    length = getattr(e, "length", None)
    if type(offset) is not int or type(length) is not int:
        return None
    kind = _entity_type(type(e).__name__)
    url = user_id = language = emoji_id = None
    if kind == "text_url":
        url = _str(getattr(e, "url", None))
    elif kind == "mention_name":
        raw = getattr(e, "user_id", None)
        # the input twin holds an InputUser, whose user_id is the id
        user_id = _int64(raw if type(raw) is int else getattr(raw, "user_id", None))
    elif kind == "pre":
        language = _str(getattr(e, "language", None)) or None
    elif kind == "custom_emoji":
        emoji_id = _int64(getattr(e, "document_id", None))
    return Entity(
        type=kind,
        # clamped, not dropped: the entity is still worth having with a saturated offset
        offset=min(max(offset, _INT_MIN), _INT_MAX),
        length=min(max(length, _INT_MIN), _INT_MAX),
        url=url,
        user_id=user_id,
        language=language,
        custom_emoji_id=emoji_id,
    )


def _entities(value: object) -> tuple[Entity, ...]:
    if not isinstance(value, list | tuple) or not value:
        return ()
    return tuple(ent for ent in map(_entity, value) if ent is not None)


def _reply(header: TLObject, extra: dict[str, str]) -> Reply | None:
    name = type(header).__name__
    if name == "MessageReplyHeader":
        return Reply(
            to_message_id=_int64(getattr(header, "reply_to_msg_id", None)),
            to_top_id=_int64(getattr(header, "reply_to_top_id", None)),
            forum_topic=bool(getattr(header, "forum_topic", None)),
            to_peer_id=peer_marked_id(getattr(header, "reply_to_peer_id", None)),
            quote_text=_str(getattr(header, "quote_text", None)),
        )
    if name == "MessageReplyStoryHeader":
        # A reply to a story has no message to point at; the story goes to extra.
        _put(extra, "reply_story_peer_id", peer_marked_id(getattr(header, "peer", None)))
        _put(extra, "reply_story_id", _int64(getattr(header, "story_id", None)))
        return Reply()
    _put(extra, "reply_class", name)
    return Reply()


def _forward(header: TLObject) -> Forward:
    return Forward(
        from_id=peer_marked_id(getattr(header, "from_id", None)),
        from_name=_str(getattr(header, "from_name", None)),
        date=_utc(getattr(header, "date", None)),
        channel_post=_int64(getattr(header, "channel_post", None)),
        post_author=_str(getattr(header, "post_author", None)),
        saved_from_peer=peer_marked_id(getattr(header, "saved_from_peer", None)),
        saved_from_msg_id=_int64(getattr(header, "saved_from_msg_id", None)),
    )


def _reaction(rc: TLObject) -> Reaction | None:
    reaction = getattr(rc, "reaction", None)
    name = type(reaction).__name__
    if name == "ReactionEmoji":
        emoji = _str(getattr(reaction, "emoticon", None)) or ""
    elif name == "ReactionCustomEmoji":
        emoji = f"custom:{_int64(getattr(reaction, 'document_id', None))}"
    elif name == "ReactionPaid":
        emoji = "paid"
    elif reaction is None:
        return None
    else:
        emoji = name
    count = getattr(rc, "count", None)
    count = min(max(count, 0), _INT_MAX) if type(count) is int else 0
    return Reaction(emoji=emoji, count=count)


def _reactions(value: TLObject) -> tuple[Reaction, ...]:
    results = getattr(value, "results", None)
    if not isinstance(results, list) or not results:
        return ()
    return tuple(r for r in map(_reaction, results) if r is not None)


# --- media -------------------------------------------------------------------------------------------------


def _geo(point: TLObject) -> tuple[float | None, float | None]:
    if type(point).__name__ != "GeoPoint":  # GeoPointEmpty: the location is unknown
        return None, None
    return _float(getattr(point, "lat", None)), _float(getattr(point, "long", None))


def _photo_size_bytes(size: TLObject, name: str) -> int | None:
    if name == "PhotoSize":
        return _int64(getattr(size, "size", None))
    if name == "PhotoSizeProgressive":
        sizes = getattr(size, "sizes", None)  # progressive prefixes: the last is the whole file
        return _int64(sizes[-1]) if isinstance(sizes, list) and sizes else None
    data = getattr(size, "bytes", None)
    return len(data) if isinstance(data, bytes) else None


def _photo(media: TLObject, extra: dict[str, str]) -> Media:
    photo = getattr(media, "photo", None)
    _put(extra, "media_ttl_seconds", _int64(getattr(media, "ttl_seconds", None)))
    best: tuple[int, int, int | None] | None = None
    sizes = getattr(photo, "sizes", None)
    if isinstance(sizes, list):
        for size in sizes:
            name = type(size).__name__
            if name not in _SIZED_PHOTO_SIZES:
                continue
            w, h = _int32(getattr(size, "w", None)), _int32(getattr(size, "h", None))
            if w is not None and h is not None and (best is None or w * h > best[0] * best[1]):
                best = (w, h, _photo_size_bytes(size, name))
    return Media(
        type="photo",
        id=_int64(getattr(photo, "id", None)),  # PhotoEmpty has only the id
        width=best[0] if best else None,
        height=best[1] if best else None,
        size=best[2] if best else None,
    )


def _document_kind(media: TLObject, attrs: Mapping[str, TLObject]) -> str:
    # Precedence matters: a video sticker also has a video attribute, a GIF has video and animated.
    video = attrs.get("DocumentAttributeVideo")
    audio = attrs.get("DocumentAttributeAudio")
    if "DocumentAttributeSticker" in attrs or "DocumentAttributeCustomEmoji" in attrs:
        kind = "sticker"
    elif "DocumentAttributeAnimated" in attrs:
        kind = "animation"
    elif video is not None:
        kind = "video_note" if getattr(video, "round_message", None) else "video"
    elif audio is not None:
        kind = "voice" if getattr(audio, "voice", None) else "audio"
    # Without attributes (rare), the media's own flags still tell the kind.
    elif getattr(media, "round", None):
        kind = "video_note"
    elif getattr(media, "voice", None):
        kind = "voice"
    elif getattr(media, "video", None) is True:
        kind = "video"
    else:
        kind = "document"
    return kind


def _document(media: TLObject, extra: dict[str, str]) -> Media:
    doc = getattr(media, "document", None)
    _put(extra, "media_ttl_seconds", _int64(getattr(media, "ttl_seconds", None)))
    raw_attrs = getattr(doc, "attributes", None)
    attrs = {type(a).__name__: a for a in raw_attrs} if isinstance(raw_attrs, list) else {}
    video = attrs.get("DocumentAttributeVideo")
    audio = attrs.get("DocumentAttributeAudio")
    image = attrs.get("DocumentAttributeImageSize")
    sized = video if video is not None else image
    sticker = attrs.get("DocumentAttributeSticker") or attrs.get("DocumentAttributeCustomEmoji")
    return Media(
        type=_document_kind(media, attrs),
        id=_int64(getattr(doc, "id", None)),  # DocumentEmpty has only the id
        mime_type=_str(getattr(doc, "mime_type", None)),
        size=_int64(getattr(doc, "size", None)),
        file_name=_str(getattr(attrs.get("DocumentAttributeFilename"), "file_name", None)),
        width=_int32(getattr(sized, "w", None)),
        height=_int32(getattr(sized, "h", None)),
        duration=_float(getattr(video if video is not None else audio, "duration", None)),
        title=_str(getattr(audio, "title", None)),
        performer=_str(getattr(audio, "performer", None)),
        emoji=_str(getattr(sticker, "alt", None)) or None,
    )


def _webpage(media: TLObject, extra: dict[str, str]) -> Media:
    page = getattr(media, "webpage", None)
    name = type(page).__name__
    if name != "WebPage":  # empty / pending / not modified: at most a URL
        _put(extra, "webpage_class", name)
    return Media(
        type="webpage",
        url=_str(getattr(page, "url", None)),
        title=_str(getattr(page, "title", None)),
        description=_str(getattr(page, "description", None)),
    )


def _poll(media: TLObject, extra: dict[str, str]) -> Media:
    poll = getattr(media, "poll", None)
    answers = getattr(poll, "answers", None)
    texts: tuple[str, ...] = ()
    if isinstance(answers, list):
        texts = tuple(t for t in (_text_of(getattr(a, "text", None)) for a in answers) if t is not None)
    closed = getattr(poll, "closed", None)
    return Media(
        type="poll",
        id=_int64(getattr(poll, "id", None)),
        # a TextWithEntities since layer 178, a plain string before
        poll_question=_text_of(getattr(poll, "question", None)),
        poll_answers=texts,
        poll_closed=None if poll is None else bool(closed),
        poll_total_voters=_int32(getattr(getattr(media, "results", None), "total_voters", None)),
    )


def _geo_media(kind: str) -> Callable[[TLObject, dict[str, str]], Media]:
    def mapper(media: TLObject, extra: dict[str, str]) -> Media:
        lat, long = _geo(getattr(media, "geo", None))
        if kind == "geo_live":
            _put(extra, "geo_live_period", _int64(getattr(media, "period", None)))
        return Media(type=kind, latitude=lat, longitude=long)

    return mapper


def _venue(media: TLObject, extra: dict[str, str]) -> Media:
    lat, long = _geo(getattr(media, "geo", None))
    _put(extra, "venue_provider", _str(getattr(media, "provider", None)))
    _put(extra, "venue_id", _str(getattr(media, "venue_id", None)))
    return Media(
        type="venue",
        title=_str(getattr(media, "title", None)),
        description=_str(getattr(media, "address", None)),
        latitude=lat,
        longitude=long,
    )


def _contact(media: TLObject, extra: dict[str, str]) -> Media:
    user_id = _int64(getattr(media, "user_id", None))
    _put(extra, "contact_user_id", user_id or None)  # 0 means "not a Telegram user"
    return Media(
        type="contact",
        phone_number=_str(getattr(media, "phone_number", None)),
        first_name=_str(getattr(media, "first_name", None)),
        last_name=_str(getattr(media, "last_name", None)),
    )


def _dice(media: TLObject, extra: dict[str, str]) -> Media:
    _put(extra, "dice_value", _int64(getattr(media, "value", None)))
    return Media(type="dice", emoji=_str(getattr(media, "emoticon", None)))


def _game(media: TLObject, extra: dict[str, str]) -> Media:
    game = getattr(media, "game", None)
    _put(extra, "game_short_name", _str(getattr(game, "short_name", None)))
    return Media(
        type="game",
        id=_int64(getattr(game, "id", None)),
        title=_str(getattr(game, "title", None)),
        description=_str(getattr(game, "description", None)),
    )


def _invoice(media: TLObject, extra: dict[str, str]) -> Media:
    _put(extra, "invoice_currency", _str(getattr(media, "currency", None)))
    _put(extra, "invoice_total_amount", _int64(getattr(media, "total_amount", None)))
    return Media(
        type="invoice",
        title=_str(getattr(media, "title", None)),
        description=_str(getattr(media, "description", None)),
    )


def _story(media: TLObject, extra: dict[str, str]) -> Media:
    _put(extra, "story_peer_id", peer_marked_id(getattr(media, "peer", None)))
    _put(extra, "story_id", _int64(getattr(media, "id", None)))
    return Media(type="story")


def _giveaway(media: TLObject, extra: dict[str, str]) -> Media:
    _put(extra, "giveaway_quantity", _int64(getattr(media, "quantity", None)))
    _put(extra, "giveaway_winners_count", _int64(getattr(media, "winners_count", None)))
    _put(extra, "giveaway_until_date", _utc(getattr(media, "until_date", None)))
    return Media(type="giveaway", description=_str(getattr(media, "prize_description", None)))


def _unsupported(media: TLObject, extra: dict[str, str]) -> Media:
    name = type(media).__name__
    if name != "MessageMediaUnsupported":
        _put(extra, "media_class", name)  # a kind this mapping does not know yet: keep its name
    return Media(type="unsupported")


_MEDIA: Final[Mapping[str, Callable[[TLObject, dict[str, str]], Media]]] = {
    "MessageMediaPhoto": _photo,
    "MessageMediaDocument": _document,
    "MessageMediaWebPage": _webpage,
    "MessageMediaPoll": _poll,
    "MessageMediaGeo": _geo_media("geo"),
    "MessageMediaGeoLive": _geo_media("geo_live"),
    "MessageMediaVenue": _venue,
    "MessageMediaContact": _contact,
    "MessageMediaDice": _dice,
    "MessageMediaGame": _game,
    "MessageMediaInvoice": _invoice,
    "MessageMediaStory": _story,
    "MessageMediaGiveaway": _giveaway,
    "MessageMediaGiveawayResults": _giveaway,
}


def _media(media: TLObject, extra: dict[str, str]) -> Media | None:
    if media is None:
        return None
    name = type(media).__name__
    if name == "MessageMediaEmpty":
        return None
    return _MEDIA.get(name, _unsupported)(media, extra)


# --- service actions -------------------------------------------------------------------------------------


@cache
def _action_fields(cls: Any) -> tuple[str, ...]:
    """The TL fields of an action class not consumed into `Action` fields; computed once per class."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return ()
    consumed = _ACTION_CONSUMED | {_MIGRATION_FIELDS.get(_action_type(cls.__name__), "")}
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(p.name for p in params if p.kind in kinds and p.name not in consumed)


def _action_value(value: object) -> str | None:
    """A short text for a scalar action field; nested objects other than peers and texts are left out."""
    if value is None or value is False:
        return None
    if type(value) in {int, float, bool}:
        return str(value)
    if type(value) is str:
        return _str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    marked = peer_marked_id(value)
    if marked is not None:
        return str(marked)
    return _text_of(value) if type(value).__name__ == "TextWithEntities" else None


def _action_text(action: TLObject) -> str | None:
    parts: list[str] = []
    cls: Any = type(action)  # Any: mypy does not see a type[Any] as hashable
    for name in _action_fields(cls):
        value = _action_value(getattr(action, name, None))
        if value is not None:
            parts.append(f"{name}={_bounded(value)}")
    return _bounded("; ".join(parts), ACTION_TEXT_MAX) if parts else None


def _action(action: TLObject, actor: Sender | None, reply: Reply | None) -> Action:
    kind = _action_type(type(action).__name__)
    users = getattr(action, "users", None)
    if isinstance(users, list):
        user_ids = tuple(u for u in map(_int64, users) if u is not None)
    else:
        user_id = _int64(getattr(action, "user_id", None))
        user_ids = () if user_id is None else (user_id,)
    peer_id = None
    if kind == "chat_migrate_to":
        peer_id = _marked(getattr(action, "channel_id", None), PeerKind.CHANNEL)
    elif kind == "channel_migrate_from":
        peer_id = _marked(getattr(action, "chat_id", None), PeerKind.CHAT)
    return Action(
        type=kind,
        actor_id=None if actor is None else actor.id,
        user_ids=user_ids,
        title=_str(getattr(action, "title", None)),
        peer_id=peer_id,
        # a pin service message replies to the pinned message
        message_id=reply.to_message_id if reply is not None else None,
        text=_action_text(action),
    )


# --- messages ----------------------------------------------------------------------------------------------


_FIELDS: Final = (
    "id",
    "post",
    "from_id",
    "peer_id",
    "reply_to",
    "fwd_from",
    "replies",
    "reactions",
    "date",
    "edit_date",
    "message",
    "entities",
    "media",
    "grouped_id",
    "views",
    "forwards",
    "post_author",
    "via_bot_id",
    "pinned",
    "action",
)
"""The TL fields of a message `_map` reads, in the order `_fields` returns them. `action` comes last: a plain
`Message` as Telethon generated it (what history pages hold) has every field but that one."""
_read_all: Final = operator.attrgetter(*_FIELDS)
_read_all_but_action: Final = operator.attrgetter(*_FIELDS[:-1])
_NO_ACTION: Final = (None,)


def _each_field(message: TLObject) -> tuple[Any, ...]:
    return tuple(getattr(message, name, None) for name in _FIELDS)


def _but_action(message: TLObject) -> tuple[Any, ...]:
    fields: tuple[Any, ...] = _read_all_but_action(message) + _NO_ACTION
    return fields


_READERS: dict[type, Callable[[TLObject], tuple[Any, ...]]] = {}
"""How to read `_FIELDS` from a message class, found on its first message."""


def _fields(message: TLObject) -> tuple[Any, ...]:
    """The `_FIELDS` of a message; None for any it lacks."""
    # One C call for the fields: Telethon's custom Message and MessageService have all twenty, its generated
    # Message (history pages) all but `action`; anything else is read field by field.
    cls = type(message)
    read = _READERS.get(cls)
    if read is None:
        present = [hasattr(message, name) for name in _FIELDS]
        read = _read_all if all(present) else _but_action if all(present[:-1]) else _each_field
        _READERS[cls] = read
    try:
        return read(message)
    except AttributeError:  # an object of a known class that lacks a field its first one had
        return _each_field(message)


def _map(
    message: TLObject,
    group: Group,
    source: Source,
    ingest_time: datetime,
    event_type: EventType,
    *,
    entities: Mapping[int, TLObject] | None,
    pts: int | None,
) -> MessageEvent:
    extra: dict[str, str] = {}
    class_name = type(message).__name__
    if class_name not in _MESSAGE_CLASSES:
        _put(extra, "message_class", class_name)  # MessageEmpty, or something unexpected
    (
        raw_id,
        post,
        from_id,
        peer_id,
        reply_to,
        fwd,
        replies,
        reactions,
        date,
        edit_date,
        text,
        entities_of_text,
        media,
        grouped_id,
        views,
        forwards,
        post_author,
        via_bot_id,
        pinned,
        action,
    ) = _fields(message)
    message_id = _int64(raw_id)
    if message_id is None:
        _put(extra, "bad_message_id", type(raw_id).__name__)
    post = bool(post)
    sender = _sender(message, from_id, peer_id, post, entities)
    # Fields a message usually lacks are tested inline below: a call per absent field was a tenth of this.
    reply = None if reply_to is None else _reply(reply_to, extra)
    return MessageEvent(
        event_type=event_type,
        group=group,
        message_id=0 if message_id is None else message_id,
        source=source,
        ingest_time=_utc(ingest_time) or ingest_time,
        date=_utc(date),
        edit_date=None if edit_date is None else _utc(edit_date),
        sender=sender,
        text=_str(text) or "",
        entities=_entities(entities_of_text) if entities_of_text else (),
        reply=reply,
        forward=None if fwd is None else _forward(fwd),
        media=None if media is None else _media(media, extra),
        grouped_id=None if grouped_id is None else _int64(grouped_id),
        views=None if views is None else _int32(views),
        forwards=None if forwards is None else _int32(forwards),
        replies=None if replies is None else _int32(getattr(replies, "replies", None)),
        reactions=() if reactions is None else _reactions(reactions),
        post_author=None if post_author is None else _str(post_author),
        via_bot_id=None if via_bot_id is None else _int64(via_bot_id),
        pinned=bool(pinned),
        is_post=post,
        action=None if action is None else _action(action, sender, reply),
        extra=extra,
        pts=pts,
    )


def map_message(
    message: TLObject,
    group: Group,
    *,
    source: Source,
    ingest_time: datetime,
    event_type: EventType = EventType.NEW,
    entities: Mapping[int, TLObject] | None = None,
    pts: int | None = None,
) -> MessageEvent:
    """The `MessageEvent` of a Telethon message (`Message`, `MessageService` or Telethon's custom Message).

    Never raises and never touches the network: only attributes already on the object are read, and names of
    the sender come from the entity Telethon cached on the message, if any.

    Args:
        message: the Telethon message.
        group: the group the message belongs to.
        source: the path producing the event (BACKFILL, LIVE, SWEEP).
        ingest_time: when the emitter produced the event (aware UTC).
        event_type: NEW, or EDIT for a later version of the message.
        entities: the users and chats of the answer the message came in, by marked id, for a message Telethon
            has not finished (a raw getHistory page): where its sender's name is found.
        pts: the group's update position after this message, for one that came from the update stream.
    """
    try:
        return _map(message, group, source, ingest_time, event_type, entities=entities, pts=pts)
    except Exception as e:
        # One unmappable message must not stall its group: emit what is safe, with the error in extra.
        return MessageEvent(
            event_type=event_type,
            group=group,
            message_id=_int64(getattr(message, "id", None)) or 0,
            source=source,
            ingest_time=ingest_time,
            date=_utc(getattr(message, "date", None)),
            extra={"mapping_error": _bounded(_str(f"{type(e).__name__}: {e}") or type(e).__name__)},
            pts=pts,
        )


def map_edited(message: TLObject, group: Group, *, source: Source, ingest_time: datetime) -> MessageEvent:
    """The EDIT event of a message's new version: `map_message` with `EventType.EDIT`."""
    return map_message(message, group, source=source, ingest_time=ingest_time, event_type=EventType.EDIT)


def map_deleted(group: Group, message_id: int, *, source: Source, ingest_time: datetime) -> MessageEvent:
    """The DELETE event of a message: Telegram reports only the ids, so every other field stays empty."""
    return MessageEvent(
        event_type=EventType.DELETE, group=group, message_id=message_id, source=source, ingest_time=ingest_time
    )
