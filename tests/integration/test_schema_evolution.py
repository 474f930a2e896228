"""Schema evolution, proven by the reference reader: records of each schema version read by consumers that hold
an earlier one and the other way round (v2 against v1, v3 against v2 and v1), through Java's Avro schema
resolution (dev/avro-java), and the registry's compatibility check between successive versions (dev/registry)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema as RegistrySchema
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from emitter.codec import MESSAGE_SCHEMA_FILE, PREVIOUS_SCHEMA_DIR, Encoder, Schema, decode
from emitter.records import Action, Change, CommentOf, EventType, Media, MessageEvent, Reaction, Source, Topic
from tests.factories import event
from tests.integration.avro_java import java_decode
from tests.integration.test_avro_interop import as_java_json
from tests.unit.test_codec import FULL

V1_FILE = PREVIOUS_SCHEMA_DIR / "telegram_message.v1.avsc"
V2_FILE = PREVIOUS_SCHEMA_DIR / "telegram_message.v2.avsc"
V3_FILE = MESSAGE_SCHEMA_FILE
V1 = Schema.load(V1_FILE)
V2 = Schema.load(V2_FILE)
V3 = Schema.load(V3_FILE)
STORED = {"storage_uri", "sha256", "stored_size"}
T1 = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
SCHEMA_BODY = 10  # bytes of the single-object header before the Avro body

# Every kind of record the emitter writes now, with the values v1 does not know among them.
V2_EVENTS: tuple[MessageEvent, ...] = (
    FULL,
    event(
        8,
        kind=EventType.EDIT,
        source=Source.LIVE,
        change=Change.REACTIONS,
        pts=10_001,
        edit_date=T1,
        reactions=(Reaction("👍", 4), Reaction("🔥", 1)),
    ),
    event(9, kind=EventType.EDIT, source=Source.CATCHUP, change=Change.REACTIONS, pts=10_002, text="hi"),
    event(10, kind=EventType.EDIT, source=Source.CATCHUP, change=Change.MESSAGE, pts=10_003, edit_date=T1),
    event(11, source=Source.CATCHUP, pts=2**40, text="new while away"),
    event(12, source=Source.RESCAN, text="seen again", pts=None),
    event(13, kind=EventType.EDIT, source=Source.RESCAN, change=Change.REACTIONS, reactions=(Reaction("❤", 2),)),
    event(14, kind=EventType.DELETE, source=Source.LIVE, pts=10_004),
    event(15, source=Source.SWEEP, action=Action(type="pin_message", actor_id=42)),
)

# What the previous release wrote: v1 knows no change, no pts and fewer sources.
V1_EVENTS: tuple[MessageEvent, ...] = (
    FULL,
    event(20, kind=EventType.EDIT, source=Source.LIVE, edit_date=T1, reactions=(Reaction("👍", 1),)),
    event(21, source=Source.SWEEP, text="gap"),
    event(22, kind=EventType.DELETE, source=Source.LIVE),
    event(23, source=Source.EXPORT, text="exported"),
)


# What this release writes beyond v2: forum topics, comment links, stored media.
V3_EVENTS: tuple[MessageEvent, ...] = (
    event(30, topic=Topic(1, "General")),
    event(31, topic=Topic(2**40, None), source=Source.CATCHUP, pts=7),
    event(32, comment_of=CommentOf(channel_id=-1001234567000, post_id=17), text="first!"),
    event(
        33,
        media=Media(
            type="photo",
            id=5,
            size=2**31 + 1,
            storage_uri="s3://media/media/" + "0f" * 32,
            sha256="0f" * 32,
            stored_size=2**31 + 1,
        ),
        topic=Topic(5, "Photos"),
        comment_of=CommentOf(channel_id=-1001234567000, post_id=18),
    ),
    event(34, kind=EventType.EDIT, change=Change.REACTIONS, topic=Topic(5, "Renamed"), reactions=(Reaction("👍", 1),)),
)


def top_level(schema: Schema) -> dict[str, Any]:
    """The schema's fields by name."""
    return {f["name"]: f for f in schema.raw["fields"]}


def _media_fields(schema: Schema) -> set[str]:
    media = next(t for t in top_level(schema)["media"]["type"] if t != "null")
    return {f["name"] for f in media["fields"]}


def as_reader_says(record: dict[str, Any], reader: Schema) -> dict[str, Any]:
    """A newer record as Avro's resolution rules give it to an older reader: fields it lacks are skipped (at
    the top and in media), a Source symbol it lacks is its enum default (other nested records are the same in
    every version)."""
    fields = top_level(reader)
    source = fields["source"]["type"]
    out = {k: v for k, v in record.items() if k in fields}
    if out["source"] not in source["symbols"]:
        out["source"] = source["default"]
    if out.get("media") is not None:
        out["media"] = {k: v for k, v in out["media"].items() if k in _media_fields(reader)}
    return out


def fastavro_read(value: bytes, writer: Schema, reader: Schema) -> Any:
    """fastavro's schema resolution of a single-object value, for a second opinion beside Java's."""
    return fastavro.schemaless_reader(io.BytesIO(value[SCHEMA_BODY:]), writer.parsed, reader.parsed)


