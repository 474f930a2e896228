"""A deterministic simulated Telegram group, so the main job runs with no Telegram account.

Each demo group has `history` messages at start and gains `rate` new ones per second. Message `n`'s
text, sender and extras are a pure function of (group, n), and every 7th message edits an earlier one and
every 13th deletes one, so a restart from any cursor reproduces exactly the same stream.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Final, Self

from emitter.protocols import CursorView, Page
from emitter.records import (
    Entity,
    EventType,
    Group,
    GroupType,
    MessageEvent,
    Reply,
    Sender,
    Source,
    utc_now,
)

_WORDS: Final = [
    "kafka",
    "exactly",
    "once",
    "cursor",
    "backfill",
    "sweep",
    "telegram",
    "avro",
    "schema",
    "partition",
    "offset",
    "transaction",
    "compacted",
    "topic",
    "record",
    "latency",
    "replica",
    "broker",
    "consumer",
    "producer",
    "group",
    "channel",
    "message",
]
_SENDERS: Final = ((1001, "Ada", "ada"), (1002, "Linus", None), (1003, "Grace", "grace_h"), (1004, "Ken", None))
_EPOCH: Final = datetime(2026, 1, 1, tzinfo=UTC)
PAGE_SIZE: Final = 100


def demo_group(index: int) -> Group:
    """The `index`-th demo group (a supergroup with a stable marked id)."""
    return Group(
        id=-(10**12 + 777_000 + index),
        title=f"Demo group {index}",
        username=f"emitter_demo_{index}",
        type=GroupType.SUPERGROUP,
    )


def _digest(group_id: int, n: int) -> bytes:
    return hashlib.blake2b(f"{group_id}:{n}".encode(), digest_size=8).digest()


def demo_message(group: Group, n: int, *, source: Source, ingest_time: datetime) -> MessageEvent:
    """Message `n` of a demo group, the same on every run."""
    h = _digest(group.id, n)
    words = [_WORDS[b % len(_WORDS)] for b in h[:5]]
    text = f"#{n} " + " ".join(words)
    sender_id, name, username = _SENDERS[h[5] % len(_SENDERS)]
    first = text.index(words[0])
    return MessageEvent(
        event_type=EventType.NEW,
        group=group,
        message_id=n,
        source=source,
        ingest_time=ingest_time,
        date=_EPOCH + timedelta(seconds=n),
        sender=Sender(id=sender_id, name=name, username=username),
        text=text,
        entities=(Entity(type="bold", offset=first, length=len(words[0])),),
        reply=Reply(to_message_id=n - 1 - h[6] % 5) if n > 6 and h[6] % 4 == 0 else None,
    )


def _followers(group: Group, n: int, ingest_time: datetime) -> list[MessageEvent]:
    """The edit and delete events that message `n` brings along."""
    out: list[MessageEvent] = []
    if n % 7 == 0 and n > 3:
        edited = demo_message(group, n - 3, source=Source.DEMO, ingest_time=ingest_time)
        out.append(
            MessageEvent(
                event_type=EventType.EDIT,
                group=group,
                message_id=n - 3,
                source=Source.DEMO,
                ingest_time=ingest_time,
                date=edited.date,
                edit_date=_EPOCH + timedelta(seconds=n),
                sender=edited.sender,
                text=edited.text + " (edited)",
                entities=edited.entities,
            )
        )
    if n % 13 == 0 and n > 5:
        out.append(
            MessageEvent(
                event_type=EventType.DELETE, group=group, message_id=n - 5, source=Source.DEMO, ingest_time=ingest_time
            )
        )
    return out


class DemoSource:
    """Simulated groups: backfill their history, then follow new messages at a steady rate."""

    name = "demo"

    def __init__(
        self,
        groups: int = 2,
        *,
        history: int = 1000,
        rate: float = 5.0,
        limit: int | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._groups = [demo_group(i) for i in range(1, groups + 1)]
        self.history = history
        self.rate = rate
        self.limit = limit
        self._clock = clock

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def groups(self) -> Sequence[Group]:
        """The simulated groups."""
        return list(self._groups)

    def _page(self, group: Group, ids: range, source: Source, total: int | None = None) -> Page:
        now = self._clock()
        events: list[MessageEvent] = []
        for n in ids:
            events.append(demo_message(group, n, source=source, ingest_time=now))
            events.extend(_followers(group, n, now))
        return Page(group, events, walked_to=ids[-1], total=total)

    async def pages(self, group: Group, cursor: CursorView) -> AsyncIterator[Page]:
        """History from the cursor in pages of 100, then one new message every 1/rate seconds."""
        last = self.limit if self.limit is not None else None
        n = max(cursor(group.id).cursor, 0) + 1
        history_end = self.history if last is None else min(self.history, last)
        while n <= history_end:
            ids = range(n, min(n + PAGE_SIZE, history_end + 1))
            yield self._page(group, ids, Source.BACKFILL, total=history_end)
            n = ids[-1] + 1
            await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while last is None or n <= last:
            next_at += 1 / self.rate
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            yield self._page(group, range(n, n + 1), Source.LIVE)
            n += 1
