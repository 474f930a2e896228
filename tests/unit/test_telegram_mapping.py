"""Telethon message to `MessageEvent` mapping, over real TL objects of the pinned Telethon layer."""

from __future__ import annotations

import operator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telethon import utils as tl_utils
from telethon.extensions import BinaryReader
from telethon.tl import types as tl

from emitter.codec import Encoder, decode, to_avro
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
)
from emitter.telegram_history import _read_raw_messages
from emitter.telegram_mapping import (
    ACTION_TEXT_MAX,
    EXTRA_VALUE_MAX,
    group_from_entity,
    map_deleted,
    map_edited,
    map_message,
    peer_marked_id,
)

CHANNEL_ID = 1234567890
GROUP = Group(id=-1001234567890, title="Group", username="grp", type=GroupType.SUPERGROUP)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
INGEST = datetime(2026, 3, 1, 12, 0, 5, 123000, tzinfo=UTC)
ACTOR = 100
ENCODER = Encoder()


def msg(**fields: Any) -> Any:
    """A TL `Message` in the test supergroup, sent by user ACTOR unless `fields` say otherwise."""
    fields.setdefault("id", 1)
    fields.setdefault("peer_id", tl.PeerChannel(CHANNEL_ID))
    fields.setdefault("date", T0)
    fields.setdefault("message", "")
    fields.setdefault("from_id", tl.PeerUser(ACTOR))
    return tl.Message(**fields)


def service(action: Any, **fields: Any) -> Any:
    """A TL `MessageService` with `action`, performed by user ACTOR unless `fields` say otherwise."""
    fields.setdefault("id", 2)
    fields.setdefault("peer_id", tl.PeerChannel(CHANNEL_ID))
    fields.setdefault("date", T0)
    fields.setdefault("from_id", tl.PeerUser(ACTOR))
    return tl.MessageService(action=action, **fields)


def wire(obj: Any) -> Any:
    """`obj` serialised to Telegram's binary form and parsed back, as it arrives from the network."""
    return BinaryReader(bytes(obj)).tgread_object()


def mapped(message: Any, **kwargs: Any) -> MessageEvent:
    """`map_message` with the test group and times, checked to survive the Avro codec."""
    event = map_message(message, GROUP, source=Source.LIVE, ingest_time=INGEST, **kwargs)
    assert_codec_roundtrip(event)
    return event


