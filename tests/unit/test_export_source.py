"""The Telegram Desktop export source: the pure mapping, then paging, cursors, filters and bad input."""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from emitter.codec import Encoder, decode
from emitter.cursor import NEVER_WALKED, GroupCursor
from emitter.errors import ConfigError, SourceError
from emitter.export_source import (
    ExportSource,
    _load_export,
    _read_fast,
    _stored_message,
    export_group,
    map_export_message,
    map_text,
    parse_peer,
    utf16_len,
)
from emitter.protocols import MessageSource, Page
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
from emitter.tracker import Tracker
from tests.exports import BIG_FILE_SIZE, make_export

DATA = Path(__file__).resolve().parents[1] / "data" / "exports"
SINGLE = DATA / "single_chat" / "result.json"
FULL = DATA / "full_account" / "result.json"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RUST = Group(id=-1001500000001, title="Rust Berlin", type=GroupType.SUPERGROUP)
CHANNEL = Group(id=-1001400000002, title="Ferris News", type=GroupType.CHANNEL)
BIG_FILE_IN_FIXTURE = 3_221_225_472
NOT_INCLUDED = "(File not included. Change data exporting settings to download.)"


def _raw_by_id(path: Path) -> dict[int, dict[str, Any]]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    chats = [doc] if "messages" in doc else doc["chats"]["list"] + doc["left_chats"]["list"]
    return {m["id"]: m for chat in chats for m in chat["messages"] if "id" in m}


SINGLE_RAW = _raw_by_id(SINGLE)
FULL_RAW = _raw_by_id(FULL)


def _single(msg_id: int) -> MessageEvent:
    event = map_export_message(SINGLE_RAW[msg_id], RUST, T0)
    assert event is not None
    return event


def _full(msg_id: int, group: Group = CHANNEL) -> MessageEvent:
    event = map_export_message(FULL_RAW[msg_id], group, T0)
    assert event is not None
    return event


async def _collect(source: ExportSource, group: Group, cursor: GroupCursor | None = None) -> list[Page]:
    start = cursor or GroupCursor(group.id)
    return [page async for page in source.pages(group, lambda _gid: start)]


def _ids(pages: list[Page]) -> list[int]:
    return [e.message_id for page in pages for e in page.events]


# --- the pure mapping: text and entities ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parts", "expected_text", "expected"),
    [
        pytest.param("plain", [{"type": "plain", "text": "plain"}], "plain", (), id="string"),
        pytest.param(["😀", {"type": "bold", "text": "b"}], [], "😀b", (Entity("bold", 2, 1),), id="astral-before"),
        pytest.param(
            ["👨‍👩‍👧 ", {"type": "italic", "text": "family"}], [], "👨‍👩‍👧 family", (Entity("italic", 9, 6),), id="zwj"
        ),
        pytest.param(
            ["a", {"type": "code", "text": "x"}],
            [{"type": "plain", "text": "something else"}],
            "ax",
            (Entity("code", 1, 1),),
            id="entities-not-spelling-text-fall-back-to-text-parts",
        ),
        pytest.param([{"type": "future_kind", "text": "x"}], [], "x", (Entity("future_kind", 0, 1),), id="unknown"),
        pytest.param([{"type": "bold", "text": ""}, "a"], [], "a", (), id="empty-entity-dropped"),
        pytest.param([{"type": "bold"}, 7, None, "a"], "junk", "a", (), id="junk-parts-ignored"),
        pytest.param(None, None, "", (), id="no-text"),
    ],
)
def test_map_text_counts_offsets_in_utf16(text: object, parts: object, expected_text: str, expected: object) -> None:
    """Text parts concatenate into the text; entity offsets and lengths count UTF-16 code units."""
    assert map_text(text, parts) == (expected_text, expected)


