"""A `MessageSource` over a Telegram Desktop export (`result.json`): a finite, replayable snapshot.

Two layers, as everywhere in the emitter:

- `map_export_message` (and its helpers) turns one message object of the export into a `MessageEvent`. It is
  pure: no I/O, no clock, and it never raises on odd input: unknown fields land in `extra`, malformed ones are
  ignored, and a message without a usable `id` or `date_unixtime` maps to None.
- `ExportSource` reads the file once (in a worker thread, at `__aenter__`), keeps only the message lists of
  the selected chats, sorted by id, and serves them as ascending pages.

Starting cursor: history migrated from a basic group shows up inside its supergroup with ids shifted by
-1,000,000,000, so an export group's ids can be negative. `GroupCursor`'s default cursor is 0, which would
hide them, so a cursor of exactly 0 is read as "never walked" and the walk starts below the group's lowest
id. That is safe because a walk only ever moves a cursor to an id that exists, and no message has id 0.
The rest of the pipeline must agree: as long as a fresh `GroupCursor` says ids <= 0 are published, the
tracker drops negative ids as duplicates (a "never walked" sentinel below every id would fix that).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
from array import array
from bisect import bisect_right
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

import msgspec

from emitter.errors import ConfigError, SourceError
from emitter.lifecycle import Service
from emitter.protocols import CursorView, Page
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
    utc_now,
)

log = logging.getLogger("emitter.export")

RawMessage = Mapping[str, object]
"""One message object of an export, as `json.load` returns it."""

DEFAULT_PAGE_SIZE: Final = 500
_LONG_MIN: Final = -(2**63)
_LONG_MAX: Final = 2**63 - 1
_INT_MIN: Final = -(2**31)
_INT_MAX: Final = 2**31 - 1

_CHAT_TYPES: Final[Mapping[str, tuple[GroupType, PeerKind]]] = {
    "personal_chat": (GroupType.PRIVATE, PeerKind.USER),
    "bot_chat": (GroupType.PRIVATE, PeerKind.USER),
    "saved_messages": (GroupType.PRIVATE, PeerKind.USER),
    "replies": (GroupType.PRIVATE, PeerKind.USER),
    "verification_codes": (GroupType.PRIVATE, PeerKind.USER),
    "private_group": (GroupType.GROUP, PeerKind.CHAT),
    "private_supergroup": (GroupType.SUPERGROUP, PeerKind.CHANNEL),
    "public_supergroup": (GroupType.SUPERGROUP, PeerKind.CHANNEL),
    "private_channel": (GroupType.CHANNEL, PeerKind.CHANNEL),
    "public_channel": (GroupType.CHANNEL, PeerKind.CHANNEL),
}

_PEER_PREFIXES: Final = (("user", PeerKind.USER), ("channel", PeerKind.CHANNEL), ("chat", PeerKind.CHAT))

# The export spells a few entity kinds differently from the Bot API / Telethon snake case the schema uses;
# every other kind already has the schema's name and passes through unchanged.
_ENTITY_TYPES: Final[Mapping[str, str]] = {"link": "url", "text_link": "text_url", "strikethrough": "strike"}

_FILE_MEDIA_TYPES: Final[Mapping[str, str]] = {
    "sticker": "sticker",
    "video_file": "video",
    "voice_message": "voice",
    "audio_file": "audio",
    "animation": "animation",
    "video_message": "video_note",
}

# Keys every message consumes into record fields, or drops on purpose: `date` and `edited` are local time
# without an offset, so only their *_unixtime twins are trusted.
_BASE_KEYS: Final = frozenset(
    {
        "id", "type", "date", "date_unixtime", "edited", "edited_unixtime", "from", "from_id",
        "text", "text_entities", "forwarded_from", "forwarded_from_id", "reply_to_message_id",
        "reply_to_peer_id", "author", "reactions",
    }
)  # fmt: skip
_SERVICE_KEYS: Final = frozenset({"actor", "actor_id", "action", "title", "members", "message_id"})
_FILE_KEYS: Final = frozenset(
    {
        "media_type", "mime_type", "file_size", "file_name", "width", "height", "duration_seconds",
        "sticker_emoji", "performer", "title",
    }
)  # fmt: skip


# --- plain value helpers: every one tolerates any JSON value ----------------------------------------------


def _as_int(value: object, lo: int = _LONG_MIN, hi: int = _LONG_MAX) -> int | None:
    """An integer from a JSON number or numeric string, if it fits [lo, hi]; else None."""
    if type(value) is int:  # the usual case first (a bool is no exact int, so it takes the checks below)
        return value if lo <= value <= hi else None
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            return None
    if isinstance(value, int) and lo <= value <= hi:
        return value
    return None


def _as_int32(value: object) -> int | None:
    """An integer for an Avro `int` field (width, voters): out-of-range values are dropped, not wrapped."""
    return _as_int(value, _INT_MIN, _INT_MAX)


def _as_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _as_bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _as_map(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}


def _as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _unix_time(value: object) -> datetime | None:
    """An aware UTC datetime from a `*_unixtime` field (a string of seconds in every known export)."""
    seconds = _as_int(value, 0, 253_402_300_799)  # up to 9999-12-31, the last year datetime can hold
    return None if seconds is None else from_unix(seconds)


def _extra_value(value: object) -> str | None:
    """An `extra` map value: strings as they are, anything else as compact JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def utf16_len(text: str) -> int:
    """Length of `text` in UTF-16 code units, as Telegram counts entity offsets (astral chars count 2)."""
    if text.isascii():  # one code unit per character, without encoding the text
        return len(text)
    return len(text.encode("utf-16-le")) // 2


