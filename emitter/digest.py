"""What was published of a group's most recent messages, small enough to travel with its cursor.

Telegram's difference says which messages changed while the emitter was away, but not always: past what it
keeps it answers "too long", and reaction changes never enter it at all. Then the only way to know what
changed is to re-read the recent messages and compare them with what consumers already have. A `Digest`
holds, for the newest `limit` message ids of a group, two 32-bit hashes of the published version: one of
the message itself and one of its reactions. It is written with the cursor (in the same transaction as
the records it describes), so it survives restarts, and it also tells which basic group an id belongs to
(basic-group deletions carry no chat id).

Pure: no I/O. Hashes are CRC-32, stable across processes and Python versions (unlike `hash()`).
"""

from __future__ import annotations

import base64
import itertools
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

from emitter.records import MessageEvent

DEFAULT_LIMIT: Final = 500
"""Messages per group a digest remembers, when nothing else is configured (see `telegram.rescan_window`)."""

Entry = tuple[int, int]
"""(message hash, reactions hash) of one published message."""


def message_hash(event: MessageEvent) -> int:
    """A hash of what an edit can change: text, entities, media and pinning.

    Not `edit_date`: Telegram bumps it (with `edit_hide`) for reaction changes too, and those are told apart
    by the reactions hash. Not views, forwards or replies: they change all the time and are not edits.
    """
    media = event.media
    if media is None and not event.entities and not event.pinned:
        # The common plain-text message: the same CRC as the joined parts below, without building them.
        return zlib.crc32(b"\x00\x00\x00", zlib.crc32(event.text.encode("utf-8", "surrogatepass")))
    parts = (
        event.text,
        repr(event.entities) if event.entities else "",
        f"{media.type}:{media.id}:{media.size}:{media.poll_closed}:{media.poll_total_voters}" if media else "",
        "p" if event.pinned else "",
    )
    return zlib.crc32("\x00".join(parts).encode("utf-8", "surrogatepass"))


def reactions_hash(event: MessageEvent) -> int:
    """A hash of the reactions and their counts (0 for none)."""
    if not event.reactions:
        return 0
    text = ";".join(f"{r.emoji}={r.count}" for r in sorted(event.reactions, key=lambda r: r.emoji))
    return zlib.crc32(text.encode("utf-8", "surrogatepass")) or 1


def entry_of(event: MessageEvent) -> Entry:
    """The digest entry of a published NEW or EDIT event."""
    return message_hash(event), reactions_hash(event)


class Digest:
    """The hashes of a group's newest published messages, by id. Immutable: changes return a new digest."""

    __slots__ = ("_bytes", "_entries")

    def __init__(self, entries: Mapping[int, Entry] | None = None) -> None:
        # Kept in ascending id order, so the oldest ids are the first ones: trimming and `lowest` are cheap.
        self._entries: dict[int, Entry] = dict(sorted((entries or {}).items()))
        self._bytes: bytes | None = None

    @classmethod
    def _sorted(cls, entries: dict[int, Entry]) -> Digest:
        digest = cls.__new__(cls)
        digest._entries, digest._bytes = entries, None
        return digest

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[int]:
        return iter(self._entries)

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._entries

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Digest) and other._entries == self._entries

    def __hash__(self) -> int:
        return hash(frozenset(self._entries.items()))

    def __repr__(self) -> str:
        return f"Digest({len(self._entries)} ids)"

    def get(self, msg_id: int) -> Entry | None:
        """The entry of `msg_id`, or None if the digest does not know it."""
        return self._entries.get(msg_id)

    @property
    def lowest(self) -> int | None:
        """The oldest id the digest knows (below it, it knows nothing)."""
        return next(iter(self._entries), None)

    def updated(self, changes: Iterable[tuple[int, Entry | None]], limit: int) -> Digest:
        """The digest with `changes` applied (an entry, or None for a deleted id), cut to the newest `limit`."""
        entries = dict(self._entries)
        top = next(reversed(entries), None)
        ordered = True
        for msg_id, entry in changes:
            if entry is None:
                entries.pop(msg_id, None)
            elif msg_id in entries:
                entries[msg_id] = entry
            else:
                ordered = ordered and (top is None or msg_id > top)
                top = msg_id if top is None or msg_id > top else top
                entries[msg_id] = entry
        if not ordered:  # an id below the newest one joined (a sweep's hole, a by-id fetch): sort again
            entries = dict(sorted(entries.items()))
        if len(entries) > limit:
            if limit <= 0:
                entries = {}
            else:  # the oldest ids are the first ones: drop them in place rather than copy the rest again
                for msg_id in list(itertools.islice(entries, len(entries) - limit)):
                    del entries[msg_id]
        return Digest._sorted(entries)

    def to_text(self) -> str:
        """Base64 of the sorted ids as varint deltas, each followed by its two hashes (9-10 bytes an id)."""
        if self._bytes is None:
            out = bytearray()
            prev = 0
            for msg_id in sorted(self._entries):
                _varint(out, _zigzag(msg_id - prev))
                prev = msg_id
                message, reactions = self._entries[msg_id]
                out += message.to_bytes(4, "big") + reactions.to_bytes(4, "big")
            self._bytes = bytes(out)
        return base64.b64encode(self._bytes).decode("ascii")

    @classmethod
    def from_text(cls, text: str) -> Digest:
        """Parse `to_text` output; raises ValueError on anything else."""
        try:
            data = base64.b64decode(text.encode("ascii"), validate=True)
        except (UnicodeEncodeError, ValueError) as e:
            raise ValueError(f"not a digest: {e}") from e
        entries: dict[int, Entry] = {}
        pos, prev = 0, 0
        while pos < len(data):
            delta, pos = _read_varint(data, pos)
            if pos + 8 > len(data):
                raise ValueError("not a digest: truncated entry")
            prev += _unzigzag(delta)
            entries[prev] = (int.from_bytes(data[pos : pos + 4], "big"), int.from_bytes(data[pos + 4 : pos + 8], "big"))
            pos += 8
        return cls(entries)


EMPTY: Final = Digest()


def _zigzag(n: int) -> int:
    return n * 2 if n >= 0 else -n * 2 - 1


def _unzigzag(n: int) -> int:
    return n // 2 if n % 2 == 0 else -(n + 1) // 2


def _varint(out: bytearray, n: int) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(data) or shift > 70:
            raise ValueError("not a digest: truncated id")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
