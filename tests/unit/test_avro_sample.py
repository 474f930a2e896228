"""The encoded sample in tests/data/avro-sample: current, and readable by fastavro from the bytes alone."""

from __future__ import annotations

import io
import json

import fastavro

from emitter.codec import MESSAGE_SCHEMA_FILE, message_schema, to_avro, to_json_ready
from tests.avro_sample import COUNT, EXPECTED_FILE, VALUES_FILE, render, sample_events


def test_the_sample_files_are_what_the_generator_writes() -> None:
    """The checked-in sample matches the generator and the schema (else: python -m tests.avro_sample)."""
    values, expected = render()
    assert VALUES_FILE.read_text(encoding="utf-8") == values
    assert EXPECTED_FILE.read_text(encoding="utf-8") == expected


def test_fastavro_decodes_every_sample_value_to_its_event() -> None:
    """Each line decodes, with a schema parsed from the .avsc alone, to the record of its event."""
    schema = fastavro.parse_schema(json.loads(MESSAGE_SCHEMA_FILE.read_text(encoding="utf-8")))
    lines = VALUES_FILE.read_text(encoding="utf-8").splitlines()
    events = sample_events()
    assert len(lines) == len(events) == COUNT
    for line, event in zip(lines, events, strict=True):
        value = bytes.fromhex(line)
        assert value[:2] == b"\xc3\x01"
        assert value[2:10] == message_schema().fingerprint
        body = io.BytesIO(value[10:])
        assert fastavro.schemaless_reader(body, schema, schema) == to_avro(event)
        assert body.read() == b""  # nothing left over


def test_the_expected_records_are_the_decoded_values() -> None:
    """expected.jsonl holds, line for line, the JSON form of what each value decodes to."""
    schema = message_schema().parsed
    values = VALUES_FILE.read_text(encoding="utf-8").splitlines()
    expected = EXPECTED_FILE.read_text(encoding="utf-8").splitlines()
    for value, line in zip(values, expected, strict=True):
        record = fastavro.schemaless_reader(io.BytesIO(bytes.fromhex(value)[10:]), schema, schema)
        assert to_json_ready(record) == json.loads(line)


def test_the_sample_covers_the_schema() -> None:
    """Every optional field is both null and set somewhere in the sample, and every enum symbol appears."""
    records = [to_avro(e) for e in sample_events()]
    for name in ("date", "edit_date", "sender", "reply", "forward", "media", "grouped_id", "views", "action",
                 "topic", "comment_of"):  # fmt: skip
        seen = {r[name] is None for r in records}
        assert seen == {True, False}, name
    media = [r["media"] for r in records if r["media"] is not None]
    for name in ("storage_uri", "sha256", "stored_size"):
        assert {m[name] is None for m in media} == {True, False}, name
    for name in ("event_type", "source"):
        symbols = next(f["type"]["symbols"] for f in message_schema().raw["fields"] if f["name"] == name)
        assert {r[name] for r in records} == set(symbols)
    assert {r["group"]["type"] for r in records} >= {"CHANNEL", "SUPERGROUP", "GROUP", "PRIVATE", "UNKNOWN"}
    assert any(r["date"] is not None and r["date"].year < 1970 for r in records)
    assert any(len(r["text"].encode()) >= 2**13 for r in records)  # a length of three varint bytes
    assert any(r["message_id"] in (2**63 - 1, -(2**63)) for r in records)