# --- ids ----------------------------------------------------------------------------------------------


def parse_peer(value: object) -> tuple[int, PeerKind] | None:
    """The marked id and kind of an export peer reference ("user123", "channel123", "chat123").

    A bare number is a user id (older exports wrote user ids that way). Anything else is None.
    """
    if value is None:  # most messages have no forward or reply peer
        return None
    if isinstance(value, str):
        for prefix, kind in _PEER_PREFIXES:
            if value.startswith(prefix):
                bare = _as_int(value[len(prefix) :], 1, 2**52)
                return None if bare is None else (marked_id(bare, kind), kind)
        return None
    bare = _as_int(value, 1, 2**52)
    return None if bare is None else (bare, PeerKind.USER)


def export_group(chat: Mapping[str, object]) -> Group | None:
    """The `Group` of one exported chat (`{name, type, id, messages}`), or None without a usable id."""
    bare = _as_int(chat.get("id"), 1, 2**52)
    if bare is None:
        return None
    chat_type = _as_str(chat.get("type")) or ""
    group_type, kind = _CHAT_TYPES.get(chat_type, (GroupType.UNKNOWN, PeerKind.USER))
    return Group(id=marked_id(bare, kind), title=_as_str(chat.get("name")), type=group_type)


# --- text and entities ------------------------------------------------------------------------------------


def _text_parts(text: object) -> list[Mapping[str, object]]:
    """`text` as a list of `{type, text, …}` parts (plain strings become "plain" parts)."""
    if isinstance(text, str):
        return [{"type": "plain", "text": text}]
    parts: list[Mapping[str, object]] = []
    for item in _as_list(text):
        if isinstance(item, str):
            parts.append({"type": "plain", "text": item})
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            parts.append(item)
    return parts


def _entity(part: Mapping[str, object], offset: int, length: int) -> Entity | None:
    kind = _as_str(part.get("type"))
    if kind is None or kind == "plain" or length == 0:
        return None
    kind = _ENTITY_TYPES.get(kind, kind)
    user = parse_peer(part.get("user_id")) if kind == "mention_name" else None
    return Entity(
        type=kind,
        offset=offset,
        length=length,
        url=_as_str(part.get("href")) if kind == "text_url" else None,
        user_id=None if user is None else user[0],
        language=(_as_str(part.get("language")) or None) if kind == "pre" else None,
        custom_emoji_id=_as_int(part.get("document_id")) if kind == "custom_emoji" else None,
    )


