"""Avro encoding: framing, round trips, and decoding by an independent implementation."""

from __future__ import annotations

import io
import json
import struct
from datetime import UTC, datetime

import avro.io
import avro.schema
import pytest

from emitter.codec import MESSAGE_SCHEMA_FILE, PREVIOUS_SCHEMA_DIR, Encoder, Schema, decode, message_schema
from emitter.records import (
    Action,
    Entity,
    EventType,
    Forward,
    Media,
    Reaction,
    Reply,
    Sender,
)
from tests.factories import event

FULL = event(
    7,
    date=datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC),
    edit_date=datetime(2026, 3, 1, 13, 0, tzinfo=UTC),
    sender=Sender(id=42, name="Ada", username="ada", is_bot=False),
    text="hello 👋 world",
    entities=(Entity(type="bold", offset=0, length=5), Entity(type="text_url", offset=9, length=5, url="https://x.y")),
    reply=Reply(to_message_id=3, to_top_id=1, forum_topic=True),
    forward=Forward(from_id=-1009, from_name="Chan", date=datetime(2025, 1, 1, tzinfo=UTC), channel_post=11),
    media=Media(type="document", id=99, mime_type="video/mp4", size=3 * 2**31, file_name="a.mp4", duration=1.5),
    grouped_id=123456789012,
    views=10,
    forwards=2,
    replies=1,
    reactions=(Reaction("👍", 3),),
    post_author="Editor",
    via_bot_id=777,
    pinned=True,
    action=None,
    extra={"k": "v"},
)


def test_single_object_header_is_magic_and_fingerprint() -> None:
    """Values start with C3 01 and the schema's CRC-64-AVRO fingerprint, little-endian."""
    value = Encoder().encode(FULL)
    assert value[:2] == b"\xc3\x01"
    assert value[2:10] == message_schema().fingerprint
    assert len(message_schema().fingerprint) == 8


def test_roundtrip_keeps_every_field() -> None:
    """decode(encode(e)) gives back every field, dates as aware UTC datetimes."""
    record = decode(Encoder().encode(FULL))
    assert record["message_id"] == 7
    assert record["event_type"] == "NEW"
    assert record["date"] == FULL.date
    assert record["media"]["size"] == 3 * 2**31
    assert record["entities"][1]["url"] == "https://x.y"
    assert record["reactions"] == [{"emoji": "👍", "count": 3}]
    assert record["group"]["id"] == -1001234567890
    assert record["extra"] == {"k": "v"}


def test_service_and_delete_events_encode() -> None:
    """Service actions and bare DELETE events are valid records."""
    service = event(8, action=Action(type="chat_add_user", actor_id=1, user_ids=(2, 3)))
    deleted = event(9, kind=EventType.DELETE, date=None)
    assert decode(Encoder().encode(service))["action"]["user_ids"] == [2, 3]
    assert decode(Encoder().encode(deleted))["date"] is None


def test_independent_avro_implementation_reads_the_bytes() -> None:
    """The official avro package decodes a value from the bytes and the .avsc alone."""
    value = Encoder().encode(FULL)
    schema = avro.schema.parse(MESSAGE_SCHEMA_FILE.read_text())
    assert value[:2] == b"\xc3\x01"
    body = io.BytesIO(value[10:])
    record = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(body))
    assert record["text"] == "hello 👋 world"
    assert record["date"] == FULL.date
    assert record["sender"]["username"] == "ada"


def test_confluent_framing_carries_the_schema_id() -> None:
    """With a registry id the value is 00 + big-endian id + body."""
    value = Encoder(confluent_schema_id=12).encode(FULL)
    assert value[0] == 0
    assert struct.unpack(">I", value[1:5]) == (12,)


@pytest.mark.parametrize("value", [b"", b"\x01\x02", b"\xc3\x01" + b"\x00" * 8 + b"x"])
def test_unknown_bytes_are_refused(value: bytes) -> None:
    """Bytes that are not a framed record of a known schema raise ValueError."""
    with pytest.raises(ValueError, match=r"framed|fingerprint"):
        decode(value)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_values_of_a_previous_schema_decode_in_the_current_shape(version: str) -> None:
    """A value an earlier release wrote (schema v1 or v2, still in the topic after an upgrade) decodes by its
    fingerprint, with the fields added since at their defaults: change MESSAGE, pts, topic, comment_of and the
    stored-media fields None."""
    old_schema = Schema.load(PREVIOUS_SCHEMA_DIR / f"telegram_message.{version}.avsc")
    assert old_schema.fingerprint != message_schema().fingerprint
    events = (FULL, event(8, kind=EventType.EDIT, text="edited"))
    old = [Encoder(old_schema).encode(e) for e in events]
    current = [decode(Encoder().encode(e)) for e in events]
    read = [decode(v) for v in old]
    assert [(r["change"], r["pts"], r["topic"], r["comment_of"]) for r in read] == [("MESSAGE", None, None, None)] * 2
    media = read[0]["media"]
    assert (media["storage_uri"], media["sha256"], media["stored_size"]) == (None, None, None)
    assert read == current


def test_every_schema_field_is_documented() -> None:
    """Every field of the record schema, nested ones included, carries a doc."""

    def fields(schema: object) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        if isinstance(schema, dict):
            for f in schema.get("fields", []):
                out.append(f)
                out += fields(f["type"])
            out += fields(schema.get("items"))
        elif isinstance(schema, list):
            for s in schema:
                out += fields(s)
        return out

    undocumented = [f["name"] for f in fields(json.loads(MESSAGE_SCHEMA_FILE.read_text())) if not f.get("doc")]
    assert undocumented == []
