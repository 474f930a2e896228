"""Avro encoding of `MessageEvent`s, and decoding for consumers.

Wire formats, both self-describing so that a consumer can find the schema from the bytes alone:

- Avro single-object encoding (the default): ``C3 01`` + the schema's 8-byte CRC-64-AVRO fingerprint
  (little-endian) + the Avro binary body.
- Confluent framing (when a schema registry is configured): ``00`` + the 4-byte big-endian schema id + body.

Consumers call `decode(value)`; the Confluent form also needs `registry=` (a URL, or a client from
`emitter.schema_registry`, which fetches each schema id once).

Encoding goes through a writer generated from the schema (`emitter.avro_writer`), byte for byte what
fastavro's `schemaless_writer` writes for `to_avro(event)`, at a fraction of the cost; fastavro still writes
what that writer declines (see its docstring).
"""

from __future__ import annotations

import io
import json
import logging
import struct
from collections.abc import Mapping
from datetime import datetime
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Final, Protocol

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from emitter import records
from emitter.avro_writer import RecordWriter, UnsupportedSchema, UnsupportedValue, build_writer
from emitter.records import (
    Action,
    CommentOf,
    Entity,
    Forward,
    Media,
    MessageEvent,
    Reaction,
    Reply,
    Sender,
    Topic,
)

SCHEMA_DIR: Final = Path(__file__).resolve().parent / "schemas"
MESSAGE_SCHEMA_FILE: Final = SCHEMA_DIR / "telegram_message.avsc"
PREVIOUS_SCHEMA_DIR: Final = SCHEMA_DIR / "previous"
"""Earlier versions of the schemas: the records they wrote stay in Kafka after an upgrade, and `decode` reads
them by their fingerprint."""
SINGLE_OBJECT_MAGIC: Final = b"\xc3\x01"
CONFLUENT_MAGIC: Final = b"\x00"
CONTENT_TYPE_SINGLE_OBJECT: Final = "application/vnd.apache.avro+binary; schema=io.telegram_emitter.v1.MessageEvent"
CONTENT_TYPE_CONFLUENT: Final = "application/vnd.confluent.avro"

_log = logging.getLogger("emitter.codec")

AvroRecord = dict[str, Any]
"""A decoded record: Avro's generic representation (dicts, lists, aware datetimes for timestamps)."""


class Schema:
    """A parsed Avro schema with its fingerprint, parsed once and reused for every record."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = dict(raw)
        self.parsed = fastavro.parse_schema(dict(raw))
        self.canonical = to_parsing_canonical_form(self.parsed)
        self.fingerprint = bytes.fromhex(fingerprint(self.canonical, "CRC-64-AVRO"))

    @classmethod
    def load(cls, path: Path) -> Schema:
        """Read an `.avsc` file."""
        return cls(json.loads(path.read_text(encoding="utf-8")))

    @property
    def full_name(self) -> str:
        """The schema's namespace-qualified name."""
        return f"{self.raw.get('namespace', '')}.{self.raw['name']}".lstrip(".")

    @cached_property
    def writer(self) -> RecordWriter | None:
        """The writer generated for this schema over `emitter.records`' classes; None if it cannot be built."""
        try:
            return build_writer(self.parsed, RECORD_TYPES)
        except UnsupportedSchema as e:
            _log.warning("Avro schema %s: %s; encoding with fastavro's generic writer", self.full_name, e)
            return None


RECORD_TYPES: Final[Mapping[str, type]] = {
    name: value
    for name, value in vars(records).items()
    if isinstance(value, type) and value.__module__ == records.__name__
}
"""The Python class of each Avro record and enum, by its short name (`MessageEvent`, `Group`, `EventType`…)."""


@cache
def message_schema() -> Schema:
    """The schema of the records on `telegram-messages`."""
    return Schema.load(MESSAGE_SCHEMA_FILE)


@cache
def _current_by_name() -> dict[str, Schema]:
    schemas = (Schema.load(p) for p in sorted(SCHEMA_DIR.glob("*.avsc")))
    return {s.full_name: s for s in schemas}


@cache
def _known_by_fingerprint() -> dict[bytes, Schema]:
    previous = (Schema.load(p) for p in sorted(PREVIOUS_SCHEMA_DIR.glob("*.avsc")))
    return {s.fingerprint: s for s in (*previous, *_current_by_name().values())}