def _may_format(text_entities: object) -> bool:
    """Whether any part of `text_entities` has a kind other than plain (so it may be an entity)."""
    if not isinstance(text_entities, list):
        return False
    return any(isinstance(p, dict) and p.get("type", "plain") != "plain" for p in text_entities)


def map_text(text: object, text_entities: object) -> tuple[str, tuple[Entity, ...]]:
    """The plain text of a message and its entities, offsets and lengths in UTF-16 code units.

    `text_entities` is preferred (every export has it), unless its parts do not spell `text`: then the parts
    inside `text` itself are walked, so the offsets always index the text that is published.
    """
    if isinstance(text, str) and not _may_format(text_entities):
        # Most messages: a plain string, and no listed part that could make an entity. Whichever parts the
        # general path below chose, it would find no entity in them.
        return text, ()
    parts = _text_parts(text)
    plain = "".join(str(p["text"]) for p in parts)
    listed: list[Mapping[str, object]] = [
        p for p in _as_list(text_entities) if isinstance(p, dict) and isinstance(p.get("text"), str)
    ]
    if listed and "".join(str(p["text"]) for p in listed) == plain:
        parts = listed
    entities: list[Entity] = []
    offset = 0
    for part in parts:
        length = utf16_len(str(part["text"]))
        entity = _entity(part, offset, length)
        if entity is not None and offset + length <= _INT_MAX:
            entities.append(entity)
        offset += length
    return plain, tuple(entities)


# --- media ------------------------------------------------------------------------------------------------


def _poll(raw: RawMessage) -> tuple[Media, frozenset[str]]:
    poll = _as_map(raw.get("poll"))
    answers = [_as_map(a) for a in _as_list(poll.get("answers"))]
    return (
        Media(
            type="poll",
            poll_question=_as_str(poll.get("question")),
            poll_answers=tuple(_as_str(a.get("text")) or "" for a in answers),
            poll_closed=_as_bool(poll.get("closed")),
            poll_total_voters=_as_int32(poll.get("total_voters")),
        ),
        frozenset({"poll"}),
    )


def _location(raw: RawMessage) -> tuple[Media, frozenset[str]]:
    loc = _as_map(raw.get("location_information"))
    place, address = _as_str(raw.get("place_name")), _as_str(raw.get("address"))
    if place is not None or address is not None:
        kind = "venue"
    else:
        # A live location's period stays in `extra`: `duration` means playing time in the schema.
        kind = "geo_live" if "live_location_period_seconds" in raw else "geo"
    return (
        Media(
            type=kind,
            latitude=_as_float(loc.get("latitude")),
            longitude=_as_float(loc.get("longitude")),
            title=place,
            description=address,  # the schema has no address field; a venue's address is its description
        ),
        frozenset({"location_information", "place_name", "address"}),
    )


def _contact(raw: RawMessage) -> tuple[Media, frozenset[str]]:
    contact = _as_map(raw.get("contact_information"))
    return (
        Media(
            type="contact",
            phone_number=_as_str(contact.get("phone_number")),
            first_name=_as_str(contact.get("first_name")),
            last_name=_as_str(contact.get("last_name")),
        ),
        frozenset({"contact_information"}),
    )


def _photo(raw: RawMessage) -> tuple[Media, frozenset[str]]:
    # The `photo` path stays in `extra`: it is where the bytes sit inside the export folder.
    return (
        Media(
            type="photo",
            size=_as_int(raw.get("photo_file_size"), 0),
            width=_as_int32(raw.get("width")),
            height=_as_int32(raw.get("height")),
        ),
        frozenset({"photo_file_size", "width", "height"}),
    )