def _millis(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if isinstance(value, dict):
        return {k: _millis(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_millis(v) for v in value]
    return value


def assert_codec_roundtrip(event: MessageEvent) -> None:
    """The event encodes, and decodes to its own Avro record (timestamps at millisecond precision)."""
    assert decode(ENCODER.encode(event)) == _millis(to_avro(event))


def document(*attributes: Any, mime_type: str = "application/octet-stream", size: int = 1000, doc_id: int = 21) -> Any:
    """A TL `Document` with `attributes`."""
    return tl.Document(
        id=doc_id,
        access_hash=1,
        file_reference=b"ref",
        date=T0,
        mime_type=mime_type,
        size=size,
        dc_id=2,
        attributes=list(attributes),
    )


GEO = tl.GeoPoint(long=13.405, lat=52.52, access_hash=0)
STICKERSET = tl.InputStickerSetEmpty()

# (case id, media, expected Media, expected extra)
MEDIA_CASES: list[tuple[str, Any, Media | None, dict[str, str]]] = [
    (
        "photo_largest_size",
        tl.MessageMediaPhoto(
            photo=tl.Photo(
                id=11,
                access_hash=1,
                file_reference=b"",
                date=T0,
                dc_id=2,
                sizes=[
                    tl.PhotoStrippedSize(type="i", bytes=b"xx"),
                    tl.PhotoSize(type="m", w=320, h=240, size=10_000),
                    tl.PhotoSizeProgressive(type="y", w=1280, h=960, sizes=[1000, 20_000, 95_000]),
                    tl.PhotoCachedSize(type="s", w=90, h=90, bytes=b"abc"),
                ],
            )
        ),
        Media(type="photo", id=11, width=1280, height=960, size=95_000),
        {},
    ),
    (
        "photo_cached_only",
        tl.MessageMediaPhoto(
            photo=tl.Photo(
                id=12,
                access_hash=1,
                file_reference=b"",
                date=T0,
                dc_id=2,
                sizes=[tl.PhotoCachedSize(type="s", w=90, h=60, bytes=b"abcd")],
            )
        ),
        Media(type="photo", id=12, width=90, height=60, size=4),
        {},
    ),
    ("photo_empty", tl.MessageMediaPhoto(photo=tl.PhotoEmpty(id=13)), Media(type="photo", id=13), {}),
    (
        "photo_expired_self_destruct",
        tl.MessageMediaPhoto(ttl_seconds=10),
        Media(type="photo"),
        {"media_ttl_seconds": "10"},
    ),
    (
        "document_large_file",
        tl.MessageMediaDocument(
            document=document(tl.DocumentAttributeFilename("a.pdf"), mime_type="application/pdf", size=3 * 2**31)
        ),
        Media(type="document", id=21, mime_type="application/pdf", size=3 * 2**31, file_name="a.pdf"),
        {},
    ),
    (
        "video",
        tl.MessageMediaDocument(
            document=document(
                tl.DocumentAttributeVideo(duration=12.5, w=1920, h=1080, supports_streaming=True),
                tl.DocumentAttributeFilename("v.mp4"),
                mime_type="video/mp4",
            ),
            video=True,
        ),
        Media(
            type="video",
            id=21,
            mime_type="video/mp4",
            size=1000,
            file_name="v.mp4",
            width=1920,
            height=1080,
            duration=12.5,
        ),
        {},
    ),
    (
        "video_note",
        tl.MessageMediaDocument(
            document=document(
                tl.DocumentAttributeVideo(duration=5, w=240, h=240, round_message=True), mime_type="video/mp4"
            ),
            round=True,
        ),
        Media(type="video_note", id=21, mime_type="video/mp4", size=1000, width=240, height=240, duration=5.0),
        {},
    ),
    (
        "voice",
        tl.MessageMediaDocument(
            document=document(
                tl.DocumentAttributeAudio(duration=3, voice=True, waveform=b"\x00"), mime_type="audio/ogg"
            ),
            voice=True,
        ),
        Media(type="voice", id=21, mime_type="audio/ogg", size=1000, duration=3.0),
        {},
    ),
    (
        "voice_expired_keeps_kind_from_flags",
        tl.MessageMediaDocument(voice=True, ttl_seconds=5),
        Media(type="voice"),
        {"media_ttl_seconds": "5"},
    ),
    (
        "audio",
        tl.MessageMediaDocument(
            document=document(
                tl.DocumentAttributeAudio(duration=180, title="Song", performer="Band"),
                tl.DocumentAttributeFilename("s.mp3"),
                mime_type="audio/mpeg",
            )
        ),
        Media(
            type="audio",
            id=21,
            mime_type="audio/mpeg",
            size=1000,
            file_name="s.mp3",
            duration=180.0,
            title="Song",
            performer="Band",
        ),
        {},
    ),
    (
        "animation_wins_over_video",
        tl.MessageMediaDocument(
            document=document(
                tl.DocumentAttributeVideo(duration=2.0, w=320, h=240),
                tl.DocumentAttributeAnimated(),
                tl.DocumentAttributeFilename("a.mp4"),
                mime_type="video/mp4",
            )
        ),
        Media(
            type="animation",
            id=21,
            mime_type="video/mp4",
            size=1000,
            file_name="a.mp4",
            width=320,
            height=240,
            duration=2.0,
        ),
        {},
    ),
    (
        "sticker",
        tl.MessageMediaDocument(
            document=document(
                tl.DocumentAttributeImageSize(w=512, h=512),
                tl.DocumentAttributeSticker(alt="😀", stickerset=STICKERSET),
                tl.DocumentAttributeFilename("sticker.webp"),
                mime_type="image/webp",
            )
        ),
        Media(
            type="sticker",
            id=21,
            mime_type="image/webp",
            size=1000,
            file_name="sticker.webp",
            width=512,
            height=512,
            emoji="😀",
        ),
        {},
    ),
    (
        "video_sticker_wins_over_video",
        tl.MessageMediaDocument(
            document=document(
                tl.DocumentAttributeVideo(duration=3.0, w=512, h=512),
                tl.DocumentAttributeSticker(alt="🔥", stickerset=STICKERSET),
                mime_type="video/webm",
            )
        ),
        Media(
            type="sticker", id=21, mime_type="video/webm", size=1000, width=512, height=512, duration=3.0, emoji="🔥"
        ),
        {},
    ),
    ("document_empty", tl.MessageMediaDocument(document=tl.DocumentEmpty(id=22)), Media(type="document", id=22), {}),
    (
        "webpage",
        tl.MessageMediaWebPage(
            webpage=tl.WebPage(
                id=1, url="https://e.example/a", display_url="e.example/a", hash=0, title="T", description="D"
            )
        ),
        Media(type="webpage", url="https://e.example/a", title="T", description="D"),
        {},
    ),
    (
        "webpage_empty",
        tl.MessageMediaWebPage(webpage=tl.WebPageEmpty(id=2, url="https://e.example/b")),
        Media(type="webpage", url="https://e.example/b"),
        {"webpage_class": "WebPageEmpty"},
    ),
    (
        "webpage_pending",
        tl.MessageMediaWebPage(webpage=tl.WebPagePending(id=3, date=T0)),
        Media(type="webpage"),
        {"webpage_class": "WebPagePending"},
    ),
    (
        "webpage_not_modified",
        tl.MessageMediaWebPage(webpage=tl.WebPageNotModified(cached_page_views=4)),
        Media(type="webpage"),
        {"webpage_class": "WebPageNotModified"},
    ),
    (
        "poll_text_with_entities",
        tl.MessageMediaPoll(
            poll=tl.Poll(
                id=31,
                question=tl.TextWithEntities(text="Lunch?", entities=[tl.MessageEntityBold(0, 5)]),
                answers=[
                    tl.PollAnswer(text=tl.TextWithEntities(text="Pizza", entities=[]), option=b"0"),
                    tl.PollAnswer(text=tl.TextWithEntities(text="Soup 🍲", entities=[]), option=b"1"),
                ],
                hash=0,
                closed=True,
            ),
            results=tl.PollResults(total_voters=7),
        ),
        Media(
            type="poll",
            id=31,
            poll_question="Lunch?",
            poll_answers=("Pizza", "Soup 🍲"),
            poll_closed=True,
            poll_total_voters=7,
        ),
        {},
    ),
    (
        "poll_results_hidden",
        tl.MessageMediaPoll(
            poll=tl.Poll(id=32, question=tl.TextWithEntities(text="Q", entities=[]), answers=[], hash=0),
            results=tl.PollResults(),
        ),
        Media(type="poll", id=32, poll_question="Q", poll_closed=False),
        {},
    ),
    ("geo", tl.MessageMediaGeo(geo=GEO), Media(type="geo", latitude=52.52, longitude=13.405), {}),
    ("geo_empty", tl.MessageMediaGeo(geo=tl.GeoPointEmpty()), Media(type="geo"), {}),
    (
        "geo_live",
        tl.MessageMediaGeoLive(geo=GEO, period=900, heading=90),
        Media(type="geo_live", latitude=52.52, longitude=13.405),
        {"geo_live_period": "900"},
    ),
    (
        "venue",
        tl.MessageMediaVenue(
            geo=GEO, title="Cafe", address="Main St 1", provider="foursquare", venue_id="abc", venue_type=""
        ),
        Media(type="venue", title="Cafe", description="Main St 1", latitude=52.52, longitude=13.405),
        {"venue_provider": "foursquare", "venue_id": "abc"},
    ),
    (
        "contact",
        tl.MessageMediaContact(phone_number="+100", first_name="Ada", last_name="Lovelace", vcard="", user_id=42),
        Media(type="contact", phone_number="+100", first_name="Ada", last_name="Lovelace"),
        {"contact_user_id": "42"},
    ),
    (
        "contact_not_on_telegram",
        tl.MessageMediaContact(phone_number="+101", first_name="Bob", last_name="", vcard="", user_id=0),
        Media(type="contact", phone_number="+101", first_name="Bob", last_name=""),
        {},
    ),
    (
        "dice",
        tl.MessageMediaDice(value=6, emoticon="🎲"),
        Media(type="dice", emoji="🎲"),
        {"dice_value": "6"},
    ),
    (
        "game",
        tl.MessageMediaGame(
            game=tl.Game(id=5, access_hash=0, short_name="g", title="Game", description="Fun", photo=tl.PhotoEmpty(1))
        ),
        Media(type="game", id=5, title="Game", description="Fun"),
        {"game_short_name": "g"},
    ),
    (
        "invoice",
        tl.MessageMediaInvoice(title="Ticket", description="One", currency="EUR", total_amount=500, start_param=""),
        Media(type="invoice", title="Ticket", description="One"),
        {"invoice_currency": "EUR", "invoice_total_amount": "500"},
    ),
    (
        "story",
        tl.MessageMediaStory(peer=tl.PeerUser(7), id=3),
        Media(type="story"),
        {"story_peer_id": "7", "story_id": "3"},
    ),
    (
        "giveaway",
        tl.MessageMediaGiveaway(channels=[1], quantity=10, until_date=T0, prize_description="Stars"),
        Media(type="giveaway", description="Stars"),
        {"giveaway_quantity": "10", "giveaway_until_date": "2026-03-01T12:00:00+00:00"},
    ),
    (
        "giveaway_results",
        tl.MessageMediaGiveawayResults(
            channel_id=1, launch_msg_id=2, winners_count=3, unclaimed_count=0, winners=[4], until_date=T0
        ),
        Media(type="giveaway"),
        {"giveaway_winners_count": "3", "giveaway_until_date": "2026-03-01T12:00:00+00:00"},
    ),
    ("unsupported", tl.MessageMediaUnsupported(), Media(type="unsupported"), {}),
    (
        "unknown_media_class",
        tl.MessageMediaPaidMedia(stars_amount=5, extended_media=[]),
        Media(type="unsupported"),
        {"media_class": "MessageMediaPaidMedia"},
    ),
    ("empty", tl.MessageMediaEmpty(), None, {}),
]


@pytest.mark.parametrize(("media", "expected", "extra"), [c[1:] for c in MEDIA_CASES], ids=[c[0] for c in MEDIA_CASES])
def test_media(media: Any, expected: Media | None, extra: dict[str, str]) -> None:
    """Each TL media kind maps to the schema's media type and fields; leftovers go to extra."""
    event = mapped(msg(message="caption", media=media))
    assert event.media == expected
    assert event.extra == extra
    assert event.text == "caption"


@pytest.mark.parametrize(("media", "expected", "extra"), [c[1:] for c in MEDIA_CASES], ids=[c[0] for c in MEDIA_CASES])
def test_media_after_wire_roundtrip(media: Any, expected: Media | None, extra: dict[str, str]) -> None:
    """Media parsed from Telegram's binary form maps exactly like the object it was serialised from."""
    assert mapped(wire(msg(media=media))).media == expected


@pytest.mark.parametrize(("media", "expected", "extra"), [c[1:] for c in MEDIA_CASES], ids=[c[0] for c in MEDIA_CASES])
def test_a_history_page_message_maps_like_telethons_custom_message(media: Any, expected: Media, extra: Any) -> None:
    """History pages hold Telethon's generated TL classes (no `action` on a Message, no text on a service
    message): each maps to the very event its custom counterpart gives."""
    for sample in (
        msg(message="caption", media=media, views=7, forwards=2, pinned=True),
        service(tl.MessageActionPinMessage(), reply_to=tl.MessageReplyHeader(reply_to_msg_id=1)),
    ):
        generated = _read_raw_messages(BinaryReader(bytes(sample)))
        assert type(generated).__module__ == "telethon.tl.types"
        assert mapped(generated) == mapped(wire(sample))


# (case id, action, expected Action with actor ACTOR)
ACTION_CASES: list[tuple[str, Any, Action]] = [
    (
        "chat_create",
        tl.MessageActionChatCreate(title="G", users=[1, 2]),
        Action(type="chat_create", user_ids=(1, 2), title="G"),
    ),
    ("chat_add_user", tl.MessageActionChatAddUser(users=[3]), Action(type="chat_add_user", user_ids=(3,))),
    ("chat_delete_user", tl.MessageActionChatDeleteUser(user_id=4), Action(type="chat_delete_user", user_ids=(4,))),
    (
        "chat_joined_by_link",
        tl.MessageActionChatJoinedByLink(inviter_id=5),
        Action(type="chat_joined_by_link", text="inviter_id=5"),
    ),
    ("chat_joined_by_request", tl.MessageActionChatJoinedByRequest(), Action(type="chat_joined_by_request")),
    ("chat_edit_title", tl.MessageActionChatEditTitle(title="New"), Action(type="chat_edit_title", title="New")),
    ("chat_edit_photo", tl.MessageActionChatEditPhoto(photo=tl.PhotoEmpty(1)), Action(type="chat_edit_photo")),
    ("chat_delete_photo", tl.MessageActionChatDeletePhoto(), Action(type="chat_delete_photo")),
    (
        "chat_migrate_to",
        tl.MessageActionChatMigrateTo(channel_id=555),
        Action(type="chat_migrate_to", peer_id=-1000000000555),
    ),
    (
        "channel_migrate_from",
        tl.MessageActionChannelMigrateFrom(title="Old", chat_id=444),
        Action(type="channel_migrate_from", title="Old", peer_id=-444),
    ),
    (
        "channel_create",
        tl.MessageActionChannelCreate(title="Chan"),
        Action(type="channel_create", title="Chan"),
    ),
    (
        "topic_create",
        tl.MessageActionTopicCreate(title="Topic", icon_color=0x6FB9F0),
        Action(type="topic_create", title="Topic", text="icon_color=7322096"),
    ),
    (
        "topic_edit",
        tl.MessageActionTopicEdit(closed=True),
        Action(type="topic_edit", text="closed=True"),
    ),
    (
        "group_call",
        tl.MessageActionGroupCall(call=tl.InputGroupCall(id=1, access_hash=2), duration=60),
        Action(type="group_call", text="duration=60"),
    ),
    (
        "invite_to_group_call",
        tl.MessageActionInviteToGroupCall(call=tl.InputGroupCall(id=1, access_hash=2), users=[8, 9]),
        Action(type="invite_to_group_call", user_ids=(8, 9)),
    ),
    (
        "set_messages_ttl_acronym",
        tl.MessageActionSetMessagesTTL(period=86400),
        Action(type="set_messages_ttl", text="period=86400"),
    ),
    ("custom_action", tl.MessageActionCustomAction(message="hi"), Action(type="custom_action", text="message=hi")),
    (
        "gift_premium_text_with_entities",
        tl.MessageActionGiftPremium(
            currency="EUR", amount=100, days=30, message=tl.TextWithEntities(text="thanks", entities=[])
        ),
        Action(type="gift_premium", text="currency=EUR; amount=100; days=30; message=thanks"),
    ),
    (
        "geo_proximity_peers",
        tl.MessageActionGeoProximityReached(from_id=tl.PeerUser(1), to_id=tl.PeerChannel(2), distance=50),
        Action(type="geo_proximity_reached", text="from_id=1; to_id=-1000000000002; distance=50"),
    ),
    (
        "group_call_scheduled_date",
        tl.MessageActionGroupCallScheduled(call=tl.InputGroupCall(id=1, access_hash=2), schedule_date=T0),
        Action(type="group_call_scheduled", text="schedule_date=2026-03-01T12:00:00+00:00"),
    ),
    ("contact_sign_up", tl.MessageActionContactSignUp(), Action(type="contact_sign_up")),
    ("history_clear", tl.MessageActionHistoryClear(), Action(type="history_clear")),
    ("empty", tl.MessageActionEmpty(), Action(type="empty")),
]


@pytest.mark.parametrize(("action", "expected"), [c[1:] for c in ACTION_CASES], ids=[c[0] for c in ACTION_CASES])
def test_service_action(action: Any, expected: Action) -> None:
    """Service actions map to snake-case types, their users, title, migration peer and remaining fields as text."""
    for message in (service(action), wire(service(action))):
        event = mapped(message)
        assert event.action == Action(**{**_fields(expected), "actor_id": ACTOR})
        assert event.text == ""
        assert event.media is None


def _fields(action: Action) -> dict[str, Any]:
    return {name: getattr(action, name) for name in Action.__slots__}


def test_pin_message_points_at_the_pinned_message() -> None:
    """A pin service message's message_id is the message its reply header points at."""
    event = mapped(service(tl.MessageActionPinMessage(), reply_to=tl.MessageReplyHeader(reply_to_msg_id=77)))
    assert event.action == Action(type="pin_message", actor_id=ACTOR, message_id=77)
    assert event.reply == Reply(to_message_id=77)


def test_action_text_is_bounded() -> None:
    """Long action fields are cut, so a service message never carries a payload-sized text."""
    event = mapped(service(tl.MessageActionWebViewDataSentMe(text="t" * 5000, data="d" * 5000)))
    assert event.action is not None and event.action.text is not None
    assert len(event.action.text) <= ACTION_TEXT_MAX
    assert event.action.text.startswith("text=ttt")
    assert "; data=ddd" in event.action.text


def test_update_position_is_set_when_given_and_absent_otherwise() -> None:
    """A live message mapped with its update's pts carries it, so no copy of the event is needed to add it."""
    assert mapped(service(tl.MessageActionChatEditTitle(title="T")), pts=4242).pts == 4242
    assert mapped(service(tl.MessageActionChatEditTitle(title="T"))).pts is None


def test_anonymous_channel_service_message_has_no_actor() -> None:
    """A channel's service message without from_id has no actor."""
    event = mapped(service(tl.MessageActionChatEditTitle(title="T"), from_id=None, post=True))
    assert event.action == Action(type="chat_edit_title", title="T")
    assert event.sender is None


def test_text_and_every_entity_kind() -> None:
    """Entity types are the TL class names in snake case, with their url, user, language and emoji id."""
    text = "bold 👋 link @ada code"
    entities = [
        tl.MessageEntityBold(offset=0, length=4),
        tl.MessageEntityTextUrl(offset=8, length=4, url="https://x.example"),
        tl.MessageEntityMentionName(offset=13, length=4, user_id=42),
        tl.InputMessageEntityMentionName(offset=13, length=4, user_id=tl.InputUser(user_id=43, access_hash=1)),
        tl.MessageEntityPre(offset=18, length=4, language="python"),
        tl.MessageEntityPre(offset=18, length=4, language=""),
        tl.MessageEntityCustomEmoji(offset=5, length=2, document_id=5_000_000_000_000_000_000),
        tl.MessageEntityBlockquote(offset=0, length=4, collapsed=True),
        tl.MessageEntityUnknown(offset=0, length=1),
        tl.MessageEntityBankCard(offset=0, length=1),
        tl.MessageEntitySpoiler(offset=0, length=1),
        tl.MessageEntityStrike(offset=0, length=1),
    ]
    expected = (
        Entity(type="bold", offset=0, length=4),
        Entity(type="text_url", offset=8, length=4, url="https://x.example"),
        Entity(type="mention_name", offset=13, length=4, user_id=42),
        Entity(type="mention_name", offset=13, length=4, user_id=43),
        Entity(type="pre", offset=18, length=4, language="python"),
        Entity(type="pre", offset=18, length=4),
        Entity(type="custom_emoji", offset=5, length=2, custom_emoji_id=5_000_000_000_000_000_000),
        Entity(type="blockquote", offset=0, length=4),
        Entity(type="unknown", offset=0, length=1),
        Entity(type="bank_card", offset=0, length=1),
        Entity(type="spoiler", offset=0, length=1),
        Entity(type="strike", offset=0, length=1),
    )
    assert mapped(msg(message=text, entities=entities)).entities == expected
    assert mapped(wire(msg(message=text, entities=entities))).text == text


# (case id, message fields, expected sender, expected is_post)
SENDER_CASES: list[tuple[str, dict[str, Any], Sender | None, bool]] = [
    ("user", {"from_id": tl.PeerUser(7)}, Sender(id=7, kind=PeerKind.USER), False),
    (
        "channel_as_itself",
        {"from_id": tl.PeerChannel(123)},
        Sender(id=-1000000000123, kind=PeerKind.CHANNEL),
        False,
    ),
    ("basic_group", {"from_id": tl.PeerChat(55)}, Sender(id=-55, kind=PeerKind.CHAT), False),
    ("channel_post_anonymous", {"from_id": None, "post": True}, None, True),
    ("private_incoming", {"from_id": None, "peer_id": tl.PeerUser(9)}, Sender(id=9), False),
    ("private_outgoing_unknown_self", {"from_id": None, "peer_id": tl.PeerUser(9), "out": True}, None, False),
    ("group_without_from_id", {"from_id": None}, None, False),
]


@pytest.mark.parametrize(
    ("fields", "expected", "is_post"), [c[1:] for c in SENDER_CASES], ids=[c[0] for c in SENDER_CASES]
)
def test_sender(fields: dict[str, Any], expected: Sender | None, is_post: bool) -> None:
    """The sender is the marked id of from_id with its kind; channel posts without from_id have none."""
    for message in (msg(**fields), wire(msg(**fields))):
        event = mapped(message)
        assert event.sender == expected
        assert event.is_post is is_post


# (case id, cached entity, message fields, expected sender)
CACHED_SENDER_CASES: list[tuple[str, Any, dict[str, Any], Sender | None]] = [
    (
        "user_names",
        tl.User(id=ACTOR, first_name="Ada", last_name="Lovelace", username="ada"),
        {},
        Sender(id=ACTOR, name="Ada Lovelace", username="ada", is_bot=False),
    ),
    (
        "bot",
        tl.User(id=ACTOR, first_name="Helper", bot=True, username="helper_bot"),
        {},
        Sender(id=ACTOR, name="Helper", username="helper_bot", is_bot=True),
    ),
    (
        "collectible_usernames_only",
        tl.User(id=ACTOR, first_name="Ann", usernames=[tl.Username(username="ann", active=True)]),
        {},
        Sender(id=ACTOR, name="Ann", username="ann", is_bot=False),
    ),
    ("deleted_user_without_names", tl.User(id=ACTOR, deleted=True), {}, Sender(id=ACTOR, is_bot=False)),
    (
        "channel_post_cached_channel",
        tl.Channel(id=CHANNEL_ID, title="News", photo=tl.ChatPhotoEmpty(), date=T0, broadcast=True, username="news"),
        {"from_id": None, "post": True},
        Sender(id=-1001234567890, kind=PeerKind.CHANNEL, name="News", username="news"),
    ),
    (
        "cached_entity_of_someone_else_is_ignored",
        tl.User(id=999, first_name="Mallory"),
        {},
        Sender(id=ACTOR),
    ),
]


@pytest.mark.parametrize(
    ("entity", "fields", "expected"), [c[1:] for c in CACHED_SENDER_CASES], ids=[c[0] for c in CACHED_SENDER_CASES]
)
def test_sender_names_from_cached_entity(entity: Any, fields: dict[str, Any], expected: Sender | None) -> None:
    """Names come from the sender entity Telethon cached on its custom Message, when it is the sender."""
    message = msg(**fields)
    message._sender = entity
    assert mapped(message).sender == expected


def test_messages_of_one_sender_entity_share_its_sender_until_the_entity_changes() -> None:
    """A page's messages by one cached entity get one Sender; an entity changed in place or another is read anew."""
    alice = tl.User(id=ACTOR, first_name="Alice", username="alice")
    first, second = msg(id=1), msg(id=2)
    first._sender = second._sender = alice
    shared = mapped(first).sender
    assert mapped(second).sender is shared
    alice.first_name = "Alicia"
    renamed = mapped(second).sender
    assert renamed == Sender(id=ACTOR, name="Alicia", username="alice", is_bot=False)
    other = msg(id=3, from_id=tl.PeerUser(ACTOR + 1))
    other._sender = tl.User(id=ACTOR + 1, first_name="Bob", bot=True)
    assert mapped(other).sender == Sender(id=ACTOR + 1, name="Bob", is_bot=True)
    assert shared == Sender(id=ACTOR, name="Alice", username="alice", is_bot=False)


class _ExplodingClient:
    """A client stand-in that fails any use: mapping must not reach for the network."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"mapping touched the client: {name}")


def test_mapping_never_touches_the_client() -> None:
    """A custom Message bound to a client maps from its cached fields alone."""
    message = msg(from_id=tl.PeerUser(7), via_bot_id=8, reply_to=tl.MessageReplyHeader(reply_to_msg_id=1))
    message._client = _ExplodingClient()
    event = mapped(message)
    assert event.extra == {}
    assert event.sender == Sender(id=7)


# (case id, reply header, expected reply, expected extra)
REPLY_CASES: list[tuple[str, Any, Reply, dict[str, str]]] = [
    ("plain", tl.MessageReplyHeader(reply_to_msg_id=10), Reply(to_message_id=10), {}),
    (
        "in_forum_topic",
        tl.MessageReplyHeader(forum_topic=True, reply_to_msg_id=20, reply_to_top_id=5),
        Reply(to_message_id=20, to_top_id=5, forum_topic=True),
        {},
    ),
    (
        "forum_topic_root",
        tl.MessageReplyHeader(forum_topic=True, reply_to_msg_id=5),
        Reply(to_message_id=5, forum_topic=True),
        {},
    ),
    (
        "other_chat_with_quote",
        tl.MessageReplyHeader(reply_to_msg_id=3, reply_to_peer_id=tl.PeerChannel(9), quote=True, quote_text="q"),
        Reply(to_message_id=3, to_peer_id=-1000000000009, quote_text="q"),
        {},
    ),
    (
        "story",
        tl.MessageReplyStoryHeader(peer=tl.PeerUser(7), story_id=4),
        Reply(),
        {"reply_story_peer_id": "7", "reply_story_id": "4"},
    ),
]


@pytest.mark.parametrize(("header", "expected", "extra"), [c[1:] for c in REPLY_CASES], ids=[c[0] for c in REPLY_CASES])
def test_reply(header: Any, expected: Reply, extra: dict[str, str]) -> None:
    """Reply headers map to the replied message, thread top, forum flag, other chat and quote."""
    for message in (msg(reply_to=header), wire(msg(reply_to=header))):
        event = mapped(message)
        assert event.reply == expected
        assert event.extra == extra


# (case id, forward header, expected forward)
FORWARD_CASES: list[tuple[str, Any, Forward]] = [
    (
        "from_user",
        tl.MessageFwdHeader(date=T0, from_id=tl.PeerUser(3)),
        Forward(from_id=3, date=T0),
    ),
    (
        "from_channel_post",
        tl.MessageFwdHeader(date=T0, from_id=tl.PeerChannel(4), channel_post=99, post_author="Ed"),
        Forward(from_id=-1000000000004, date=T0, channel_post=99, post_author="Ed"),
    ),
    ("hidden_author", tl.MessageFwdHeader(date=T0, from_name="Hidden"), Forward(from_name="Hidden", date=T0)),
    (
        "saved_from",
        tl.MessageFwdHeader(date=T0, from_id=tl.PeerChat(5), saved_from_peer=tl.PeerChannel(6), saved_from_msg_id=7),
        Forward(from_id=-5, date=T0, saved_from_peer=-1000000000006, saved_from_msg_id=7),
    ),
]


@pytest.mark.parametrize(("header", "expected"), [c[1:] for c in FORWARD_CASES], ids=[c[0] for c in FORWARD_CASES])
def test_forward(header: Any, expected: Forward) -> None:
    """Forward headers map to marked ids of the origin, its name, date, post and saved-from source."""
    for message in (msg(fwd_from=header), wire(msg(fwd_from=header))):
        assert mapped(message).forward == expected


def test_reactions_of_every_kind() -> None:
    """Emoji reactions keep the emoji; custom ones are custom:<id>, paid ones paid, unknown ones their class."""
    reactions = tl.MessageReactions(
        results=[
            tl.ReactionCount(reaction=tl.ReactionEmoji(emoticon="👍"), count=3),
            tl.ReactionCount(reaction=tl.ReactionCustomEmoji(document_id=5368324170671202286), count=2),
            tl.ReactionCount(reaction=tl.ReactionPaid(), count=40),
            tl.ReactionCount(reaction=tl.ReactionEmpty(), count=1),
        ]
    )
    expected = (
        Reaction("👍", 3),
        Reaction("custom:5368324170671202286", 2),
        Reaction("paid", 40),
        Reaction("ReactionEmpty", 1),
    )
    assert mapped(msg(reactions=reactions)).reactions == expected
    assert mapped(wire(msg(reactions=reactions))).reactions == expected


def test_counters_flags_and_channel_fields() -> None:
    """Views, forwards, replies, post author, inline bot, pin, post flag and edit date are copied."""
    message = msg(
        from_id=None,
        post=True,
        pinned=True,
        views=1500,
        forwards=12,
        replies=tl.MessageReplies(replies=4, replies_pts=9, comments=True, channel_id=77),
        post_author="Editor",
        via_bot_id=8,
        edit_date=T0 + timedelta(minutes=5),
    )
    for m in (message, wire(message)):
        event = mapped(m)
        assert (event.views, event.forwards, event.replies) == (1500, 12, 4)
        assert (event.post_author, event.via_bot_id, event.pinned, event.is_post) == ("Editor", 8, True, True)
        assert event.edit_date == T0 + timedelta(minutes=5)
        assert event.date == T0
        assert event.sender is None


def test_album_members_share_grouped_id() -> None:
    """Messages of one album carry the same grouped_id; others have none."""
    photo = tl.MessageMediaPhoto(photo=tl.PhotoEmpty(id=1))
    album = [mapped(msg(id=i, grouped_id=13_000_000_000_000_000, media=photo)) for i in (5, 6)]
    assert [e.grouped_id for e in album] == [13_000_000_000_000_000] * 2
    assert [e.message_id for e in album] == [5, 6]
    assert mapped(msg(id=7)).grouped_id is None


def test_event_envelope() -> None:
    """The event carries the given group, source, ingest time and type; EDIT via map_edited."""
    event = mapped(msg(id=42, message="hi"))
    assert (event.event_type, event.group, event.source, event.ingest_time) == (
        EventType.NEW,
        GROUP,
        Source.LIVE,
        INGEST,
    )
    edited = map_edited(msg(id=42, edit_date=T0), GROUP, source=Source.SWEEP, ingest_time=INGEST)
    assert_codec_roundtrip(edited)
    assert (edited.event_type, edited.source, edited.message_id, edited.edit_date) == (
        EventType.EDIT,
        Source.SWEEP,
        42,
        T0,
    )


def test_map_deleted_carries_only_ids() -> None:
    """DELETE events have the group and message id and nothing else."""
    event = map_deleted(GROUP, 99, source=Source.LIVE, ingest_time=INGEST)
    assert_codec_roundtrip(event)
    assert event == MessageEvent(
        event_type=EventType.DELETE, group=GROUP, message_id=99, source=Source.LIVE, ingest_time=INGEST
    )


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        (T0, T0),
        (datetime(2026, 3, 1, 12, 0), T0),  # noqa: DTZ001 - a naive date is the odd input under test
        (datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))), T0),
        (1772366400, T0),
        (None, None),
        ("yesterday", None),
    ],
    ids=["utc", "naive", "offset", "unix_seconds", "none", "junk"],
)
def test_dates_become_aware_utc(date: Any, expected: datetime | None) -> None:
    """Message dates are aware UTC whatever form they come in; junk becomes None."""
    event = mapped(msg(date=date))
    assert event.date == expected
    assert event.date is None or event.date.tzinfo is UTC


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        (tl.PeerUser(7), 7),
        (tl.PeerChat(55), -55),
        (tl.PeerChannel(1234567890), -1001234567890),
        (tl.InputPeerChannel(channel_id=5, access_hash=1), -1000000000005),
        (tl.InputPeerSelf(), None),
        (None, None),
        ("peer", None),
    ],
    ids=["user", "chat", "channel", "input_channel", "self", "none", "junk"],
)
def test_peer_marked_id(peer: Any, expected: int | None) -> None:
    """Peers get Telegram's marked ids; anything else is None."""
    assert peer_marked_id(peer) == expected


@given(kind=st.sampled_from([tl.PeerUser, tl.PeerChat, tl.PeerChannel]), bare=st.integers(1, 9_999_999_999))
@settings(max_examples=50, deadline=None)
def test_peer_marked_id_agrees_with_telethon(kind: Any, bare: int) -> None:
    """For every valid id, peer_marked_id equals telethon.utils.get_peer_id."""
    assert peer_marked_id(kind(bare)) == tl_utils.get_peer_id(kind(bare))


def test_peer_marked_id_does_not_rewrite_its_input() -> None:
    """Unlike get_peer_id, an out-of-range id is read, never rewritten inside the peer."""
    peer = tl.PeerChannel(channel_id=-1001234567890)
    peer_marked_id(peer)
    assert peer.channel_id == -1001234567890


# (case id, entity, expected group)
GROUP_CASES: list[tuple[str, Any, Group]] = [
    (
        "broadcast_channel",
        tl.Channel(id=11, title="News", photo=tl.ChatPhotoEmpty(), date=T0, broadcast=True, username="news"),
        Group(id=-1000000000011, title="News", username="news", type=GroupType.CHANNEL),
    ),
    (
        "megagroup",
        tl.Channel(id=12, title="Chat", photo=tl.ChatPhotoEmpty(), date=T0, megagroup=True),
        Group(id=-1000000000012, title="Chat", type=GroupType.SUPERGROUP),
    ),
    (
        "basic_group",
        tl.Chat(id=13, title="Old", photo=tl.ChatPhotoEmpty(), participants_count=3, date=T0, version=1),
        Group(id=-13, title="Old", type=GroupType.GROUP),
    ),
    ("chat_forbidden", tl.ChatForbidden(id=14, title="Gone"), Group(id=-14, title="Gone", type=GroupType.GROUP)),
    (
        "channel_forbidden",
        tl.ChannelForbidden(id=15, access_hash=1, title="Banned", megagroup=True),
        Group(id=-1000000000015, title="Banned", type=GroupType.SUPERGROUP),
    ),
    (
        "user",
        tl.User(id=16, first_name="Ada", last_name="L", username="ada"),
        Group(id=16, title="Ada L", username="ada", type=GroupType.PRIVATE),
    ),
    ("bare_channel_peer", tl.PeerChannel(17), Group(id=-1000000000017)),
]


@pytest.mark.parametrize(("entity", "expected"), [c[1:] for c in GROUP_CASES], ids=[c[0] for c in GROUP_CASES])
def test_group_from_entity(entity: Any, expected: Group) -> None:
    """Entities map to their marked id, title, username and group type."""
    assert group_from_entity(entity) == expected


def test_group_from_entity_rejects_non_entities() -> None:
    """Something without an id is a clear TypeError, not a broken Group."""
    with pytest.raises(TypeError, match="not a Telegram entity"):
        group_from_entity("nope")


# --- odd input -------------------------------------------------------------------------------------------


class _Exploding:
    """A message whose text attribute raises: stands for any bug deep in a TL object."""

    id = 9
    date = T0

    @property
    def message(self) -> str:
        raise RuntimeError("boom")


@pytest.mark.parametrize(
    "message",
    [object(), None, tl.MessageEmpty(id=3, peer_id=tl.PeerChannel(CHANNEL_ID)), tl.PeerUser(1), _Exploding()],
    ids=["object", "none", "message_empty", "not_a_message", "exploding"],
)
def test_never_raises_on_odd_input(message: Any) -> None:
    """Odd objects still map to an event that encodes."""
    mapped(message)


def test_unmappable_message_keeps_id_and_reports_error() -> None:
    """When mapping fails, the event keeps the id and date and names the error in extra."""
    event = mapped(_Exploding())
    assert (event.message_id, event.date) == (9, T0)
    assert event.extra == {"mapping_error": "RuntimeError: boom"}


def test_message_empty_is_marked() -> None:
    """A MessageEmpty maps to an event naming its class in extra."""
    event = mapped(tl.MessageEmpty(id=3, peer_id=tl.PeerChannel(CHANNEL_ID)))
    assert (event.message_id, event.extra) == (3, {"message_class": "MessageEmpty"})


def test_out_of_range_numbers_are_dropped_not_wrapped() -> None:
    """Numbers too big for their Avro field become None (or are clamped where the field is required)."""
    message = msg(
        views=2**40,
        grouped_id=2**70,
        via_bot_id=-(2**64),
        entities=[tl.MessageEntityBold(offset=2**40, length=-(2**40)), tl.MessageEntityBold(offset="x", length=1)],
        reactions=tl.MessageReactions(results=[tl.ReactionCount(reaction=tl.ReactionEmoji("👍"), count=2**40)]),
        from_id=tl.PeerChannel(2**63),
    )
    event = mapped(message)
    assert (event.views, event.grouped_id, event.via_bot_id, event.sender) == (None, None, None, None)
    assert event.entities == (Entity(type="bold", offset=2**31 - 1, length=-(2**31)),)
    assert event.reactions == (Reaction("👍", 2**31 - 1),)


def test_lone_surrogates_are_replaced() -> None:
    """Hand-built text with lone surrogates (never on the wire) still encodes."""
    event = mapped(msg(message="a\ud800b", post_author="\udfff"))
    assert (event.text, event.post_author) == ("a?b", "?")


def test_unknown_classes_get_generic_names() -> None:
    """Unknown entity, action and reply classes map by class name instead of failing."""

    class MessageEntityFutureThing:
        offset = 0
        length = 1

    class MessageActionFutureThing:
        def __init__(self, level: int = 3) -> None:
            self.level = level

    class FutureReplyHeader:
        pass

    event = mapped(msg(entities=[MessageEntityFutureThing()], reply_to=FutureReplyHeader()))
    assert event.entities == (Entity(type="future_thing", offset=0, length=1),)
    assert (event.reply, event.extra) == (Reply(), {"reply_class": "FutureReplyHeader"})
    action = mapped(service(MessageActionFutureThing())).action
    assert action == Action(type="future_thing", actor_id=ACTOR, text="level=3")


def test_extra_values_are_bounded() -> None:
    """Values in extra are cut to EXTRA_VALUE_MAX characters."""
    event = mapped(msg(media=tl.MessageMediaGame(game=tl.Game(1, 0, "g" * 1000, "t", "d", tl.PhotoEmpty(1)))))
    assert len(event.extra["game_short_name"]) == EXTRA_VALUE_MAX


# --- property: any well-formed TL message maps and encodes -----------------------------------------------

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
BARE_ID = st.one_of(st.integers(1, 2**40), INT64)
# hypothesis wants naive bounds and attaches the timezone itself
_DATE_MIN = datetime(1970, 1, 1)  # noqa: DTZ001 - see above
_DATE_MAX = datetime(2038, 1, 1)  # noqa: DTZ001 - see above
DATES = st.datetimes(min_value=_DATE_MIN, max_value=_DATE_MAX, timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=0)  # TL dates are whole seconds
)
OPT_DATES = st.none() | DATES
SHORT_TEXT = st.text(max_size=20)
OPT_TEXT = st.none() | SHORT_TEXT
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
FLAG = st.none() | st.booleans()

PEERS = st.one_of(st.builds(tl.PeerUser, BARE_ID), st.builds(tl.PeerChat, BARE_ID), st.builds(tl.PeerChannel, BARE_ID))
TEXTS = st.one_of(
    st.text(max_size=200),
    st.text(st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF), max_size=50),  # surrogate pairs in UTF-16
    st.builds(operator.mul, st.sampled_from(["a", "é", "😀", "a😀"]), st.just(100_000)),
)