# --- MessageEvent -> Avro generic record -------------------------------------------------------------


def _sender(s: Sender | None) -> AvroRecord | None:
    if s is None:
        return None
    return {"id": s.id, "kind": s.kind.value, "name": s.name, "username": s.username, "is_bot": s.is_bot}


def _entity(e: Entity) -> AvroRecord:
    return {
        "type": e.type,
        "offset": e.offset,
        "length": e.length,
        "url": e.url,
        "user_id": e.user_id,
        "language": e.language,
        "custom_emoji_id": e.custom_emoji_id,
    }


def _reply(r: Reply | None) -> AvroRecord | None:
    if r is None:
        return None
    return {
        "to_message_id": r.to_message_id,
        "to_top_id": r.to_top_id,
        "forum_topic": r.forum_topic,
        "to_peer_id": r.to_peer_id,
        "quote_text": r.quote_text,
    }


def _forward(f: Forward | None) -> AvroRecord | None:
    if f is None:
        return None
    return {
        "from_id": f.from_id,
        "from_name": f.from_name,
        "date": f.date,
        "channel_post": f.channel_post,
        "post_author": f.post_author,
        "saved_from_peer": f.saved_from_peer,
        "saved_from_msg_id": f.saved_from_msg_id,
    }


_MEDIA_FIELDS: Final = tuple(f for f in Media.__slots__ if f != "poll_answers")


def _media(m: Media | None) -> AvroRecord | None:
    if m is None:
        return None
    out: AvroRecord = {name: getattr(m, name) for name in _MEDIA_FIELDS}
    out["poll_answers"] = list(m.poll_answers)
    return out


def _reaction(r: Reaction) -> AvroRecord:
    return {"emoji": r.emoji, "count": r.count}


def _action(a: Action | None) -> AvroRecord | None:
    if a is None:
        return None
    return {
        "type": a.type,
        "actor_id": a.actor_id,
        "user_ids": list(a.user_ids),
        "title": a.title,
        "peer_id": a.peer_id,
        "message_id": a.message_id,
        "text": a.text,
    }


def _topic(t: Topic | None) -> AvroRecord | None:
    return None if t is None else {"id": t.id, "title": t.title}


def _comment_of(c: CommentOf | None) -> AvroRecord | None:
    return None if c is None else {"channel_id": c.channel_id, "post_id": c.post_id}


def to_avro(event: MessageEvent) -> AvroRecord:
    """The Avro generic record of an event (field for field; enums as their names)."""
    g = event.group
    return {
        "event_type": event.event_type.value,
        "group": {"id": g.id, "title": g.title, "username": g.username, "type": g.type.value},
        "message_id": event.message_id,
        "date": event.date,
        "edit_date": event.edit_date,
        "sender": _sender(event.sender),
        "text": event.text,
        "entities": [_entity(e) for e in event.entities],
        "reply": _reply(event.reply),
        "forward": _forward(event.forward),
        "media": _media(event.media),
        "grouped_id": event.grouped_id,
        "views": event.views,
        "forwards": event.forwards,
        "replies": event.replies,
        "reactions": [_reaction(r) for r in event.reactions],
        "post_author": event.post_author,
        "via_bot_id": event.via_bot_id,
        "pinned": event.pinned,
        "is_post": event.is_post,
        "action": _action(event.action),
        "source": event.source.value,
        "ingest_time": event.ingest_time,
        "extra": dict(event.extra),
        "truncated": event.truncated,
        "change": event.change.value,
        "pts": event.pts,
        "topic": _topic(event.topic),
        "comment_of": _comment_of(event.comment_of),
    }


# --- framing -------------------------------------------------------------------------------------------