def _file(raw: RawMessage) -> tuple[Media, frozenset[str]]:
    media_type = _as_str(raw.get("media_type"))
    kind = _FILE_MEDIA_TYPES.get(media_type or "", "document")
    used = _FILE_KEYS
    if media_type is not None and media_type not in _FILE_MEDIA_TYPES:
        used = used - {"media_type"}  # an unknown kind is published as a document; keep its name in extra
    return (
        Media(
            type=kind,
            mime_type=_as_str(raw.get("mime_type")),
            size=_as_int(raw.get("file_size"), 0),
            file_name=_as_str(raw.get("file_name")),
            width=_as_int32(raw.get("width")),
            height=_as_int32(raw.get("height")),
            duration=_as_float(raw.get("duration_seconds")),
            title=_as_str(raw.get("title")),
            performer=_as_str(raw.get("performer")),
            emoji=_as_str(raw.get("sticker_emoji")),
        ),
        used,
    )


_MEDIA_BY_KEY: Final[Sequence[tuple[str, Callable[[RawMessage], tuple[Media, frozenset[str]]]]]] = (
    ("poll", _poll),
    ("location_information", _location),
    ("contact_information", _contact),
    ("photo", _photo),
    ("file", _file),
    ("media_type", _file),
    ("mime_type", _file),
)


def map_media(raw: RawMessage) -> tuple[Media | None, frozenset[str]]:
    """The media of an ordinary message, and the keys it consumed (the rest may go to `extra`)."""
    for key, build in _MEDIA_BY_KEY:
        if key in raw:
            return build(raw)
    return None, frozenset()


# --- the message --------------------------------------------------------------------------------------------


def _sender(peer: object, name: object) -> Sender | None:
    if isinstance(peer, str) and (name is None or isinstance(name, str)):
        return _known_sender(peer, name)  # a chat has few senders, each with many messages
    return _new_sender(peer, name)


@functools.lru_cache(maxsize=4096)
def _known_sender(peer: str, name: str | None) -> Sender | None:
    """`_new_sender`, once per (peer, name): a `Sender` is immutable, so its messages can share one."""
    return _new_sender(peer, name)


def _new_sender(peer: object, name: object) -> Sender | None:
    parsed = parse_peer(peer)
    if parsed is None:
        return None
    return Sender(id=parsed[0], kind=parsed[1], name=_as_str(name))


def _forward(raw: RawMessage) -> Forward | None:
    name = _as_str(raw.get("forwarded_from"))
    peer = parse_peer(raw.get("forwarded_from_id"))
    # `saved_from` is only a name, with no field of its own: it stays in `extra`, but still marks a forward.
    if name is None and peer is None and "saved_from" not in raw and "forwarded_from" not in raw:
        return None
    return Forward(from_id=None if peer is None else peer[0], from_name=name)


def _reply(raw: RawMessage) -> Reply | None:
    to_id = _as_int(raw.get("reply_to_message_id"))
    if to_id is None:
        return None
    peer = raw.get("reply_to_peer_id")
    parsed = parse_peer(peer)
    # "channel123"-style references are marked here; a negative number can only be a marked id already.
    return Reply(to_message_id=to_id, to_peer_id=parsed[0] if parsed is not None else _as_int(peer))


def _action(raw: RawMessage) -> Action:
    actor = parse_peer(raw.get("actor_id"))
    members = [m for m in _as_list(raw.get("members")) if isinstance(m, str)]
    return Action(
        type=_as_str(raw.get("action")) or "unknown",
        actor_id=None if actor is None else actor[0],
        title=_as_str(raw.get("title")),
        message_id=_as_int(raw.get("message_id")),
        # Members come as display names only (no ids); names cannot contain a newline, so this splits back.
        text="\n".join(members) if members else None,
    )


def _reactions(value: object) -> tuple[Reaction, ...]:
    out: list[Reaction] = []
    for item in map(_as_map, _as_list(value)):
        count = _as_int32(item.get("count"))
        kind = item.get("type")
        if kind == "emoji":
            emoji = _as_str(item.get("emoji"))
        elif kind == "custom_emoji":
            emoji = f"custom:{item.get('document_id')}" if item.get("document_id") is not None else None
        elif kind == "paid":
            emoji = "paid"
        else:
            emoji = None
        if emoji is not None and count is not None:
            out.append(Reaction(emoji=emoji, count=count))
    return tuple(out)