@pytest.mark.parametrize(
    ("msg_id", "text", "entities"),
    [
        pytest.param(
            2,
            "🦀 Meetup at Café Rust — details here",
            (Entity("bold", 13, 9), Entity("text_url", 33, 4, url="https://example.org/meetup")),
            id="bold-text_link",
        ),
        pytest.param(
            3,
            "👍🏽 Alice @carol #rust /start https://rust-lang.org bob@example.org +49 30 1234567 $EUR 4242424242424242",
            (
                Entity("mention_name", 5, 5, user_id=1001),
                Entity("mention", 11, 6),
                Entity("hashtag", 18, 5),
                Entity("bot_command", 24, 6),
                Entity("url", 31, 21),
                Entity("email", 53, 15),
                Entity("phone", 69, 14),
                Entity("cashtag", 84, 4),
                Entity("bank_card", 89, 16),
            ),
            id="links-and-mentions",
        ),
        pytest.param(
            4,
            "😀 so many bugs fixed cargo\nfn main() {}\nquoted 🦀",
            (
                Entity("italic", 0, 5),
                Entity("underline", 6, 4),
                Entity("strike", 11, 4),
                Entity("spoiler", 16, 5),
                Entity("code", 22, 5),
                Entity("pre", 28, 12, language="rust"),
                Entity("blockquote", 41, 6),
                Entity("custom_emoji", 48, 2, custom_emoji_id=5368324170671202286),
            ),
            id="formatting",
        ),
    ],
)
def test_fixture_text_entities(msg_id: int, text: str, entities: tuple[Entity, ...]) -> None:
    """Every export entity kind maps to the schema's name, with UTF-16 offsets after emoji."""
    event = _single(msg_id)
    assert (event.text, event.entities) == (text, entities)
    for e in event.entities:  # the offsets index the published text when it is read as UTF-16
        units = event.text.encode("utf-16-le")[2 * e.offset : 2 * (e.offset + e.length)]
        assert utf16_len(units.decode("utf-16-le")) == e.length


# --- the pure mapping: media, actions, headers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("msg_id", "media"),
    [
        (6, Media("photo", size=183422, width=1280, height=960)),
        (
            8,
            Media(
                "video",
                mime_type="video/mp4",
                size=BIG_FILE_IN_FIXTURE,
                file_name="talk.mp4",
                width=1920,
                height=1080,
                duration=3605.0,
            ),
        ),
        (9, Media("sticker", mime_type="image/webp", size=24030, width=512, height=512, emoji="🦀")),
        (10, Media("voice", mime_type="audio/ogg", size=15220, duration=7.0)),
        (
            11,
            Media(
                "audio",
                mime_type="audio/mpeg",
                size=5321001,
                file_name="crab_rave.mp3",
                duration=171.0,
                title="Crab Rave",
                performer="Noisestorm",
            ),
        ),
        (12, Media("animation", mime_type="video/mp4", size=402113, width=320, height=240, duration=3.0)),
        (13, Media("video_note", mime_type="video/mp4", size=801220, duration=12.0)),
        (
            14,
            Media(
                "poll",
                poll_question="Next meetup topic?",
                poll_answers=("async", "embedded"),
                poll_closed=False,
                poll_total_voters=5,
            ),
        ),
        (15, Media("geo", latitude=52.520008, longitude=13.404954)),
        (
            16,
            Media(
                "venue", latitude=52.512969, longitude=13.420102, title="c-base", description="Rungestraße 20, Berlin"
            ),
        ),
        (17, Media("contact", first_name="Dave", last_name="Example", phone_number="+49 30 7654321")),
        (18, Media("document", mime_type="application/pdf", size=1048576, file_name="slides.pdf")),
        (2, None),
    ],
    ids=lambda v: v.type if isinstance(v, Media) else None,
)
def test_media_kinds(msg_id: int, media: Media | None) -> None:
    """Each export media shape maps to the schema's media type with its metadata."""
    assert _single(msg_id).media == media


