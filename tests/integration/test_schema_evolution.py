"""Schema evolution, proven by the reference reader: records of the current schema (v2) read by consumers that
hold the previous one (v1) and the other way round, through Java's Avro schema resolution (dev/avro-java), and
the registry's compatibility check between the two versions (dev/registry)."""

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
from emitter.records import Action, Change, EventType, MessageEvent, Reaction, Source
from tests.factories import event
from tests.integration.avro_java import java_decode
from tests.integration.test_avro_interop import as_java_json
from tests.unit.test_codec import FULL

V1_FILE = PREVIOUS_SCHEMA_DIR / "telegram_message.v1.avsc"
V2_FILE = MESSAGE_SCHEMA_FILE
V1 = Schema.load(V1_FILE)
V2 = Schema.load(V2_FILE)
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


def top_level(schema: Schema) -> dict[str, Any]:
    """The schema's fields by name."""
    return {f["name"]: f for f in schema.raw["fields"]}


def as_v1_says(record: dict[str, Any]) -> dict[str, Any]:
    """A v2 record as Avro's resolution rules give it to a v1 reader: fields v1 lacks are skipped, a Source
    symbol v1 lacks is v1's enum default (the nested records are the same in both versions)."""
    fields = top_level(V1)
    source = fields["source"]["type"]
    out = {k: v for k, v in record.items() if k in fields}
    if out["source"] not in source["symbols"]:
        out["source"] = source["default"]
    return out


def fastavro_read(value: bytes, writer: Schema, reader: Schema) -> Any:
    """fastavro's schema resolution of a single-object value, for a second opinion beside Java's."""
    return fastavro.schemaless_reader(io.BytesIO(value[SCHEMA_BODY:]), writer.parsed, reader.parsed)


def test_the_versions_differ_as_described() -> None:
    """v2 is v1 plus the fields change and pts and the Source symbols CATCHUP and RESCAN (so the tests below
    exercise what changed)."""
    v1, v2 = top_level(V1), top_level(V2)
    assert set(v2) - set(v1) == {"change", "pts"}
    assert set(v1) <= set(v2)
    added = set(v2["source"]["type"]["symbols"]) - set(v1["source"]["type"]["symbols"])
    assert added == {"CATCHUP", "RESCAN"}
    assert V1.fingerprint != V2.fingerprint


def test_v1_reader_reads_v2_records_as_v1_says() -> None:
    """Java reading v2 records with the v1 schema: CATCHUP and RESCAN read as LIVE, change and pts are not
    there, everything else (a reactions EDIT included) is what the writer wrote."""
    values = [Encoder(V2).encode(e) for e in V2_EVENTS]
    written = [as_java_json(decode(v)) for v in values]
    read = java_decode(values, V2_FILE, reader_schema=V1_FILE)

    assert read == [as_v1_says(w) for w in written]
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


def _without_default(schema: Schema, name: str) -> dict[str, Any]:
    """`schema` with field `name` required: readers of it cannot read records that lack the field."""
    fields = [{k: v for k, v in f.items() if not (f["name"] == name and k == "default")} for f in schema.raw["fields"]]
    return {**schema.raw, "fields": fields}


def _without_field(schema: Schema, name: str) -> dict[str, Any]:
    """`schema` without field `name`: a reader that requires it cannot read its records."""
    return {**schema.raw, "fields": [f for f in schema.raw["fields"] if f["name"] != name]}


def _registry_schema(raw: dict[str, Any]) -> RegistrySchema:
    return RegistrySchema(json.dumps(raw), "AVRO")


# Two broken successors beside the real v2, so the check is seen to look both ways: one the new reader cannot
# read old records with (change without a default), one the old reader cannot read new records with (no
# message_id, which v1 requires).
CANDIDATES = {
    "v2": V2.raw,
    "v2, change without default": _without_default(V2, "change"),
    "v2 without message_id": _without_field(V2, "message_id"),
}
EXPECTED = {
    "BACKWARD": {"v2": True, "v2, change without default": False, "v2 without message_id": True},
    "FORWARD": {"v2": True, "v2, change without default": True, "v2 without message_id": False},
    "FULL": {"v2": True, "v2, change without default": False, "v2 without message_id": False},
}


def test_registry_check_passes_v2_after_v1_both_ways(registry: str, names: dict[str, str]) -> None:
    """The registry's check passes v2 after v1 under BACKWARD, FORWARD and FULL, and refuses the successors
    that break one direction under that direction and FULL: so it does look both ways."""
    subject = f"{names['topic']}-value"
    verdicts = {}
    with SchemaRegistryClient({"url": registry}) as client:
        client.register_schema(subject, _registry_schema(V1.raw))
        for level in EXPECTED:
            client.set_compatibility(subject, level)
            verdicts[level] = {
                name: client.test_compatibility(subject, _registry_schema(raw)) for name, raw in CANDIDATES.items()
            }
    assert verdicts == EXPECTED


@pytest.mark.parametrize("mode", ["FULL", "FULL_TRANSITIVE"])
def test_v2_registers_after_v1_under_full_compatibility(registry: str, names: dict[str, str], mode: str) -> None:
    """Under FULL (the mode the README recommends) the registry takes v2 as the subject's version 2 after
    v1, where it refuses a successor that breaks old readers."""
    subject = f"{names['topic']}-value"
    with SchemaRegistryClient({"url": registry}) as client:
        first = client.register_schema(subject, _registry_schema(V1.raw))
        client.set_compatibility(subject, mode)
        with pytest.raises(SchemaRegistryError, match=r"(?i)incompatible"):
            client.register_schema(subject, _registry_schema(CANDIDATES["v2 without message_id"]))
        second = client.register_schema(subject, _registry_schema(V2.raw))
        latest = client.get_latest_version(subject)
    assert second != first
    assert (latest.version, latest.schema_id) == (2, second)
    assert json.loads(latest.schema.schema_str or "") == V2.raw
