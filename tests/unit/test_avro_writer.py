"""The schema-specialised Avro writer: byte for byte what fastavro writes, and fastavro where it declines."""

from __future__ import annotations

import copy
import dataclasses
import enum
import io
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emitter.avro_writer import UnsupportedSchema, UnsupportedValue, build_writer, generate_source
from emitter.codec import RECORD_TYPES, Encoder, Schema, decode, message_schema, to_avro
from emitter.records import (
    Action,
    CommentOf,
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
    Topic,
)
from tests.factories import event

# --- strategies: every field of MessageEvent, each over its whole Avro domain ---------------------------------

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
LONGS = st.one_of(INT64, st.integers(-300, 300), st.integers(2**13, 2**43))  # every varint length, boundaries
COUNTS = st.one_of(INT32, st.integers(0, 20_000))
# Never lone surrogates (category Cs): they are not UTF-8, and fastavro refuses them (a fallback case below).
CHARS = st.characters(exclude_categories=("Cs",))
TEXT = st.one_of(
    st.text(CHARS, max_size=12),  # empty, ASCII and non-ASCII, astral characters
    st.text(st.characters(min_codepoint=0x80, exclude_categories=("Cs",)), min_size=1, max_size=12),
)
LONG_TEXT = TEXT | st.text(CHARS, min_size=1, max_size=3).map(lambda s: s * 3000)  # lengths past 2 varint bytes
OPT_TEXT = st.none() | TEXT
OPT_LONG = st.none() | LONGS
OPT_INT = st.none() | COUNTS
OPT_BOOL = st.none() | st.booleans()
OPT_DOUBLE = st.none() | st.floats(allow_nan=True, allow_infinity=True, width=64)
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=3)), timezone(-timedelta(hours=9, minutes=30))])
DATES = st.one_of(
    st.datetimes(timezones=ZONES),  # year 1 to 9999: negative and big timestamps, microseconds cut to millis
    st.datetimes(min_value=datetime(1969, 12, 31), max_value=datetime(1970, 1, 2), timezones=ZONES),  # noqa: DTZ001 - hypothesis attaches the zone
)
OPT_DATE = st.none() | DATES