@pytest.mark.parametrize(
    ("raw_id", "action", "extra"),
    [
        (-999999880, Action("create_group", 1001, title="Rust Berlin", text="Alice Example\nBob Example"), {}),
        (-999999870, Action("invite_members", 1001, text="Carol Example"), {}),
        (-999999869, Action("migrate_to_supergroup", 1001), {}),
        (1, Action("migrate_from_group", -1001500000001, title="Rust Berlin"), {}),
        (19, Action("pin_message", 1001, message_id=14), {}),
        (20, Action("topic_created", 1001, title="Job offers"), {"icon_emoji_id": "5377498341074542641"}),
        (21, Action("join_group_by_link", 1005), {"inviter": "Group"}),
        (22, Action("remove_members", 1001, text="Erin Example"), {}),
    ],
    ids=lambda v: v.type if isinstance(v, Action) else None,
)
def test_service_actions(raw_id: int, action: Action, extra: dict[str, str]) -> None:
    """Service messages keep the export's action name, a marked actor id and the actor as sender."""
    event = _single(raw_id)
    assert event.action == action
    assert event.extra == extra
    assert event.media is None
    assert event.sender is not None
    assert event.sender.id == action.actor_id


def test_service_action_details_go_to_extra() -> None:
    """Action fields without a place in the record (call duration, discard reason) land in extra."""
    bob = Group(id=1002, title="Bob Example", type=GroupType.PRIVATE)
    event = _full(102, bob)
    assert event.action == Action("phone_call", 1001)
    assert event.extra == {"duration_seconds": "65", "discard_reason": "hangup"}
    assert _full(109).action == Action("edit_group_title", 1002, title="Family 🏡")


@pytest.mark.parametrize(
    ("event", "field", "expected"),
    [
        (_single(6), "forward", Forward(from_name="Ferris News")),
        (_full(106), "forward", Forward(from_name="Ferris News")),
        (_full(106), "extra", {"saved_from": "Ferris News"}),
        (_single(5), "reply", Reply(to_message_id=2)),
        (_single(18), "reply", Reply(to_message_id=41, to_peer_id=-1001400000002)),
        (_single(2), "reply", None),
        (_single(2), "forward", None),
        (_single(2), "sender", Sender(1001, PeerKind.USER, "Alice Example")),
        (_single(18), "sender", Sender(-1001500000001, PeerKind.CHANNEL, "Rust Berlin")),
        (_single(25), "sender", Sender(1006, PeerKind.USER, None)),
        (_single(18), "post_author", "Admin Alice"),
        (_single(18), "extra", {"file": "files/slides.pdf", "future_field": '{"nested":[1,2]}'}),
        (_single(12), "extra", {"via_bot": "@gif", "media_spoiler": "true", "file": NOT_INCLUDED,
                                "thumbnail": NOT_INCLUDED}),
        (_single(13), "extra", {"self_destruct_period_seconds": "30",
                                "file": "round_video_messages/file_1@02-03-2021_03-00-00.mp4"}),
        (_single(5), "reactions", (Reaction("❤", 3), Reaction("custom:5368324170671202286", 1))),
        (_single(2), "is_post", False),
        (_full(41), "is_post", True),
        (_full(41), "post_author", "Ferris"),
        (_full(41), "sender", Sender(-1001400000002, PeerKind.CHANNEL, "Ferris News")),
        (_full(44), "media", Media("video", mime_type="video/x-matroska", size=2**31 + 1, file_name="rustconf.mkv",
                                   duration=7200.0)),
    ],
)  # fmt: skip
def test_headers_and_extras(event: MessageEvent, field: str, expected: object) -> None:
    """Forwards, replies, senders, signatures, reactions and leftover fields map as documented."""
    assert getattr(event, field) == expected


def test_photo_path_and_thumbnail_stay_in_extra() -> None:
    """Where the bytes sit in the export folder is kept in extra, not dropped."""
    assert _single(6).extra == {"photo": "photos/photo_1@01-03-2021_21-00-00.jpg"}
    assert _single(8).extra == {"file": "video_files/talk.mp4", "thumbnail": "video_files/talk.mp4_thumb.jpg"}


@pytest.mark.parametrize("msg_id", sorted(m for m in SINGLE_RAW if "date_unixtime" in SINGLE_RAW[m]))
def test_date_comes_from_date_unixtime_not_local_date(msg_id: int) -> None:
    """`date` is the UTC instant of date_unixtime; the export's local `date` (UTC+1 here) is ignored."""
    raw = SINGLE_RAW[msg_id]
    event = _single(msg_id)
    assert event.date == datetime.fromtimestamp(int(raw["date_unixtime"]), UTC)
    assert event.date != datetime.fromisoformat(raw["date"]).replace(tzinfo=UTC)
    assert event.date.utcoffset() is not None