def _extra(raw: RawMessage, used: Collection[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in raw.items():
        if key in used or key in _BASE_KEYS:
            continue
        text = _extra_value(value)
        if text is not None:
            out[key] = text
    return out


def message_key(raw: RawMessage) -> tuple[int, datetime] | None:
    """The id and UTC send time of an export message, or None when either is missing or unusable."""
    msg_id = _as_int(raw.get("id"))
    date = _unix_time(raw.get("date_unixtime"))
    if msg_id is None or date is None:
        return None
    return msg_id, date


def map_export_message(raw: RawMessage, group: Group, ingest_time: datetime) -> MessageEvent | None:
    """The NEW event of one export message, or None if it has no usable `id` or `date_unixtime`.

    An export is a snapshot, so an edited message is NEW with `edit_date` set. Fields the record has no
    place for go to `extra` as strings (via_bot, media_spoiler, file paths, …); nothing here raises on odd
    input.

    Args:
        raw: one element of a chat's `messages` list.
        group: the chat it belongs to.
        ingest_time: the event's ingest time (the caller's clock).
    """
    key = message_key(raw)
    if key is None:
        return None
    msg_id, date = key
    text, entities = map_text(raw.get("text"), raw.get("text_entities"))
    service = raw.get("type") == "service"
    action = _action(raw) if service else None
    media, used = (None, _SERVICE_KEYS) if service else map_media(raw)
    sender = _sender(raw.get("actor_id"), raw.get("actor")) if service else None
    return MessageEvent(
        event_type=EventType.NEW,
        group=group,
        message_id=msg_id,
        source=Source.EXPORT,
        ingest_time=ingest_time,
        date=date,
        edit_date=_unix_time(raw.get("edited_unixtime")),
        sender=sender or _sender(raw.get("from_id"), raw.get("from")),
        text=text,
        entities=entities,
        reply=_reply(raw),
        forward=_forward(raw),
        media=media,
        reactions=_reactions(raw.get("reactions")),
        post_author=_as_str(raw.get("author")),
        is_post=group.type is GroupType.CHANNEL,
        action=action,
        extra=_extra(raw, used),
    )


# --- reading the file -------------------------------------------------------------------------------------


_Stored = RawMessage | msgspec.Raw
"""A kept message: its JSON text (the fast read), or the object `json` made of it (the fallback)."""


@dataclass(slots=True)
class _Chat:
    """One exported chat: its usable messages sorted by id, with the ids alongside for bisecting."""

    group: Group
    ids: array[int] = field(default_factory=lambda: array("q"))
    messages: list[_Stored] = field(default_factory=list)
    skipped: int = 0


class _Key(msgspec.Struct):
    """The two fields the index needs of a message; msgspec skips the rest without building it."""

    id: object = None
    date_unixtime: object = None


_RAW_OBJECT: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])
_RAW_LIST: Final = msgspec.json.Decoder(list[msgspec.Raw])
_KEY: Final = msgspec.json.Decoder(_Key)
_ANY: Final = msgspec.json.Decoder()


def _chat_objects(doc: Mapping[str, object], path: Path) -> list[Mapping[str, object]]:
    """The chat objects of a single-chat or a full-account export."""
    if isinstance(doc.get("messages"), list):
        return [doc]
    chats = [
        _as_map(chat) for section in ("chats", "left_chats") for chat in _as_list(_as_map(doc.get(section)).get("list"))
    ]
    if not chats:
        raise ConfigError(
            f"{path}: expected a Telegram Desktop export with a 'messages' list or a 'chats.list', found neither"
        )
    return chats


def _stored_key(raw: object) -> tuple[int, datetime] | None:
    """The id and time of a listed message (None when it is not an object, or has neither)."""
    if isinstance(raw, msgspec.Raw):
        try:
            key = _KEY.decode(raw)
        except msgspec.ValidationError:  # not an object
            return None
        return message_key({"id": key.id, "date_unixtime": key.date_unixtime})
    return message_key(raw) if isinstance(raw, dict) else None