def _tuples(items: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(items, max_size=4).map(tuple)


SENDERS = st.builds(Sender, id=LONGS, kind=st.sampled_from(PeerKind), name=OPT_TEXT, username=OPT_TEXT, is_bot=OPT_BOOL)
ENTITIES = st.builds(
    Entity,
    type=TEXT,
    offset=COUNTS,
    length=COUNTS,
    url=OPT_TEXT,
    user_id=OPT_LONG,
    language=OPT_TEXT,
    custom_emoji_id=OPT_LONG,
)
REPLIES = st.builds(
    Reply,
    to_message_id=OPT_LONG,
    to_top_id=OPT_LONG,
    forum_topic=st.booleans(),
    to_peer_id=OPT_LONG,
    quote_text=OPT_TEXT,
)
FORWARDS = st.builds(
    Forward,
    from_id=OPT_LONG,
    from_name=OPT_TEXT,
    date=OPT_DATE,
    channel_post=OPT_LONG,
    post_author=OPT_TEXT,
    saved_from_peer=OPT_LONG,
    saved_from_msg_id=OPT_LONG,
)
MEDIA = st.builds(
    Media,
    type=TEXT,
    id=OPT_LONG,
    mime_type=OPT_TEXT,
    size=OPT_LONG,
    file_name=OPT_TEXT,
    width=OPT_INT,
    height=OPT_INT,
    duration=OPT_DOUBLE,
    title=OPT_TEXT,
    performer=OPT_TEXT,
    url=OPT_TEXT,
    description=OPT_TEXT,
    latitude=OPT_DOUBLE,
    longitude=OPT_DOUBLE,
    phone_number=OPT_TEXT,
    first_name=OPT_TEXT,
    last_name=OPT_TEXT,
    emoji=OPT_TEXT,
    poll_question=OPT_TEXT,
    poll_answers=_tuples(TEXT),
    poll_closed=OPT_BOOL,
    poll_total_voters=OPT_INT,
    storage_uri=OPT_TEXT,
    sha256=OPT_TEXT,
    stored_size=OPT_LONG,
)
ACTIONS = st.builds(
    Action,
    type=TEXT,
    actor_id=OPT_LONG,
    user_ids=_tuples(LONGS),
    title=OPT_TEXT,
    peer_id=OPT_LONG,
    message_id=OPT_LONG,
    text=OPT_TEXT,
)
GROUPS = st.builds(Group, id=LONGS, title=OPT_TEXT, username=OPT_TEXT, type=st.sampled_from(GroupType))
EVENTS = st.builds(
    MessageEvent,
    event_type=st.sampled_from(EventType),
    group=GROUPS,
    message_id=LONGS,
    source=st.sampled_from(Source),
    ingest_time=DATES,
    date=OPT_DATE,
    edit_date=OPT_DATE,
    sender=st.none() | SENDERS,
    text=LONG_TEXT,
    entities=_tuples(ENTITIES),
    reply=st.none() | REPLIES,
    forward=st.none() | FORWARDS,
    media=st.none() | MEDIA,
    grouped_id=OPT_LONG,
    views=OPT_INT,
    forwards=OPT_INT,
    replies=OPT_INT,
    reactions=_tuples(st.builds(Reaction, emoji=TEXT, count=COUNTS)),
    post_author=OPT_TEXT,
    via_bot_id=OPT_LONG,
    pinned=st.booleans(),
    is_post=st.booleans(),
    action=st.none() | ACTIONS,
    extra=st.dictionaries(TEXT, TEXT, max_size=4),
    truncated=st.booleans(),
    topic=st.none() | st.builds(Topic, id=LONGS, title=OPT_TEXT),
    comment_of=st.none() | st.builds(CommentOf, channel_id=LONGS, post_id=LONGS),
)


def fastavro_bytes(schema: Any, record: object) -> bytes:
    """What fastavro's generic `schemaless_writer` writes: the reference."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    return buf.getvalue()


def specialised_bytes(schema: Schema, obj: object) -> bytes:
    """What the writer generated for `schema` writes, with no fastavro behind it."""
    writer = schema.writer
    assert writer is not None
    out = bytearray()
    writer(out, obj)
    return bytes(out)


# --- the message schema -------------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(EVENTS)
def test_every_event_is_written_byte_for_byte_as_fastavro_writes_it(ev: MessageEvent) -> None:
    """For any MessageEvent, the generated writer's bytes equal fastavro's for to_avro(event)."""
    schema = message_schema()
    expected = fastavro_bytes(schema.parsed, to_avro(ev))
    assert specialised_bytes(schema, ev) == expected
    assert specialised_bytes(schema, ev) == expected  # again: the group's bytes now come from the writer's cache


def test_a_cached_group_is_not_confused_with_an_equal_or_another_one() -> None:
    """Events of one Group object reuse its bytes; another Group object, equal or not, is written afresh."""
    schema = message_schema()
    groups = [Group(id=-100123, title="a"), Group(id=-100123, title="a"), Group(id=-100124, title="b")]
    for group in [*groups, groups[0], groups[2], groups[2]]:
        ev = event(1, group=group)
        assert specialised_bytes(schema, ev) == fastavro_bytes(schema.parsed, to_avro(ev))


def test_a_cached_sender_is_not_confused_with_an_equal_or_another_one_or_none() -> None:
    """A page's messages from one sender share one Sender object: its bytes are reused inside the optional
    field, and another Sender object, equal or not, or no sender, is written afresh."""
    schema = message_schema()
    senders = [Sender(id=7, name="Ann"), Sender(id=7, name="Ann"), Sender(id=8, username="bo", is_bot=True), None]
    for n, sender in enumerate([*senders, senders[0], senders[0], None, senders[2], senders[1]]):
        ev = event(n + 1, sender=sender)
        assert specialised_bytes(schema, ev) == fastavro_bytes(schema.parsed, to_avro(ev))


def test_the_message_schema_gets_a_specialised_writer() -> None:
    """The shipped schema compiles, and Encoder uses the writer rather than fastavro for a typical event."""
    encoder = Encoder()
    value = encoder.encode(event(5, text="hello", sender=Sender(id=42, name="Ada"), views=7))
    assert encoder.specialised
    assert encoder.fallbacks == 0
    assert decode(value)["sender"]["name"] == "Ada"


_NAIVE = datetime(2026, 3, 1, 12, 0)  # noqa: DTZ001 - the point of the case


@pytest.mark.parametrize(
    "changes",
    [
        {"date": _NAIVE},  # fastavro reads a naive datetime as local time
        {"views": 2**31},  # out of int range in a union: fastavro refuses
        {"message_id": 2**63},  # out of long range
        {"views": True},  # a bool is not an int to fastavro's union
        {"media": Media(type="geo", latitude=3)},  # an int for a double: fastavro takes it
        {"text": "lone \udc80 surrogate"},  # not UTF-8: fastavro raises
        {"sender": Sender(id=1, is_bot=1)},  # type: ignore[arg-type] - an int for a bool, refused in a union
        {"entities": [Entity(type="bold", offset=0, length=1)]},  # a list where a tuple is expected: taken
        {"extra": {"k": 1}},  # not a string: fastavro raises
        {"reply": Reply(forum_topic=1)},  # type: ignore[arg-type] - an int for a bool inside a union record
    ],
    ids=repr,
)
def test_values_outside_the_writers_domain_go_to_fastavro(changes: dict[str, Any]) -> None:
    """What the writer declines, Encoder hands to fastavro: same bytes, or the same error, as fastavro alone."""
    ev = dataclasses.replace(event(9), **changes)
    encoder = Encoder()
    try:
        expected: bytes | type[BaseException] = encoder.header + fastavro_bytes(encoder.schema.parsed, to_avro(ev))
    except Exception as e:  # whatever fastavro raises is the expectation
        expected = type(e)
    if isinstance(expected, bytes):
        assert encoder.encode(ev) == expected
    else:
        with pytest.raises(expected):
            encoder.encode(ev)
    if "entities" not in changes:  # a list of entities is inside the writer's domain
        assert encoder.fallbacks == 1
        with pytest.raises(UnsupportedValue):
            specialised_bytes(encoder.schema, ev)


def _with_field(raw: Mapping[str, Any], field: dict[str, Any], *, replace: str | None = None) -> dict[str, Any]:
    schema = copy.deepcopy(dict(raw))
    fields = [f for f in schema["fields"] if f["name"] != replace]
    schema["fields"] = [*fields, field]
    return schema


def test_a_schema_field_the_records_lack_falls_back_to_fastavro_and_its_default() -> None:
    """A field in the schema without an attribute in the record class: fastavro writes it, with its default."""
    evolved = Schema(_with_field(message_schema().raw, {"name": "pts_later", "type": "long", "default": -1}))
    with pytest.raises(UnsupportedSchema, match=r"MessageEvent has no attribute for field .*\.pts_later"):
        build_writer(evolved.parsed, RECORD_TYPES)
    encoder = Encoder(evolved)
    value = encoder.encode(event(3, text="hi"))
    assert not encoder.specialised
    record = fastavro.schemaless_reader(io.BytesIO(value[10:]), evolved.parsed, evolved.parsed)
    assert (record["pts_later"], record["text"], record["message_id"]) == (-1, "hi", 3)


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ({"name": "text", "type": ["null", "string", "long"]}, r"only a null and one other type"),
        ({"name": "text", "type": {"type": "string", "logicalType": "uuid"}}, r"logical type 'uuid'"),
        ({"name": "text", "type": {"type": "bytes", "logicalType": "decimal", "precision": 4}}, r"logical type"),
    ],
)
def test_schemas_it_was_not_built_for_are_encoded_by_fastavro(field: dict[str, Any], reason: str) -> None:
    """Unions of several types and other logical types are refused at build time; Encoder uses fastavro."""
    schema = Schema(_with_field(message_schema().raw, field, replace="text"))
    with pytest.raises(UnsupportedSchema, match=reason):
        build_writer(schema.parsed, RECORD_TYPES)
    encoder = Encoder(schema)
    assert not encoder.specialised
    if field["type"] == ["null", "string", "long"]:
        value = encoder.encode(event(4, text="still written"))
        assert fastavro.schemaless_reader(io.BytesIO(value[10:]), schema.parsed, schema.parsed)["text"] == (
            "still written"
        )


# --- the generator beyond our schema: every type it claims, on a schema of its own --------------------------


class Colour(enum.StrEnum):
    """A test enum."""

    RED = "RED"
    GREEN = "GREEN"


@dataclasses.dataclass(frozen=True, slots=True)
class Inner:
    """A nested test record."""

    flag: bool
    weights: dict[str, float]


@dataclasses.dataclass(frozen=True, slots=True)
class Sink:
    """A record using every type the generator writes."""

    f32: float
    f64: float
    blob: bytes
    digest: bytes
    micros: datetime
    colour: str
    maybe: Inner | None
    matrix: tuple[tuple[int, ...], ...]
    counts: dict[str, int]
    nothing: None
    only: str


SINK_SCHEMA = fastavro.parse_schema(
    {
        "type": "record",
        "name": "Sink",
        "namespace": "test",
        "fields": [
            {"name": "f32", "type": "float"},
            {"name": "f64", "type": "double"},
            {"name": "blob", "type": "bytes"},
            {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
            {"name": "micros", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "colour", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN"]}},
            {
                "name": "maybe",
                "type": [
                    {
                        "type": "record",
                        "name": "Inner",
                        "fields": [
                            {"name": "flag", "type": "boolean"},
                            {"name": "weights", "type": {"type": "map", "values": "double"}},
                        ],
                    },
                    "null",  # null second: its index is 1
                ],
            },
            {"name": "matrix", "type": {"type": "array", "items": {"type": "array", "items": "int"}}},
            {"name": "counts", "type": {"type": "map", "values": "long"}},
            {"name": "nothing", "type": "null"},
            {"name": "only", "type": ["string"]},
        ],
    }
)
SINK_TYPES = {"Sink": Sink, "Inner": Inner, "Colour": Colour}

FINITE = st.floats(allow_nan=False, allow_infinity=False)
SINKS = st.builds(
    Sink,
    f32=st.floats(width=32),
    f64=st.floats(),
    blob=st.binary(),
    digest=st.binary(min_size=4, max_size=4),
    micros=DATES,
    colour=st.sampled_from(Colour) | st.sampled_from(["RED", "GREEN"]),
    maybe=st.none() | st.builds(Inner, flag=st.booleans(), weights=st.dictionaries(TEXT, st.floats(), max_size=3)),
    matrix=_tuples(_tuples(INT32)),
    counts=st.dictionaries(TEXT, INT64, max_size=3),
    nothing=st.none(),
    only=TEXT,
)


def _generic(value: object) -> object:
    """The generic Avro datum fastavro expects for a test object (dicts, lists, enum values)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _generic(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_generic(v) for v in value]
    if isinstance(value, dict):
        return {k: _generic(v) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    return value


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(SINKS)
def test_every_supported_type_is_written_as_fastavro_writes_it(value: Sink) -> None:
    """float, double, bytes, fixed, timestamp-micros, enums, [record, null], nested arrays and maps, null, [T]."""
    out = bytearray()
    build_writer(SINK_SCHEMA, SINK_TYPES)(out, value)
    assert bytes(out) == fastavro_bytes(SINK_SCHEMA, _generic(value))


def test_a_field_added_to_schema_and_class_is_written_without_code_changes() -> None:
    """The writer is derived from the schema: a new field with its attribute appears in the generated code."""
    base = message_schema().raw

    @dataclasses.dataclass(frozen=True, slots=True)
    class Later:
        """A future version of a record with one more field."""

        id: int
        title: str | None
        username: str | None
        type: GroupType
        pts: int | None

    group = next(f["type"] for f in base["fields"] if f["name"] == "group")
    evolved = fastavro.parse_schema(
        {**group, "fields": [*group["fields"], {"name": "pts", "type": ["null", "long"], "default": None}]}
    )
    source, _ = generate_source(evolved, {"Group": Later})
    assert ".pts" in source
    out = bytearray()
    later = Later(id=-100123, title="t", username=None, type=GroupType.CHANNEL, pts=2**40)
    build_writer(evolved, {"Group": Later})(out, later)
    assert bytes(out) == fastavro_bytes(evolved, _generic(later))


def test_recursive_schemas_are_refused() -> None:
    """A record that contains itself is left to fastavro."""

    @dataclasses.dataclass(frozen=True, slots=True)
    class Node:
        """A linked list node."""

        next: Node | None

    schema = fastavro.parse_schema(
        {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]}
    )
    with pytest.raises(UnsupportedSchema, match="recursive"):
        build_writer(schema, {"Node": Node})