def _entity_strategy() -> st.SearchStrategy[Any]:
    plain = [tl.MessageEntityBold, tl.MessageEntityItalic, tl.MessageEntityCode, tl.MessageEntityUnknown]
    plain += [tl.MessageEntityMention, tl.MessageEntityHashtag, tl.MessageEntityUrl, tl.MessageEntitySpoiler]
    return st.one_of(
        *(st.builds(cls, offset=INT32, length=INT32) for cls in plain),
        st.builds(tl.MessageEntityTextUrl, offset=INT32, length=INT32, url=SHORT_TEXT),
        st.builds(tl.MessageEntityMentionName, offset=INT32, length=INT32, user_id=INT64),
        st.builds(
            tl.InputMessageEntityMentionName,
            offset=INT32,
            length=INT32,
            user_id=st.builds(tl.InputUser, user_id=INT64, access_hash=INT64),
        ),
        st.builds(tl.MessageEntityPre, offset=INT32, length=INT32, language=SHORT_TEXT),
        st.builds(tl.MessageEntityCustomEmoji, offset=INT32, length=INT32, document_id=INT64),
        st.builds(tl.MessageEntityBlockquote, offset=INT32, length=INT32, collapsed=FLAG),
    )


def _photo_strategy() -> st.SearchStrategy[Any]:
    sizes = st.lists(
        st.one_of(
            st.builds(tl.PhotoSize, type=st.just("m"), w=INT32, h=INT32, size=INT32),
            st.builds(tl.PhotoSizeProgressive, type=st.just("y"), w=INT32, h=INT32, sizes=st.lists(INT32, max_size=3)),
            st.builds(tl.PhotoCachedSize, type=st.just("s"), w=INT32, h=INT32, bytes=st.binary(max_size=8)),
            st.builds(tl.PhotoStrippedSize, type=st.just("i"), bytes=st.binary(max_size=8)),
            st.builds(tl.PhotoSizeEmpty, type=st.just("x")),
        ),
        max_size=4,
    )
    photo = st.builds(
        tl.Photo,
        id=INT64,
        access_hash=INT64,
        file_reference=st.binary(max_size=4),
        date=DATES,
        sizes=sizes,
        dc_id=INT32,
    )
    return st.builds(
        tl.MessageMediaPhoto,
        photo=st.none() | photo | st.builds(tl.PhotoEmpty, id=INT64),
        ttl_seconds=st.none() | INT32,
        spoiler=FLAG,
    )