def _stored_message(raw: _Stored) -> RawMessage:
    """The message object of a kept message (its JSON decoded now, if the fast read kept only that)."""
    if not isinstance(raw, msgspec.Raw):
        return raw
    try:
        found: RawMessage = _ANY.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        # What msgspec refuses inside a message it could skip over (NaN, a lone surrogate, 1e400), `json`
        # reads, as it does for the whole file on the fallback path.
        found = json.loads(bytes(raw))
    return found


def _index(group: Group, messages: Iterable[object]) -> _Chat:
    """The chat's usable messages in ascending id order; the rest are counted as skipped."""
    chat = _Chat(group)
    keyed: list[tuple[int, _Stored]] = []
    for raw in messages:
        key = _stored_key(raw)
        if key is None:
            chat.skipped += 1
        else:
            keyed.append((key[0], raw))  # type: ignore[arg-type]  # a Raw, or a dict from json: str keys
    if any(keyed[i][0] >= keyed[i + 1][0] for i in range(len(keyed) - 1)):
        keyed.sort(key=lambda pair: pair[0])  # stable: of duplicate ids the first in the file wins
    last: int | None = None
    for msg_id, raw in keyed:
        if msg_id == last:
            chat.skipped += 1
            continue
        chat.ids.append(msg_id)
        chat.messages.append(raw)
        last = msg_id
    return chat


_ChatData = tuple[Mapping[str, object], Sequence[object]]
"""A chat object's fields (without its messages) and its messages."""


def _read_fast(data: bytes) -> list[_ChatData] | None:
    """The chats of an export, each message kept as its JSON text; None for anything but a well-formed export.

    A document of a million messages read whole by `json` becomes millions of objects the garbage collector
    walks again and again while they are built and for as long as they are kept (most of the load's time,
    and gigabytes). Kept as text (views into `data`), a message becomes objects only while its page is built.
    Anything unusual (not UTF-8, not an object, odd shapes, what msgspec reads differently from `json`) is
    left to `_read_json`, so both paths give the same chats, and the same errors.
    """
    try:
        doc = _RAW_OBJECT.decode(data)
        if "messages" in doc:
            return [_chat_data(doc)]
        chats = []
        for section in ("chats", "left_chats"):
            if section in doc:
                listed = _RAW_OBJECT.decode(doc[section])
                chats += [_chat_data(_RAW_OBJECT.decode(c)) for c in _RAW_LIST.decode(listed["list"])]
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError):
        return None
    return chats or None


def _chat_data(chat: Mapping[str, msgspec.Raw]) -> _ChatData:
    fields = {key: _ANY.decode(value) for key, value in chat.items() if key != "messages"}
    return fields, _RAW_LIST.decode(chat["messages"]) if "messages" in chat else []


def _read_json(data: bytes, file: Path) -> list[_ChatData]:
    """The chats of an export read whole with `json` (what any input that `_read_fast` declines gets)."""
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{file}: not JSON ({e}); expected a Telegram Desktop result.json") from e
    if not isinstance(doc, dict):
        raise ConfigError(f"{file}: expected a JSON object (a Telegram Desktop export), found {type(doc).__name__}")
    return [(obj, _as_list(obj.get("messages"))) for obj in _chat_objects(doc, file)]


def _load_export(path: Path, only: Collection[int] | None = None) -> list[_Chat]:
    """Read an export file and index the chats in `only` (all when None); raises ConfigError on bad input."""
    file = path / "result.json" if path.is_dir() else path
    try:
        data = file.read_bytes()
    except FileNotFoundError as e:
        raise ConfigError(f"{file}: not found; expected a Telegram Desktop export (result.json or its folder)") from e
    except OSError as e:
        raise ConfigError(f"{file}: cannot read it ({e.strerror}); expected a Telegram Desktop result.json") from e
    chats = _read_fast(data)
    if chats is None:
        chats = _read_json(data, file)
    groups: dict[int, Group] = {}
    messages: dict[int, list[object]] = {}
    for obj, listed in chats:
        group = export_group(obj)
        if group is None:
            log.warning("export %s: a chat without a usable id was ignored (name %r)", file, obj.get("name"))
            continue
        if only is not None and group.id not in only:
            continue
        # The same chat can be listed twice (chats and left_chats): its messages merge, duplicates drop.
        groups.setdefault(group.id, group)
        messages.setdefault(group.id, []).extend(listed)
    return [_index(group, messages[group_id]) for group_id, group in groups.items()]


