"""Per-group cursors: what has been published, as plain values with pure arithmetic.

`cursor` means: every message with id <= cursor that an ascending history walk returns has been published.
`above` holds ids > cursor already published from live updates, as inclusive ranges so a busy group's
state stays small. Telegram ids are not contiguous (deleted messages; basic groups share the account's id
counter), so the cursor never waits for "the next id": it only moves when an ascending walk covers ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final

from emitter.digest import EMPTY, Digest
from emitter.read_budget import Spending

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
    # Most cursors have no live range: asked once per event or more, that case must not build a generator.
    return bool(ranges) and any(lo <= msg_id <= hi for lo, hi in ranges)


@dataclass(frozen=True, slots=True)
class PeerRef:
    """How to address a group without resolving it again: Telegram's input peer, and the name it was found by.

    Stored with the cursor (in the same transaction), so a restart makes no `ResolveUsername` and no dialog
    walk for a group it has seen before; a StringSession keeps no entity cache of its own.
    """

    kind: str
    """"channel" (channels and supergroups) or "chat" (basic groups)."""
    id: int
    """The bare id (not the marked one)."""
    access_hash: int = 0
    username: str | None = None

    def to_json(self) -> dict[str, object]:
        """The cursor document's `peer` member."""
        doc: dict[str, object] = {"kind": self.kind, "id": self.id}
        if self.access_hash:
            doc["hash"] = self.access_hash
        if self.username:
            doc["username"] = self.username
        return doc

    @classmethod
    def from_json(cls, doc: object) -> PeerRef:
        """Parse `to_json` output; raises ValueError on anything else."""
        if not isinstance(doc, dict) or doc.get("kind") not in ("channel", "chat"):
            raise ValueError(f"not a peer: {doc!r}")
        username = doc.get("username")
        name = None if username is None else str(username)
        return cls(str(doc["kind"]), int(doc["id"]), int(doc.get("hash", 0)), name)


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
    peer: PeerRef | None = None
    """How to reach the group without resolving it (None until a Telegram source resolved it)."""
    pts: int | None = None
    """The update position every change up to which is published: the channel's pts, or for a basic group
    the account's (basic groups share the account's update box). None until a Telegram source learned it."""
    pts_date: int | None = None
    """For basic groups: the account box's date (Unix seconds) at `pts`, which updates.getDifference wants."""
    digest: Digest = EMPTY
    """Hashes of the newest published messages (`emitter.digest`), for rescans and basic-group deletions."""
    heartbeat: int | None = None
    """When the source last said the group is alive (Unix ms), written even while the group is quiet."""
    last_event: int | None = None
    """When the newest published message was sent (Unix ms)."""
    reads: Spending = ()
    """Messages backfill walks of this group read, in hourly buckets (`emitter.read_budget`): stored with the
    cursor so the account's rolling read budget survives restarts."""

    def is_published(self, msg_id: int) -> bool:
        """Whether a NEW event for `msg_id` was already published (so another one would duplicate)."""
        return msg_id <= self.cursor or (bool(self.above) and _contains(self.above, msg_id))

    def with_live(self, msg_id: int) -> GroupCursor:
        """The cursor after publishing `msg_id` from a live update (the cursor itself cannot move)."""
        if self.is_published(msg_id):
            return self
        return replace(self, above=_add_id(self.above, msg_id))

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
        return replace(self, cursor=cursor, above=tuple(above))

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
        return replace(self, failed=reason)

    def with_move(self, new_group_id: int) -> GroupCursor:
        """The cursor of a migrated basic group, pointing at its supergroup."""
        return replace(self, moved_to=new_group_id)

    def with_peer(self, peer: PeerRef | None) -> GroupCursor:
        """The cursor remembering how to reach its group."""
        return self if peer is None or peer == self.peer else replace(self, peer=peer)

    def to_bytes(self) -> bytes:
        """A compact JSON document, readable with any tool that can read the cursor topic."""
        doc: dict[str, object] = {"v": _FORMAT_VERSION, "group_id": self.group_id, "cursor": self.cursor}
        if self.above:
            doc["above"] = [list(r) for r in self.above]
        if self.failed is not None:
            doc["failed"] = self.failed
        if self.moved_to is not None:
            doc["moved_to"] = self.moved_to
        if self.peer is not None:
            doc["peer"] = self.peer.to_json()
        if self.pts is not None:
            doc["pts"] = self.pts
        if self.pts_date is not None:
            doc["date"] = self.pts_date
        if self.digest:
            doc["digest"] = self.digest.to_text()
        if self.heartbeat is not None:
            doc["hb"] = self.heartbeat
        if self.last_event is not None:
            doc["last"] = self.last_event
        if self.reads:
            doc["reads"] = [list(b) for b in self.reads]
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
            peer = doc.get("peer")
            digest = doc.get("digest")
            return cls(
                int(doc["group_id"]),
                int(doc["cursor"]),
                above,
                None if failed is None else str(failed),
                None if moved_to is None else int(moved_to),
                None if peer is None else PeerRef.from_json(peer),
                _opt_int(doc.get("pts")),
                _opt_int(doc.get("date")),
                EMPTY if digest is None else Digest.from_text(str(digest)),
                _opt_int(doc.get("hb")),
                _opt_int(doc.get("last")),
                tuple((int(start), int(n)) for start, n in doc.get("reads", ())),
            )
        except (KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"not a cursor record: {e}") from e


def _opt_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]  # ValueError/TypeError on junk