def _document_strategy() -> st.SearchStrategy[Any]:
    attributes = st.lists(
        st.one_of(
            st.builds(tl.DocumentAttributeFilename, file_name=SHORT_TEXT),
            st.builds(tl.DocumentAttributeVideo, duration=FLOATS, w=INT32, h=INT32, round_message=FLAG),
            st.builds(tl.DocumentAttributeAudio, duration=INT32, voice=FLAG, title=OPT_TEXT, performer=OPT_TEXT),
            st.builds(tl.DocumentAttributeSticker, alt=SHORT_TEXT, stickerset=st.just(tl.InputStickerSetEmpty())),
            st.builds(tl.DocumentAttributeAnimated),
            st.builds(tl.DocumentAttributeImageSize, w=INT32, h=INT32),
            st.builds(tl.DocumentAttributeHasStickers),
        ),
        max_size=4,
    )
    doc = st.builds(
        tl.Document,
        id=INT64,
        access_hash=INT64,
        file_reference=st.binary(max_size=4),
        date=DATES,
        mime_type=SHORT_TEXT,
        size=INT64,
        dc_id=INT32,
        attributes=attributes,
    )
    return st.builds(
        tl.MessageMediaDocument,
        document=st.none() | doc | st.builds(tl.DocumentEmpty, id=INT64),
        video=FLAG,
        round=FLAG,
        voice=FLAG,
        ttl_seconds=st.none() | INT32,
    )