def test_edit_is_new_with_edit_date() -> None:
    """An edited message is a NEW EXPORT event whose edit_date comes from edited_unixtime."""
    event = _single(5)
    assert (event.event_type, event.source) == (EventType.NEW, Source.EXPORT)
    assert event.edit_date == datetime(2021, 3, 1, 19, 0, tzinfo=UTC)
    assert _single(2).edit_date is None


def test_file_sizes_above_two_gib_survive_encoding() -> None:
    """Sizes beyond 2**31 stay exact Python ints through Avro encode and decode."""
    event = _single(8)
    assert event.media is not None
    assert event.media.size == BIG_FILE_IN_FIXTURE > 2**31
    assert decode(Encoder().encode(event))["media"]["size"] == BIG_FILE_IN_FIXTURE


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"date_unixtime": "1614610800", "text": "no id"}, id="no-id"),
        pytest.param({"id": 5, "date": "2021-03-01T16:00:00", "text": "no unixtime"}, id="no-date_unixtime"),
        pytest.param({"id": "five", "date_unixtime": "1614610800"}, id="id-not-a-number"),
        pytest.param({"id": True, "date_unixtime": "1614610800"}, id="id-bool"),
        pytest.param({"id": 2**70, "date_unixtime": "1614610800"}, id="id-beyond-long"),
        pytest.param({"id": 5, "date_unixtime": "yesterday"}, id="date-not-a-number"),
        pytest.param({"id": 5, "date_unixtime": "-5"}, id="date-negative"),
    ],
)
def test_message_without_id_or_unixtime_is_skipped(raw: dict[str, Any]) -> None:
    """A message without a usable id or date_unixtime maps to None."""
    assert map_export_message(raw, RUST, T0) is None


@pytest.mark.parametrize(
    "odd",
    [
        {"text": 123, "text_entities": "x"},
        {"text": [{"type": "bold", "text": 5}, {"no": "type"}], "text_entities": [None, 3]},
        {"from_id": 5.5, "from": ["x"]},
        {"from_id": "robot42", "reply_to_message_id": "soon"},
        {"poll": "oops"},
        {"poll": {"answers": [None, {"text": 3}], "total_voters": 2**40}},
        {"location_information": [], "place_name": 3},
        {"file": None, "file_size": "huge", "width": 2**40, "duration_seconds": "nan", "media_type": "hologram"},
        {"type": "service", "action": None, "members": None, "actor_id": "bot99", "message_id": {}},
        {"reactions": {"type": "emoji"}, "edited_unixtime": "not yet"},
        {"reactions": [{"type": "emoji", "emoji": "👍", "count": "many"}, {"type": "paid", "count": 2}]},
        {"text_entities": [{"type": "mention_name", "text": "x", "user_id": "abc"}], "text": "x"},
        {"future": {"a": [1, None]}, "flag": False, "nothing": None},
    ],
    ids=str,
)
def test_odd_fields_never_crash(odd: dict[str, Any]) -> None:
    """Unexpected shapes are ignored or kept in extra; the event still maps and encodes."""
    event = map_export_message({"id": 7, "date_unixtime": "1614610800", **odd}, RUST, T0)
    assert event is not None
    assert decode(Encoder().encode(event))["message_id"] == 7


def test_unknown_media_type_is_a_document_and_keeps_its_name() -> None:
    """A file of an unknown media_type is published as a document with the kind in extra."""
    raw = {"id": 7, "date_unixtime": "1", "file": "x", "media_type": "hologram", "mime_type": "model/x"}
    event = map_export_message(raw, RUST, T0)
    assert event is not None
    assert event.media == Media("document", mime_type="model/x")
    assert event.extra == {"file": "x", "media_type": "hologram"}


