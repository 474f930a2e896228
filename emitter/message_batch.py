"""`MessageBatch`: tgdata 0.1.4's versioned, self-hashing snapshot of one bounded history read (pure).

A batch is the messages after an exclusive `after_id`, oldest first, at most `limit` of them, as canonical
JSON (sorted keys, no spaces) whose SHA-256 is its `batch_id`: the same read gives the same id, so a
receiver can deduplicate replays, and a caller advances its own cursor to `next_after_id` only once the
receiver acknowledged the batch. The envelope and record fields are tgdata's ("tgdata.message-batch",
version 1): ids are decimal strings (64-bit safe in JSON), dates canonical UTC with microseconds and "Z".
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from emitter.records import Media, MessageEvent

__all__ = [
    "MAX_BATCH_MESSAGES",
    "SCHEMA",
    "VERSION",
    "BatchFormatError",
    "MessageBatch",
    "batch_record",
]

SCHEMA: Final = "tgdata.message-batch"
VERSION: Final = 1
MAX_BATCH_MESSAGES: Final = 10_000
MAX_MESSAGE_ID: Final = (1 << 31) - 1

StopReason = Literal["limit", "end"]
"""limit: the batch is full, more may follow; end: the history (or the window) had no more."""

_KINDS: Final = {"animation": "gif"}
"""Our media types that tgdata names differently."""
_TGDATA_KINDS: Final = frozenset(
    {"photo", "video", "video_note", "gif", "audio", "voice", "document", "sticker", "webpage", "contact"}
    | {"geo", "poll", "other"}
)
_GEO: Final = frozenset({"geo", "geo_live", "venue"})
_DOWNLOADABLE: Final = frozenset({"photo", "video", "video_note", "gif", "audio", "voice", "document", "sticker"})
_ENVELOPE: Final = frozenset(
    {"schema", "version", "batch_id", "chat_id", "after_id", "next_after_id", "media_mode", "stop_reason"}
    | {"messages"}
)


class BatchFormatError(ValueError):
    """A batch document that is not a valid tgdata message batch (or whose batch_id does not match)."""


def _id(value: int | None) -> str | None:
    return None if value is None else str(value)


def _timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _media(media: Media | None) -> dict[str, Any] | None:
    if media is None:
        return None
    kind = _KINDS.get(media.type, "geo" if media.type in _GEO else media.type)
    kind = kind if kind in _TGDATA_KINDS else "other"
    return {
        "kind": kind,
        "id": _id(media.id),
        "mime_type": media.mime_type,
        "file_name": media.file_name,
        "size": media.size,
        "downloadable": kind in _DOWNLOADABLE and media.id is not None,
        "blob": None,
    }


def batch_record(event: MessageEvent) -> dict[str, Any]:
    """One message as a tgdata batch record (`service_action` is the emitter's action name, chat_create…)."""
    sender = event.sender
    return {
        "id": str(event.message_id),
        "kind": "service" if event.action is not None else "message",
        "date": _timestamp(event.date),
        "edit_date": _timestamp(event.edit_date),
        "text": event.text if event.action is None else None,
        "sender": {
            "id": None if sender is None else str(sender.id),
            "name": None if sender is None else sender.name,
            "username": None if sender is None else sender.username,
        },
        "post_author": event.post_author,
        "reply_to_id": _id(None if event.reply is None else event.reply.to_message_id),
        "forward_from_id": _id(None if event.forward is None else event.forward.from_id),
        "grouped_id": _id(event.grouped_id),
        "service_action": None if event.action is None else event.action.type,
        "media": _media(event.media),
    }


def _canonical(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _digest(document: dict[str, Any]) -> str:
    payload = {k: v for k, v in document.items() if k != "batch_id"}
    return hashlib.sha256(_canonical(payload).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class MessageBatch:
    """One bounded, oldest-first read as tgdata's message batch v1; `batch_id` is its content's SHA-256."""

    encoded: str
    """The canonical JSON text, batch_id included."""

    @classmethod
    def of(cls, chat_id: int, after_id: int, events: Sequence[MessageEvent], stop_reason: StopReason) -> MessageBatch:
        """The batch of `events` (ascending ids above `after_id`) read from chat `chat_id` (marked)."""
        records = [batch_record(e) for e in events]
        document: dict[str, Any] = {
            "schema": SCHEMA,
            "version": VERSION,
            "chat_id": str(chat_id),
            "after_id": str(after_id),
            "next_after_id": records[-1]["id"] if records else str(after_id),
            "media_mode": "references",
            "stop_reason": stop_reason,
            "messages": records,
        }
        document["batch_id"] = _digest(document)
        return cls(_canonical(document))

    @classmethod
    def from_json(cls, data: str | bytes) -> MessageBatch:
        """Load a saved batch, checking its envelope, its ascending ids and its batch_id."""
        try:
            document = json.loads(data)
        except (ValueError, UnicodeError) as e:
            raise BatchFormatError(f"not message-batch JSON: {e}") from None
        if not isinstance(document, dict) or set(document) != _ENVELOPE:
            raise BatchFormatError(f"expected the fields {sorted(_ENVELOPE)} of a {SCHEMA} document")
        if (document["schema"], document["version"]) != (SCHEMA, VERSION):
            raise BatchFormatError(f"unsupported schema {document['schema']!r} v{document['version']!r}")
        ids = [int(r["id"]) for r in document["messages"]]
        if ids != sorted(set(ids)) or (ids and ids[0] <= int(document["after_id"])):
            raise BatchFormatError("message ids must increase strictly after after_id")
        if document["batch_id"] != _digest(document):
            raise BatchFormatError("batch_id does not match the payload")
        return cls(_canonical(document))

    def to_json(self) -> str:
        """The canonical JSON text, batch_id included."""
        return self.encoded

    def to_dict(self) -> dict[str, Any]:
        """A fresh copy of the document."""
        document: dict[str, Any] = json.loads(self.encoded)
        return document

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``<batch_id>.json`` into `directory` (created if needed; an existing one is kept)."""
        path = Path(directory) / f"{self.batch_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_text(self.encoded, encoding="utf-8")
            tmp.replace(path)
        return path

    @property
    def batch_id(self) -> str:
        """SHA-256 (hex) of the canonical document without batch_id."""
        return str(self.to_dict()["batch_id"])

    @property
    def chat_id(self) -> int:
        """Marked id of the chat read."""
        return int(self.to_dict()["chat_id"])

    @property
    def after_id(self) -> int:
        """The exclusive cursor the read started after."""
        return int(self.to_dict()["after_id"])

    @property
    def next_after_id(self) -> int:
        """The cursor for the next read: the last message's id, or `after_id` if the batch is empty."""
        return int(self.to_dict()["next_after_id"])

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The records, oldest first."""
        messages: list[dict[str, Any]] = self.to_dict()["messages"]
        return messages

    @property
    def stop_reason(self) -> StopReason:
        """ "limit" (full: read on from next_after_id) or "end" (nothing more right now)."""
        reason: StopReason = self.to_dict()["stop_reason"]
        return reason

    @property
    def media_mode(self) -> str:
        """Always "references": media is described, not downloaded (use `download_media_by_id`)."""
        return str(self.to_dict()["media_mode"])
