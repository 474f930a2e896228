"""Our Avro bytes against Java's reference implementation (dev/avro-java)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import avro.schema
import pytest

from emitter.codec import PREVIOUS_SCHEMA_DIR, SCHEMA_DIR, Encoder, Schema, decode
from tests.avro_sample import VALUES_FILE
from tests.factories import event
from tests.integration.avro_java import java_decode, java_fingerprint
from tests.unit.test_codec import FULL

# The packaged schema and the earlier versions consumers may still hold (their records are still in Kafka).
SCHEMA_FILES = sorted(SCHEMA_DIR.glob("*.avsc")) + sorted(PREVIOUS_SCHEMA_DIR.glob("*.avsc"))


def as_java_json(value: Any) -> Any:
    """A fastavro record as Java's GenericData prints it: timestamps as epoch milliseconds."""
    if isinstance(value, dict):
        return {k: as_java_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_java_json(v) for v in value]
    if isinstance(value, datetime):
        # Exact integer milliseconds: timestamp() is a float, which rounds some dates a millisecond off.
        return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    return value


def test_there_are_schemas_to_compare() -> None:
    """The current record schema and its previous version are both compared (so the fingerprint test is not
    vacuous for either)."""
    assert {"telegram_message.avsc", "telegram_message.v1.avsc"} <= {p.name for p in SCHEMA_FILES}


@pytest.mark.parametrize("schema_file", SCHEMA_FILES, ids=lambda p: p.name)
def test_java_fingerprint_equals_the_single_object_header(schema_file: Path) -> None:
    """Java's parsingFingerprint64 equals the fingerprint our single-object header carries."""
    schema = Schema.load(schema_file)
    header = Encoder(schema).header
    assert header[:2] == b"\xc3\x01"
    assert java_fingerprint(schema_file) == header[2:10]


def test_java_reads_single_object_values() -> None:
    """Java's GenericDatumReader reads our single-object values to the same record fastavro reads."""
    events = [FULL, event(8), event(9, text="", sender=None)]
    values = [Encoder().encode(e) for e in events]
    read = java_decode(values, SCHEMA_DIR / "telegram_message.avsc")
    assert read == [as_java_json(decode(v)) for v in values]
    assert read[0]["text"] == "hello 👋 world"
    assert read[0]["media"]["size"] == 3 * 2**31


def test_java_reads_the_whole_avro_sample() -> None:
    """Java's reader decodes every value of tests/data/avro-sample (v3: topics, comment links, stored media
    among them) to the record fastavro decodes."""
    values = [bytes.fromhex(line) for line in VALUES_FILE.read_text(encoding="utf-8").splitlines()]
    read = java_decode(values, SCHEMA_DIR / "telegram_message.avsc")
    assert read == [as_java_json(decode(v)) for v in values]
    assert any(r["topic"] is not None for r in read)
    assert any(r["comment_of"] is not None for r in read)
    assert any(r["media"] is not None and r["media"]["sha256"] is not None for r in read)


def test_python_avro_package_fingerprints_logical_types_differently() -> None:
    """The Python `avro` package's fingerprint of our schema differs from Java's (the README warns of it):
    it keeps {"type": "long"} for timestamp-millis in the canonical form, so its consumers must not look
    our schema up by its own fingerprint."""
    schema_file = SCHEMA_DIR / "telegram_message.avsc"
    theirs = avro.schema.parse(schema_file.read_text()).fingerprint()
    assert java_fingerprint(schema_file) == Schema.load(schema_file).fingerprint
    assert theirs not in {Schema.load(schema_file).fingerprint, Schema.load(schema_file).fingerprint[::-1]}


def test_java_reads_new_records_with_an_older_reader_schema(tmp_path: Path) -> None:
    """Through Avro's schema resolution a reader that knows only some fields reads our records: what an
    older consumer does when the schema gains fields."""
    full = json.loads((SCHEMA_DIR / "telegram_message.avsc").read_text())
    kept = {"event_type", "group", "message_id", "text"}
    older = {**full, "fields": [f for f in full["fields"] if f["name"] in kept]}
    reader = tmp_path / "older.avsc"
    reader.write_text(json.dumps(older))
    values = [Encoder().encode(e) for e in (FULL, event(8))]
    read = java_decode(values, SCHEMA_DIR / "telegram_message.avsc", reader_schema=reader)
    assert [set(r) for r in read] == [kept, kept]
    assert [(r["message_id"], r["text"]) for r in read] == [(7, "hello 👋 world"), (8, "")]