def _media_strategy() -> st.SearchStrategy[Any]:
    geo = st.builds(tl.GeoPoint, long=FLOATS, lat=FLOATS, access_hash=INT64) | st.just(tl.GeoPointEmpty())
    text_with_entities = st.builds(tl.TextWithEntities, text=SHORT_TEXT, entities=st.just([]))
    poll = st.builds(
        tl.Poll,
        id=INT64,
        question=text_with_entities,
        answers=st.lists(st.builds(tl.PollAnswer, text=text_with_entities, option=st.binary(max_size=2)), max_size=4),
        hash=INT64,
        closed=FLAG,
    )
    webpage = st.one_of(
        st.builds(
            tl.WebPage,
            id=INT64,
            url=SHORT_TEXT,
            display_url=SHORT_TEXT,
            hash=INT32,
            title=OPT_TEXT,
            description=OPT_TEXT,
        ),
        st.builds(tl.WebPageEmpty, id=INT64, url=OPT_TEXT),
        st.builds(tl.WebPagePending, id=INT64, date=DATES, url=OPT_TEXT),
        st.builds(tl.WebPageNotModified, cached_page_views=st.none() | INT32),
    )
    return st.one_of(
        st.none(),
        st.just(tl.MessageMediaEmpty()),
        st.just(tl.MessageMediaUnsupported()),
        _photo_strategy(),
        _document_strategy(),
        st.builds(tl.MessageMediaWebPage, webpage=webpage),
        st.builds(tl.MessageMediaPoll, poll=poll, results=st.builds(tl.PollResults, total_voters=st.none() | INT32)),
        st.builds(tl.MessageMediaGeo, geo=geo),
        st.builds(tl.MessageMediaGeoLive, geo=geo, period=INT32, heading=st.none() | INT32),
        st.builds(
            tl.MessageMediaVenue,
            geo=geo,
            title=SHORT_TEXT,
            address=SHORT_TEXT,
            provider=SHORT_TEXT,
            venue_id=SHORT_TEXT,
            venue_type=SHORT_TEXT,
        ),
        st.builds(
            tl.MessageMediaContact,
            phone_number=SHORT_TEXT,
            first_name=SHORT_TEXT,
            last_name=SHORT_TEXT,
            vcard=SHORT_TEXT,
            user_id=INT64,
        ),
        st.builds(tl.MessageMediaDice, value=INT32, emoticon=SHORT_TEXT),
        st.builds(tl.MessageMediaStory, peer=PEERS, id=INT32),
        st.builds(
            tl.MessageMediaInvoice,
            title=SHORT_TEXT,
            description=SHORT_TEXT,
            currency=SHORT_TEXT,
            total_amount=INT64,
            start_param=SHORT_TEXT,
        ),
        st.builds(
            tl.MessageMediaGiveaway,
            channels=st.lists(INT64, max_size=2),
            quantity=INT32,
            until_date=DATES,
            prize_description=OPT_TEXT,
        ),
    )