@pytest.mark.parametrize(
    ("chat_type", "bare", "group_type", "marked"),
    [
        ("personal_chat", 1002, GroupType.PRIVATE, 1002),
        ("bot_chat", 7000001, GroupType.PRIVATE, 7000001),
        ("saved_messages", 1001, GroupType.PRIVATE, 1001),
        ("private_group", 4000001, GroupType.GROUP, -4000001),
        ("private_supergroup", 1500000001, GroupType.SUPERGROUP, -1001500000001),
        ("public_supergroup", 1500000001, GroupType.SUPERGROUP, -1001500000001),
        ("private_channel", 1300000004, GroupType.CHANNEL, -1001300000004),
        ("public_channel", 1400000002, GroupType.CHANNEL, -1001400000002),
        ("something_new", 42, GroupType.UNKNOWN, 42),
    ],
)
def test_chat_types_map_to_group_type_and_marked_id(
    chat_type: str, bare: int, group_type: GroupType, marked: int
) -> None:
    """Export chat types map to GroupType and Telegram's marked id (-100 prefix, negated basic groups)."""
    assert export_group({"type": chat_type, "id": bare, "name": "n"}) == Group(marked, "n", type=group_type)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("user123", (123, PeerKind.USER)),
        ("channel123", (-1000000000123, PeerKind.CHANNEL)),
        ("chat123", (-123, PeerKind.CHAT)),
        (123, (123, PeerKind.USER)),
        ("user", None),
        ("userx", None),
        ("bot5", None),
        (None, None),
        (-5, None),
    ],
)
def test_parse_peer(value: object, expected: tuple[int, PeerKind] | None) -> None:
    """Export peer references become marked ids with their kind; anything else is None."""
    assert parse_peer(value) == expected


# --- the source: paging and cursors ---------------------------------------------------------------------


async def test_is_a_message_source() -> None:
    """ExportSource satisfies the MessageSource protocol."""
    assert isinstance(ExportSource(SINGLE), MessageSource)


async def test_pages_ascend_in_page_size_chunks_with_walked_to() -> None:
    """Pages hold at most page_size events in ascending id order, each walked_to its last id."""
    async with ExportSource(SINGLE, page_size=5, clock=lambda: T0) as source:
        (group,) = await source.groups()
        pages = await _collect(source, group)
    ids = _ids(pages)
    assert ids == sorted(SINGLE_RAW.keys() - {23})
    assert ids[:5] == [-999999880, -999999875, -999999870, -999999869, 1]
    assert [len(p.events) for p in pages] == [5, 5, 5, 5, 5, 1]
    assert [p.walked_to for p in pages] == [p.events[-1].message_id for p in pages]
    assert all(e.group == group == RUST and e.ingest_time == T0 for p in pages for e in p.events)


async def test_unsorted_file_is_walked_in_id_order(tmp_path: Path) -> None:
    """Messages are served by ascending id even when the file lists them out of order."""
    path = make_export(tmp_path, chats=[("public_supergroup", 77, 300)], deleted_every=5, with_migrated=True)
    doc = json.loads(path.read_text(encoding="utf-8"))
    expected = [m["id"] for m in doc["messages"]]
    random.Random(1).shuffle(doc["messages"])
    path.write_text(json.dumps(doc), encoding="utf-8")
    async with ExportSource(path, page_size=64) as source:
        (group,) = await source.groups()
        assert _ids(await _collect(source, group)) == expected == sorted(expected)


@pytest.mark.parametrize(
    ("cursor", "above", "first", "excluded"),
    [
        pytest.param(10, (), 11, set(), id="cursor"),
        pytest.param(10, ((14, 15), (19, 19)), 11, {14, 15, 19}, id="cursor-and-above"),
        pytest.param(-999999875, (), -999999870, set(), id="inside-migrated-history"),
        pytest.param(NEVER_WALKED, ((1, 3),), -999999880, {1, 2, 3}, id="no-cursor-yet-with-live-ids"),
    ],
)
async def test_resume_skips_published_ids(cursor: int, above: tuple[tuple[int, int], ...], first: int,
                                          excluded: set[int]) -> None:  # fmt: skip
    """Ids <= cursor and ids in the cursor's above ranges are not served again."""
    async with ExportSource(SINGLE, page_size=4) as source:
        pages = await _collect(source, RUST, GroupCursor(RUST.id, cursor, above))
    ids = _ids(pages)
    all_ids = sorted(SINGLE_RAW.keys() - {23})
    assert ids[0] == first
    assert ids == [i for i in all_ids if i >= first and i not in excluded]
    assert pages[-1].walked_to == 25