def test_the_versions_differ_as_described() -> None:
    """v2 is v1 plus the fields change and pts and the Source symbols CATCHUP and RESCAN; v3 is v2 plus topic,
    comment_of and media's storage_uri, sha256 and stored_size (so the tests below exercise what changed)."""
    v1, v2, v3 = top_level(V1), top_level(V2), top_level(V3)
    assert set(v2) - set(v1) == {"change", "pts"}
    assert set(v1) <= set(v2)
    added = set(v2["source"]["type"]["symbols"]) - set(v1["source"]["type"]["symbols"])
    assert added == {"CATCHUP", "RESCAN"}
    assert set(v3) - set(v2) == {"topic", "comment_of"}
    assert set(v2) <= set(v3)
    assert _media_fields(V3) - _media_fields(V2) == STORED
    assert _media_fields(V1) == _media_fields(V2)
    assert v3["source"] == v2["source"]
    assert len({V1.fingerprint, V2.fingerprint, V3.fingerprint}) == 3


def test_v1_reader_reads_v2_records_as_v1_says() -> None:
    """Java reading v2 records with the v1 schema: CATCHUP and RESCAN read as LIVE, change and pts are not
    there, everything else (a reactions EDIT included) is what the writer wrote."""
    values = [Encoder(V2).encode(e) for e in V2_EVENTS]
    written = [as_java_json(decode(v)) for v in values]
    read = java_decode(values, V2_FILE, reader_schema=V1_FILE)

    assert read == [as_reader_says(w, V1) for w in written]
    assert all(set(r) == set(top_level(V1)) for r in read)
    assert [r["source"] for r in read] == [
        "BACKFILL", "LIVE", "LIVE", "LIVE", "LIVE", "LIVE", "LIVE", "LIVE", "SWEEP",
    ]  # fmt: skip
    reactions = read[1]
    assert (reactions["event_type"], reactions["message_id"]) == ("EDIT", 8)
    assert reactions["reactions"] == [{"emoji": "👍", "count": 4}, {"emoji": "🔥", "count": 1}]
    assert [as_java_json(fastavro_read(v, V2, V1)) for v in values] == read


def test_v2_reader_reads_v1_records_with_the_defaults() -> None:
    """Java reading records the previous release wrote (v1) with the v2 schema: change is MESSAGE, pts is
    null, the rest as written."""
    encoder = Encoder(V1)
    values = [encoder.encode(e) for e in V1_EVENTS]
    assert all(v[:SCHEMA_BODY] == b"\xc3\x01" + V1.fingerprint for v in values)
    written = [as_java_json(fastavro_read(v, V1, V1)) for v in values]
    read = java_decode(values, V1_FILE, reader_schema=V2_FILE)

    assert [(r["change"], r["pts"]) for r in read] == [("MESSAGE", None)] * len(V1_EVENTS)
    assert [{k: v for k, v in r.items() if k not in {"change", "pts"}} for r in read] == written
    assert [r["event_type"] for r in read] == ["NEW", "EDIT", "NEW", "DELETE", "NEW"]
    assert [as_java_json(fastavro_read(v, V1, V2)) for v in values] == read


@pytest.mark.parametrize(("reader", "reader_file"), [(V2, V2_FILE), (V1, V1_FILE)], ids=["v2", "v1"])
def test_older_readers_read_v3_records_as_their_schema_says(reader: Schema, reader_file: Any) -> None:
    """Java reading v3 records with the v2 or the v1 schema: topic, comment_of and the stored-media fields are
    not there, everything else is what the writer wrote."""
    events = (*V2_EVENTS, *V3_EVENTS)
    values = [Encoder(V3).encode(e) for e in events]
    written = [as_java_json(decode(v)) for v in values]
    read = java_decode(values, V3_FILE, reader_schema=reader_file)

    assert read == [as_reader_says(w, reader) for w in written]
    assert all(set(r) == set(top_level(reader)) for r in read)
    photo = read[len(V2_EVENTS) + 3]
    assert (photo["message_id"], photo["media"]["size"]) == (33, 2**31 + 1)
    assert set(photo["media"]) == _media_fields(reader)
    assert [as_java_json(fastavro_read(v, V3, reader)) for v in values] == read


@pytest.mark.parametrize(("writer", "events"), [(V2, V2_EVENTS), (V1, V1_EVENTS)], ids=["v2", "v1"])
def test_v3_reader_reads_older_records_with_the_defaults(writer: Schema, events: tuple[MessageEvent, ...]) -> None:
    """Java reading records of the releases before (v2, v1) with the v3 schema: topic and comment_of are null,
    a media's storage_uri, sha256 and stored_size null, the rest as written."""
    values = [Encoder(writer).encode(e) for e in events]
    writer_file = V2_FILE if writer is V2 else V1_FILE
    read = java_decode(values, writer_file, reader_schema=V3_FILE)
    written = [as_java_json(fastavro_read(v, writer, writer)) for v in values]

    assert [(r["topic"], r["comment_of"]) for r in read] == [(None, None)] * len(events)
    media = [r["media"] for r in read if r["media"] is not None]
    assert media
    assert all(m[k] is None for m in media for k in STORED)
    assert [as_reader_says(r, writer) for r in read] == [as_reader_says(w, writer) for w in written]
    assert [as_java_json(fastavro_read(v, writer, V3)) for v in values] == read


