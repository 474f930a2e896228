"""Small builders of records for tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from emitter.records import EventType, Group, GroupType, MessageEvent, Source

GROUP = Group(id=-1001234567890, title="Test group", username="test_group", type=GroupType.SUPERGROUP)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def event(message_id: int, *, group: Group = GROUP, kind: EventType = EventType.NEW, **fields: Any) -> MessageEvent:
    """A minimal event of `group`."""
    fields.setdefault("source", Source.BACKFILL)
    fields.setdefault("ingest_time", T0)
    fields.setdefault("date", T0)
    return MessageEvent(event_type=kind, group=group, message_id=message_id, **fields)