async def test_published_tail_still_moves_the_cursor() -> None:
    """When every remaining id is already published, one empty page reports walked_to the last id."""
    async with ExportSource(SINGLE) as source:
        pages = await _collect(source, RUST, GroupCursor(RUST.id, 20, ((21, 25),)))
    assert [(list(p.events), p.walked_to) for p in pages] == [([], 25)]


async def test_cursor_at_the_end_yields_nothing() -> None:
    """A cursor at or past the last id ends the iterator without a page."""
    async with ExportSource(SINGLE) as source:
        assert await _collect(source, RUST, GroupCursor(RUST.id, 25)) == []


async def test_never_walked_cursor_includes_migrated_history() -> None:
    """A never-walked group yields its negative (migrated) ids first; a set cursor skips up to it."""
    async with ExportSource(SINGLE) as source:
        fresh = await _collect(source, RUST)
        assert fresh[0].events[0].message_id == -999999880
        resumed = await _collect(source, RUST, GroupCursor(RUST.id, 5))
        assert all(e.message_id > 5 for p in resumed for e in p.events)


async def test_skipped_messages_are_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """Messages without id or date_unixtime are counted per group, with one warning line per group."""
    with caplog.at_level(logging.WARNING, logger="emitter.export"):
        async with ExportSource(SINGLE) as source:
            assert source.skipped == {RUST.id: 2}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "skipped 2 messages" in lines[0]
    assert str(RUST.id) in lines[0]


async def test_duplicate_ids_keep_the_first_and_count_the_rest(tmp_path: Path) -> None:
    """A repeated id is served once (the first in the file) and counted as skipped."""
    msgs = [{"id": 2, "date_unixtime": "2", "text": "first"}, {"id": 1, "date_unixtime": "1"},
            {"id": 2, "date_unixtime": "3", "text": "second"}]  # fmt: skip
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"name": "x", "type": "public_channel", "id": 9, "messages": msgs}), encoding="utf-8")
    async with ExportSource(path) as source:
        (group,) = await source.groups()
        events = [e for p in await _collect(source, group) for e in p.events]
        assert [(e.message_id, e.text) for e in events] == [(1, ""), (2, "first")]
        assert source.skipped == {group.id: 1}


async def test_generated_export_of_ten_thousand_messages(tmp_path: Path) -> None:
    """A 10,000-message export with gaps and migrated history is served completely in 500-event pages."""
    path = make_export(tmp_path, chats=[("private_supergroup", 88, 10_000)], deleted_every=7, with_migrated=True)
    async with ExportSource(path) as source:
        (group,) = await source.groups()
        pages = await _collect(source, group)
    ids = _ids(pages)
    assert len(ids) == 10_000
    assert ids == sorted(ids)
    assert ids[0] < 0 < ids[-1]
    assert all(i % 7 for i in ids)
    assert [len(p.events) for p in pages] == [500] * 20
    sizes = {e.media.size for p in pages for e in p.events if e.media is not None}
    assert BIG_FILE_SIZE in sizes


# --- the source: groups, filters, lifecycle, bad input -----------------------------------------------------


async def test_full_account_export_lists_every_chat() -> None:
    """chats.list and left_chats.list become groups, in the export's order, with marked ids."""
    async with ExportSource(FULL) as source:
        groups = await source.groups()
    assert [(g.id, g.type, g.title) for g in groups] == [
        (1002, GroupType.PRIVATE, "Bob Example"),
        (7000001, GroupType.PRIVATE, "Weather Bot"),
        (1001, GroupType.PRIVATE, None),
        (-4000001, GroupType.GROUP, "Family"),
        (-1001400000002, GroupType.CHANNEL, "Ferris News"),
        (-1001300000003, GroupType.SUPERGROUP, "Left Club"),
        (-1001300000004, GroupType.CHANNEL, "Secret Channel"),
    ]


