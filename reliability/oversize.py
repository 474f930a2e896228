"""Scenario 5: records larger than the broker accepts (max.message.bytes, about 1 MB by default): a 3 MB text
and a message with 20,000 entities, one in the backfill and one live, among ordinary messages.

With `kafka.oversize_policy=truncate` each is published once on the main topic, cut to fit and flagged
`truncated`; with `dead-letter` each goes to the dead-letter topic (header `emitter-dlq-reason`) and never to
the main topic. Either way the batch commits on the first try: no retry loop, no crash, the messages after
the poison ones flow.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from telethon.tl import types

from emitter.app import create_monitor
from emitter.clock import ScaledClock
from emitter.kafka_sink import KafkaSink
from emitter.telegram_client import client_options
from emitter.telegram_source import TelegramSource
from reliability.common import (
    SPEED,
    Broker,
    Consumed,
    Row,
    Tally,
    accepted_all,
    fresh_settings,
    read_committed,
    topics_of,
)
from tests.faketelegram import FakeTelegram

HUGE_TEXT = ("telegram kafka avro cursor " * 120_000)[:3_000_000]
"""3 MB of text (one character is one byte here)."""


def _many_entities() -> dict[str, Any]:
    """A 40,000-character text carrying 20,000 text links of some 70 bytes each (about 1.5 MB of entities)."""
    entities = [
        types.MessageEntityTextUrl(offset=2 * i, length=2, url=f"https://example.org/articles/{i:08d}/read-more")
        for i in range(20_000)
    ]
    return {"text": "ab" * 20_000, "entities": entities}


def run(broker: Broker, row: Row, *, seed: int, quick: bool) -> None:
    """Both policies, each on fresh topics; one row for the two (the same size with --quick: it is small)."""
    for policy in ("truncate", "dead-letter"):
        asyncio.run(_one(broker, policy, seed, row))


async def _one(broker: Broker, policy: str, seed: int, row: Row) -> None:
    fake = FakeTelegram(seed=seed, monotonic=ScaledClock(SPEED).monotonic)
    group = fake.add_channel("Poison", username="poison", megagroup=True)
    gid = fake.peer_id(group)
    fake.post_many(group, 50)
    big_text = fake.post(group, HUGE_TEXT, push=False).id  # reaches the emitter through the backfill
    fake.post_many(group, 50)
    settings = fresh_settings(broker.bootstrap, kafka={"oversize_policy": policy})
    row.topics += topics_of(settings)
    client = fake.client(**client_options())
    monitor = create_monitor(
        settings,
        TelegramSource(client, ["@poison"], sweep_interval=SPEED, own_client=True, timer=ScaledClock(SPEED)),
        KafkaSink(settings.kafka, settings.emitter.instance),
    )
    task = asyncio.create_task(monitor.run())
    try:
        await _wait(lambda: accepted_all(monitor, {gid: fake.message_ids(gid)}), task)
        entities = _many_entities()
        many = fake.post(group, entities.pop("text"), **entities).id  # reaches it live
        for i in range(20):
            fake.post(group, f"after the poison {i}")
        await _wait(lambda: accepted_all(monitor, {gid: fake.message_ids(gid)}), task)
        await asyncio.sleep(0.5)  # let the last batch commit while still running: a crash would show here
        row.check(f"{policy}: still running, no commit retried", not task.done() and monitor.stats.retries == 0)
    finally:
        monitor.request_stop()
        await asyncio.wait_for(task, 60)

    poison = {big_text, many}
    limit = settings.kafka.max_record_bytes
    consumed = await read_committed(broker.bootstrap, settings.kafka.topic, settings.kafka.dead_letter_topic)
    main = [c for c in consumed if c.topic == settings.kafka.topic]
    dlq = [c for c in consumed if c.topic == settings.kafka.dead_letter_topic]
    row.check(f"{policy}: every record within max_record_bytes", all(len(c.value) <= limit for c in consumed))
    if policy == "truncate":
        _count(row.tally, fake.message_ids(gid), main)
        flagged = {c.record()["message_id"] for c in main if c.record()["truncated"]}
        row.check("truncate: exactly the oversized records flagged truncated", flagged == poison)
        row.check("truncate: nothing in the dead-letter topic", not dlq)
    else:
        _count(row.tally, fake.message_ids(gid), main + dlq)
        on_main = {c.record()["message_id"] for c in main}
        in_dlq = {c.record()["message_id"] for c in dlq}
        row.check("dead-letter: oversized records not on the main topic", not on_main & poison)
        row.check("dead-letter: exactly the oversized records dead-lettered", in_dlq == poison)
        row.check("dead-letter: header emitter-dlq-reason", all(c.headers.get("emitter-dlq-reason") for c in dlq))
    sizes = sorted(int(c.record()["extra"].get("original_bytes", 0)) for c in consumed if c.record()["truncated"])
    row.notes.append(f"{policy}: {len(poison)} oversized ({', '.join(f'{s / 1e6:.1f} MB' for s in sizes)})")


def _count(tally: Tally, expected: list[int], consumed: list[Consumed]) -> None:
    tally.add(expected, [r["message_id"] for r in (c.record() for c in consumed) if r["event_type"] == "NEW"])


async def _wait(predicate: Any, task: asyncio.Task[Any], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if task.done():
            await task
            raise RuntimeError("the emitter stopped on its own")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the emitter did not publish everything within {within:.0f} s")
        await asyncio.sleep(0.05)
