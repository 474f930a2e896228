"""Per-group cursors: what has been published, as plain values with pure arithmetic.

`cursor` means: every message with id <= cursor that an ascending history walk returns has been published.
`above` holds ids > cursor already published from live updates, as inclusive ranges so a busy group's
state stays small. Telegram ids are not contiguous (deleted messages; basic groups share the account's id
counter), so the cursor never waits for "the next id": it only moves when an ascending walk covers ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

Ranges = tuple[tuple[int, int], ...]
"""Sorted, disjoint, non-adjacent inclusive id ranges."""

_FORMAT_VERSION = 1

NEVER_WALKED: Final = -(2**63)
"""The cursor of a group no walk has covered yet. Not 0: exports carry history migrated from a basic group
under negative ids, which a cursor of 0 would count as published."""


def _add_id(ranges: Ranges, msg_id: int) -> Ranges:
    """`ranges` with `msg_id` added, merged with its neighbours."""
    return _merge((*ranges, (msg_id, msg_id)))


def _merge(ranges: Iterable[tuple[int, int]]) -> Ranges:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _contains(ranges: Ranges, msg_id: int) -> bool:
    return any(lo <= msg_id <= hi for lo, hi in ranges)


@dataclass(frozen=True, slots=True)
class GroupCursor:
    """The publish position of one group."""

    group_id: int
    cursor: int = NEVER_WALKED
    above: Ranges = ()
    failed: str | None = None
    """Why the group stopped (lost access, …), or None while it is healthy."""
    moved_to: int | None = None
    """The supergroup a basic group migrated to, once the emitter follows it there."""

    def is_published(self, msg_id: int) -> bool:
        """Whether a NEW event for `msg_id` was already published (so another one would duplicate)."""
        return msg_id <= self.cursor or _contains(self.above, msg_id)

    def with_live(self, msg_id: int) -> GroupCursor:
        """The cursor after publishing `msg_id` from a live update (the cursor itself cannot move)."""
        if self.is_published(msg_id):
            return self
        return GroupCursor(self.group_id, self.cursor, _add_id(self.above, msg_id), self.failed, self.moved_to)

    def walked_to(self, msg_id: int) -> GroupCursor:
        """The cursor after an ascending walk covered every id up to `msg_id`.

        Live ranges that touch the new cursor are folded in: ids in them are published and contiguous
        with it, so a later walk need not read them again.
        """
        cursor = max(self.cursor, msg_id)
        above: list[tuple[int, int]] = []
        for lo, hi in self.above:
            if hi <= cursor:
                continue
            if lo <= cursor + 1:
                cursor = hi
                continue
            above.append((lo, hi))
        return GroupCursor(self.group_id, cursor, tuple(above), self.failed, self.moved_to)

    def holes(self, limit: int) -> list[int]:
        """Ids between the cursor and the highest live id that no one has published yet, at most `limit`."""
        out: list[int] = []
        prev = max(self.cursor, 0)
        for lo, hi in self.above:
            for msg_id in range(prev + 1, lo):
                if len(out) == limit:
                    return out
                out.append(msg_id)
            prev = hi
        return out

    @property
    def highest(self) -> int:
        """The highest id known published."""
        return self.above[-1][1] if self.above else self.cursor

    def with_failure(self, reason: str | None) -> GroupCursor:
        """The cursor marked failed (or healthy again with None)."""
        return GroupCursor(self.group_id, self.cursor, self.above, reason, self.moved_to)

    def with_move(self, new_group_id: int) -> GroupCursor:
        """The cursor of a migrated basic group, pointing at its supergroup."""
        return GroupCursor(self.group_id, self.cursor, self.above, self.failed, new_group_id)

    def to_bytes(self) -> bytes:
        """A compact JSON document, readable with any tool that can read the cursor topic."""
        doc: dict[str, object] = {"v": _FORMAT_VERSION, "group_id": self.group_id, "cursor": self.cursor}
        if self.above:
            doc["above"] = [list(r) for r in self.above]
        if self.failed is not None:
            doc["failed"] = self.failed
        if self.moved_to is not None:
            doc["moved_to"] = self.moved_to
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> GroupCursor:
        """Parse `to_bytes` output; raises ValueError on anything else."""
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict):
                raise ValueError("not a cursor record: expected a JSON object")  # noqa: TRY004 - bad data
            if doc.get("v") != _FORMAT_VERSION:
                raise ValueError(f"unsupported cursor format version {doc.get('v')!r}")
            above = _merge((int(lo), int(hi)) for lo, hi in doc.get("above", ()))
            failed = doc.get("failed")
            moved_to = doc.get("moved_to")
            return cls(
                int(doc["group_id"]),
                int(doc["cursor"]),
                above,
                None if failed is None else str(failed),
                None if moved_to is None else int(moved_to),
            )
        except (KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"not a cursor record: {e}") from e