def test_decode_reads_every_version_in_the_current_shape() -> None:
    """decode() reads single-object values of v1, v2 and v3 into the v3 shape (defaults for what is newer)."""
    values = [Encoder(V1).encode(V1_EVENTS[1]), Encoder(V2).encode(V2_EVENTS[1]), Encoder(V3).encode(V3_EVENTS[3])]
    read = [decode(v) for v in values]
    assert all(set(r) == set(top_level(V3)) for r in read)
    assert [r["topic"] for r in read] == [None, None, {"id": 5, "title": "Photos"}]
    assert [r["comment_of"] for r in read][:2] == [None, None]
    assert read[2]["media"]["sha256"] == "0f" * 32


def _without_default(schema: Schema, name: str) -> dict[str, Any]:
    """`schema` with field `name` required: readers of it cannot read records that lack the field."""
    fields = [{k: v for k, v in f.items() if not (f["name"] == name and k == "default")} for f in schema.raw["fields"]]
    return {**schema.raw, "fields": fields}


def _without_field(schema: Schema, name: str) -> dict[str, Any]:
    """`schema` without field `name`: a reader that requires it cannot read its records."""
    return {**schema.raw, "fields": [f for f in schema.raw["fields"] if f["name"] != name]}


def _registry_schema(raw: dict[str, Any]) -> RegistrySchema:
    return RegistrySchema(json.dumps(raw), "AVRO")


# Two broken successors beside the real one, so the check is seen to look both ways: one the new reader cannot
# read old records with (a new field without a default), one the old reader cannot read new records with (no
# message_id, which every earlier version requires).
def _candidates(new: Schema, name: str, added: str) -> dict[str, dict[str, Any]]:
    return {
        name: new.raw,
        f"{name}, {added} without default": _without_default(new, added),
        f"{name} without message_id": _without_field(new, "message_id"),
    }


def _expected(name: str, added: str) -> dict[str, dict[str, bool]]:
    no_default, no_id = f"{name}, {added} without default", f"{name} without message_id"
    return {
        "BACKWARD": {name: True, no_default: False, no_id: True},
        "FORWARD": {name: True, no_default: True, no_id: False},
        "FULL": {name: True, no_default: False, no_id: False},
    }


STEPS = {"v2 after v1": (V1, V2, "v2", "change"), "v3 after v2": (V2, V3, "v3", "topic")}


@pytest.mark.parametrize("step", list(STEPS))
def test_registry_check_passes_each_version_after_the_one_before(
    registry: str, names: dict[str, str], step: str
) -> None:
    """The registry's check passes v2 after v1 and v3 after v2 under BACKWARD, FORWARD and FULL, and refuses
    the successors that break one direction under that direction and FULL: so it does look both ways."""
    old, new, name, added = STEPS[step]
    subject = f"{names['topic']}-value"
    candidates = _candidates(new, name, added)
    verdicts = {}
    with SchemaRegistryClient({"url": registry}) as client:
        client.register_schema(subject, _registry_schema(old.raw))
        for level in ("BACKWARD", "FORWARD", "FULL"):
            client.set_compatibility(subject, level)
            verdicts[level] = {
                key: client.test_compatibility(subject, _registry_schema(raw)) for key, raw in candidates.items()
            }
    assert verdicts == _expected(name, added)


@pytest.mark.parametrize("mode", ["FULL", "FULL_TRANSITIVE"])
def test_v3_registers_after_v1_and_v2_under_full_compatibility(registry: str, names: dict[str, str], mode: str) -> None:
    """Under FULL (the mode the README recommends) the registry takes v2 and then v3 as the subject's versions
    2 and 3 after v1, where it refuses a successor that breaks old readers."""
    subject = f"{names['topic']}-value"
    with SchemaRegistryClient({"url": registry}) as client:
        first = client.register_schema(subject, _registry_schema(V1.raw))
        client.set_compatibility(subject, mode)
        with pytest.raises(SchemaRegistryError, match=r"(?i)incompatible"):
            client.register_schema(subject, _registry_schema(_without_field(V2, "message_id")))
        second = client.register_schema(subject, _registry_schema(V2.raw))
        with pytest.raises(SchemaRegistryError, match=r"(?i)incompatible"):
            client.register_schema(subject, _registry_schema(_without_default(V3, "topic")))
        third = client.register_schema(subject, _registry_schema(V3.raw))
        latest = client.get_latest_version(subject)
    assert len({first, second, third}) == 3
    assert (latest.version, latest.schema_id) == (3, third)
    assert json.loads(latest.schema.schema_str or "") == V3.raw