REACTIONS = st.none() | st.builds(
    tl.MessageReactions,
    results=st.lists(
        st.builds(
            tl.ReactionCount,
            reaction=st.one_of(
                st.builds(tl.ReactionEmoji, emoticon=SHORT_TEXT),
                st.builds(tl.ReactionCustomEmoji, document_id=INT64),
                st.just(tl.ReactionPaid()),
                st.just(tl.ReactionEmpty()),
            ),
            count=INT32,
        ),
        max_size=4,
    ),
)
REPLY_HEADERS = st.one_of(
    st.none(),
    st.builds(
        tl.MessageReplyHeader,
        reply_to_msg_id=st.none() | INT32,
        reply_to_top_id=st.none() | INT32,
        forum_topic=FLAG,
        reply_to_peer_id=st.none() | PEERS,
        quote_text=OPT_TEXT,
    ),
    st.builds(tl.MessageReplyStoryHeader, peer=PEERS, story_id=INT32),
)


def _paired(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Fields TL serialises under one flag: all set or all left out."""
    return st.just({}) | st.fixed_dictionaries(fields)


def _with(build: Any, pairs: st.SearchStrategy[dict[str, Any]], **fields: st.SearchStrategy[Any]) -> Any:
    """`st.builds(build, **fields)` plus the keyword arguments drawn by `pairs`."""
    return st.builds(lambda extra, **kw: build(**kw, **extra), pairs, **fields)


FORWARD_HEADERS = st.none() | _with(
    tl.MessageFwdHeader,
    _paired(saved_from_peer=PEERS, saved_from_msg_id=INT32),
    date=DATES,
    from_id=st.none() | PEERS,
    from_name=OPT_TEXT,
    channel_post=st.none() | INT32,
    post_author=OPT_TEXT,
)
MESSAGES = _with(
    tl.Message,
    _paired(views=INT32, forwards=INT32),
    id=INT32,
    peer_id=PEERS,
    date=DATES,
    message=TEXTS,
    out=FLAG,
    post=FLAG,
    pinned=FLAG,
    from_id=st.none() | PEERS,
    fwd_from=FORWARD_HEADERS,
    via_bot_id=st.none() | INT64,
    reply_to=REPLY_HEADERS,
    media=_media_strategy(),
    entities=st.none() | st.lists(_entity_strategy(), max_size=6),
    replies=st.none() | st.builds(tl.MessageReplies, replies=INT32, replies_pts=INT32),
    edit_date=OPT_DATES,
    post_author=OPT_TEXT,
    grouped_id=st.none() | INT64,
    reactions=REACTIONS,
)


@given(message=MESSAGES)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
def test_any_well_formed_message_maps_and_encodes(message: Any) -> None:
    """Any well-formed TL Message maps without error, encodes and decodes, and maps the same after the wire."""
    event = mapped(message)
    assert "mapping_error" not in event.extra
    assert event.message_id == message.id
    assert event.text == message.message
    assert len(event.entities) == len(message.entities or ())
    assert mapped(wire(message)) == event


def test_the_senders_of_a_page_come_from_that_pages_entities() -> None:
    """Senders are shared within one answer's entities; the next answer's entities name them afresh."""
    first = {ACTOR: tl.User(id=ACTOR, first_name="Ann"), 7: tl.User(id=7, first_name="Bo", bot=True)}
    page = [mapped(msg(id=i, from_id=tl.PeerUser(ACTOR if i % 2 else 7)), entities=first) for i in range(1, 5)]
    assert [e.sender.name if e.sender else None for e in page] == ["Ann", "Bo", "Ann", "Bo"]
    assert page[0].sender is page[2].sender
    renamed = {ACTOR: tl.User(id=ACTOR, first_name="Anna", username="anna")}
    later = mapped(msg(id=5), entities=renamed)
    assert later.sender == Sender(id=ACTOR, kind=PeerKind.USER, name="Anna", username="anna", is_bot=False)
    unnamed = mapped(msg(id=6, from_id=tl.PeerUser(9)), entities=renamed)  # not among the answer's users
    assert unnamed.sender == Sender(id=9, kind=PeerKind.USER)