async def test_full_account_export_pages_per_group() -> None:
    """Each group of a full-account export serves only its own messages."""
    async with ExportSource(FULL) as source:
        by_group = {g.id: _ids(await _collect(source, g)) for g in await source.groups()}
    assert by_group == {
        1002: [101, 102, 103],
        7000001: [104, 105],
        1001: [106, 107],
        -4000001: [108, 109, 110, 111],
        -1001400000002: [41, 42, 44],
        -1001300000003: [7, 8],
        -1001300000004: [3],
    }


async def test_only_filter_selects_groups(caplog: pytest.LogCaptureFixture) -> None:
    """`only` keeps the listed marked ids, warns about ids not in the export, and refuses other groups."""
    with caplog.at_level(logging.WARNING, logger="emitter.export"):
        async with ExportSource(FULL, only=[1002, CHANNEL.id, 555]) as source:
            assert [g.id for g in await source.groups()] == [1002, CHANNEL.id]
            with pytest.raises(SourceError, match="-4000001"):
                await _collect(source, Group(-4000001))
    assert any("[555]" in r.getMessage() for r in caplog.records)


async def test_folder_path_reads_result_json() -> None:
    """A folder holding result.json is accepted as the export path."""
    async with ExportSource(SINGLE.parent) as source:
        assert await source.groups() == [RUST]


async def test_lifecycle_is_idempotent_and_required() -> None:
    """start/stop may repeat; groups() outside the context raises instead of reading the file."""
    source = ExportSource(SINGLE)
    with pytest.raises(RuntimeError, match="async with"):
        await source.groups()
    await source.start()
    await source.start()
    assert len(await source.groups()) == 1
    await source.stop()
    await source.stop()
    assert source.skipped == {RUST.id: 2}


def _write(path: Path, content: str | bytes) -> None:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        pytest.param("missing.json", None, "not found", id="missing-file"),
        pytest.param("empty_dir", None, "not found", id="folder-without-result-json"),
        pytest.param("result.json", "{not json", "not JSON", id="not-json"),
        pytest.param("result.json", b"\xff\xfe\x00garbage", "not JSON", id="not-utf8"),
        pytest.param("result.json", "[1, 2]", "expected a JSON object", id="json-list"),
        pytest.param("result.json", '{"name": "x", "id": 1}', "'messages' list or a 'chats.list'", id="no-messages"),
        pytest.param("result.json", '{"chats": {"list": []}}', "'messages' list or a 'chats.list'", id="no-chats"),
    ],
)
async def test_bad_export_raises_config_error_naming_the_path(
    tmp_path: Path, name: str, content: str | None, message: str
) -> None:
    """Bad input fails at start with one ConfigError line naming the path and what was expected."""
    path = tmp_path / name
    if name == "empty_dir":
        path.mkdir()
    elif content is not None:
        _write(path, content)
    with pytest.raises(ConfigError) as info:
        async with ExportSource(path):
            pass
    text = str(info.value)
    assert str(tmp_path) in text
    assert message in text
    assert "\n" not in text


_ODD_EXPORTS = {
    "not-objects-and-duplicates": b'{"name":"x","type":"public_supergroup","id":5,"messages":[7,"s",null,'
    b'{"id":2,"date_unixtime":"9"},{"id":1,"id":3,"date_unixtime":"8"},{"id":2,"date_unixtime":"1"}]}',
    "what-msgspec-refuses-inside-a-message": b'{"name":"x","type":"public_supergroup","id":5,"messages":['
    b'{"id":1,"date_unixtime":"9","text":"\\ud800","x":1e400},{"id":2,"date_unixtime":"9","y":NaN}]}',
    "out-of-range-number-inside-a-message": b'{"id":5,"messages":[{"id":1,"date_unixtime":"9","x":1e400}]}',
    "bom": b'\xef\xbb\xbf{"name":"x","type":"personal_chat","id":5,"messages":[{"id":1,"date_unixtime":"9"}]}',
    "messages-not-a-list": b'{"name":"x","id":5,"messages":{"a":1},"chats":{"list":[{"id":6,"messages":[]}]}}',
    "left-chats-only": b'{"left_chats":{"list":[{"id":6,"type":"private_group","messages":[{"id":1,'
    b'"date_unixtime":"9"}]},5]}}',
    "big-numbers": b'{"id":5,"messages":[{"id":123456789012345678901234567890,"date_unixtime":"9"},'
    b'{"id":1.0,"date_unixtime":9}]}',
}