# --- the source -------------------------------------------------------------------------------------------


class ExportSource(Service):
    """Serves the chats of a Telegram Desktop export as finite, ascending pages of NEW events.

    The file is read once, at `__aenter__`, in a worker thread; only the selected chats' message lists are
    kept. `pages` walks every message whose id is above the group's cursor (and not in its `above` set);
    for a group never walked (`NEVER_WALKED`) that includes migrated history under negative ids.

    Args:
        path: `result.json`, or the export folder that contains it.
        page_size: most events per page.
        only: marked ids of the chats to serve (all when None).
        clock: the ingest time of each page.
    """

    name = "export"

    def __init__(
        self,
        path: Path,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        only: Collection[int] | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if page_size < 1:
            raise ConfigError(f"export page_size must be at least 1, got {page_size}")
        self.path = path
        self.page_size = page_size
        self.only = None if only is None else frozenset(only)
        self._clock = clock
        self._chats: dict[int, _Chat] | None = None
        self._skipped: dict[int, int] = {}

    async def start(self) -> None:
        """Read and index the export (idempotent); raises ConfigError when it is not a usable export."""
        if self._chats is not None:
            return
        chats = await asyncio.to_thread(_load_export, self.path, self.only)
        self._chats = {c.group.id: c for c in chats}
        self._skipped = {c.group.id: c.skipped for c in chats}
        for chat in chats:
            if chat.skipped:
                log.warning(
                    "export %s: group %d (%s): skipped %d messages without a usable id or date_unixtime, "
                    "or with a duplicate id",
                    self.path,
                    chat.group.id,
                    chat.group.title,
                    chat.skipped,
                )
        if self.only is not None and (missing := sorted(self.only - self._chats.keys())):
            log.warning("export %s: requested groups not in the export: %s", self.path, missing)

    async def stop(self) -> None:
        """Drop the loaded messages (idempotent); `skipped` stays readable."""
        self._chats = None

    @property
    def skipped(self) -> Mapping[int, int]:
        """Messages left out per group (no usable id or date_unixtime, or a duplicate id)."""
        return dict(self._skipped)

    def _loaded(self) -> dict[int, _Chat]:
        if self._chats is None:
            raise RuntimeError("ExportSource is not started: use `async with ExportSource(...)`")
        return self._chats

    async def groups(self) -> Sequence[Group]:
        """The exported chats (those in `only`, when given), in the export's order."""
        return [chat.group for chat in self._loaded().values()]

    async def pages(self, group: Group, cursor: CursorView) -> AsyncIterator[Page]:
        """The group's messages above the cursor, ascending, in pages of at most `page_size`; then it ends.

        Every page carries `walked_to`: the last id it covered, including ids skipped as already published.

        Raises:
            SourceError: the group is not in this export.
        """
        chat = self._loaded().get(group.id)
        if chat is None:
            raise SourceError(group.id, f"not in the export {self.path}")
        start = cursor(group.id)
        events: list[MessageEvent] = []
        walked: int | None = None
        now = self._clock()
        for i in range(bisect_right(chat.ids, start.cursor), len(chat.ids)):
            walked = chat.ids[i]
            if start.is_published(walked):
                continue
            event = map_export_message(_stored_message(chat.messages[i]), group, now)
            if event is not None:  # always true: the index kept only messages with an id and a date
                events.append(event)
            if len(events) == self.page_size:
                yield Page(group, events, walked_to=walked, total=len(chat.ids))
                events, walked = [], None
                await asyncio.sleep(0)  # a big chat must not starve the other groups' tasks
                now = self._clock()
        if walked is not None:
            yield Page(group, events, walked_to=walked, total=len(chat.ids))