class Encoder:
    """Encodes events for Kafka: Avro binary behind a single-object or Confluent header."""

    def __init__(self, schema: Schema | None = None, confluent_schema_id: int | None = None) -> None:
        self.schema = schema or message_schema()
        self._writer = self.schema.writer
        self.fallbacks = 0
        """Events the specialised writer declined and fastavro encoded instead."""
        if confluent_schema_id is None:
            self.header = SINGLE_OBJECT_MAGIC + self.schema.fingerprint
            self.content_type = CONTENT_TYPE_SINGLE_OBJECT
        else:
            self.header = CONFLUENT_MAGIC + struct.pack(">I", confluent_schema_id)
            self.content_type = CONTENT_TYPE_CONFLUENT

    @property
    def specialised(self) -> bool:
        """Whether events go through the writer generated for the schema (else all through fastavro)."""
        return self._writer is not None

    def encode(self, event: MessageEvent) -> bytes:
        """The framed Avro bytes of one event."""
        if self._writer is not None:
            out = bytearray(self.header)
            try:
                self._writer(out, event)
                return bytes(out)
            except UnsupportedValue:
                # Outside the writer's domain (a naive datetime, an out-of-range int…): fastavro writes it as
                # it always has, or raises its own error.
                self.fallbacks += 1
        return self.encode_record(to_avro(event))

    def encode_record(self, record: AvroRecord) -> bytes:
        """The framed Avro bytes of a generic record of this encoder's schema."""
        buf = io.BytesIO()
        buf.write(self.header)
        fastavro.schemaless_writer(buf, self.schema.parsed, record)
        return buf.getvalue()


class SchemaLookup(Protocol):
    """Finds a Confluent-framed value's writer schema by its registry id (`emitter.schema_registry`)."""

    def schema_by_id(self, schema_id: int) -> Schema:
        """The schema registered with this id."""
        ...


def confluent_schema_id(value: bytes) -> int | None:
    """The registry schema id of a Confluent-framed value; None for any other bytes."""
    if value[:1] == CONFLUENT_MAGIC and len(value) >= 5:
        return int(struct.unpack(">I", value[1:5])[0])
    return None


@cache
def _registry_for_url(url: str) -> SchemaLookup:
    # One client per URL for the life of the process: its schema cache is what spares a request per record.
    from emitter.schema_registry import BlockingSchemaRegistry  # noqa: PLC0415 - the codec needs no HTTP otherwise

    return BlockingSchemaRegistry(url)


def decode(value: bytes, *, registry: SchemaLookup | str | None = None) -> AvroRecord:
    """The record inside a framed value from `telegram-messages`.

    Args:
        value: the Kafka record value.
        registry: for Confluent-framed values, the schema registry's URL (one cached client per URL) or a
            client such as `emitter.schema_registry.BlockingSchemaRegistry` (credentials, TLS); each schema
            id is fetched once. Not needed for single-object values.

    Returns:
        A single-object value in the current schema's shape, whichever version of it wrote the value (an
        earlier version's record gets the defaults of the fields added since); a Confluent-framed value as
        its writer schema, from the registry, has it.

    Raises:
        ValueError: the bytes are not a framed record of a known schema.
    """
    schema_id = confluent_schema_id(value)
    if value[:2] == SINGLE_OBJECT_MAGIC:
        schema = _known_by_fingerprint().get(value[2:10])
        if schema is None:
            raise ValueError(f"unknown schema fingerprint {value[2:10].hex()}: not a schema in {SCHEMA_DIR}")
        reader = _current_by_name().get(schema.full_name, schema)
        body = value[10:]
    elif schema_id is not None:
        if registry is None:
            raise ValueError("Confluent-framed record: pass registry= (the schema registry URL)")
        lookup = _registry_for_url(registry) if isinstance(registry, str) else registry
        schema = reader = lookup.schema_by_id(schema_id)
        body = value[5:]
    else:
        raise ValueError(f"not a framed Avro record (first bytes {value[:2].hex() or 'empty'})")
    record = fastavro.schemaless_reader(io.BytesIO(body), schema.parsed, reader.parsed)
    if not isinstance(record, dict):
        raise ValueError(f"{schema.full_name} is not a record schema")  # noqa: TRY004 - bad data, not a bad call
    return record


def to_json_ready(record: AvroRecord) -> Any:
    """A decoded record with datetimes as ISO 8601 strings, ready for `json.dumps`."""
    if isinstance(record, dict):
        return {k: to_json_ready(v) for k, v in record.items()}
    if isinstance(record, list):
        return [to_json_ready(v) for v in record]
    if isinstance(record, datetime):
        return record.isoformat().replace("+00:00", "Z")
    return record