@pytest.mark.parametrize("content", list(_ODD_EXPORTS.values()), ids=list(_ODD_EXPORTS))
def test_fast_read_and_json_read_give_the_same_chats(tmp_path: Path, content: bytes) -> None:
    """Kept as JSON text or read whole by json, an export gives the same groups, ids, skips and messages."""
    _write(tmp_path / "result.json", content)
    fast = _load_export(tmp_path / "result.json")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("emitter.export_source._read_fast", lambda _data: None)
        whole = _load_export(tmp_path / "result.json")
    assert [(c.group, list(c.ids), c.skipped) for c in fast] == [(c.group, list(c.ids), c.skipped) for c in whole]
    for a, b in zip(fast, whole, strict=True):
        assert json.dumps([_stored_message(m) for m in a.messages]) == json.dumps(list(b.messages))


@pytest.mark.parametrize("path", [SINGLE, FULL], ids=["single", "full-account"])
def test_well_formed_exports_are_kept_as_json_text(path: Path) -> None:
    """A well-formed export takes the fast read (messages kept as text), with what json would have read."""
    chats = _read_fast(path.read_bytes())
    assert chats is not None
    kept = [m for _fields, messages in chats for m in messages]
    assert kept
    assert all(isinstance(m, msgspec.Raw) for m in kept)
    assert [_stored_message(m) for m in kept] == _messages_of(path)


def _messages_of(path: Path) -> list[Any]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    chats = [doc] if "messages" in doc else doc["chats"]["list"] + doc["left_chats"]["list"]
    return [m for chat in chats for m in chat["messages"]]


def test_page_size_must_be_positive() -> None:
    """A page size below 1 is a configuration error."""
    with pytest.raises(ConfigError, match="page_size"):
        ExportSource(SINGLE, page_size=0)


# --- round trip -------------------------------------------------------------------------------------------


async def test_every_mapped_event_round_trips_through_avro(tmp_path: Path) -> None:
    """Every event from the fixtures and a generated export encodes and decodes without loss of identity."""
    generated = make_export(
        tmp_path,
        chats=[("public_supergroup", 5, 800), ("personal_chat", 1002, 300), ("public_channel", 6, 300)],
        deleted_every=11,
        with_migrated=True,
    )
    encoder = Encoder()
    count = 0
    for path in (SINGLE, FULL, generated):
        async with ExportSource(path, page_size=100) as source:
            for group in await source.groups():
                for page in await _collect(source, group):
                    for event in page.events:
                        record = decode(encoder.encode(event))
                        assert (record["group"]["id"], record["message_id"]) == (group.id, event.message_id)
                        assert record["text"] == event.text
                        assert record["date"] == event.date
                        assert record["source"] == "EXPORT"
                        count += 1
    assert count == 26 + 17 + 1400  # fixtures: all but the 2 unusable messages


# --- with the tracker ---------------------------------------------------------------------------------------


async def test_tracker_accepts_migrated_history_from_a_fresh_cursor() -> None:
    """Migrated basic-group history (negative ids) gets through the tracker on a group's first walk."""
    tracker = Tracker()
    accepted: list[int] = []
    async with ExportSource(SINGLE, page_size=3) as source:
        async for page in source.pages(RUST, tracker.cursor):
            fresh, _ = tracker.accept(page)
            accepted += [e.message_id for e in fresh]
    assert accepted[0] == -999999880
