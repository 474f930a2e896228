"""TgData with the real broker: the Kafka tracker across restarts, and the Kafka consumer example end to end."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pandas as pd

from emitter.settings import Settings
from emitter.tgdata import TgData
from emitter.trackers import KafkaTracker
from examples import kafka_consumer
from tests.faketelegram import FakeTelegram, wait_until
from tests.integration.telegram_harness import emitter


def ids_of(rows: pd.DataFrame) -> list[int]:
    return [int(i) for i in rows["MessageId"]]


async def test_polling_with_the_kafka_tracker_resumes_after_a_restart(settings: Settings) -> None:
    """Cursors committed to the compacted topic let a new process deliver exactly what it has not seen."""
    fake = FakeTelegram(seed=2)
    fake.post_many(fake.add_channel("Feed", username="feed", megagroup=True), 230)
    instance = settings.emitter.instance
    first: list[int] = []
    async with TgData(client=fake.client(), tracker=KafkaTracker(settings.kafka, instance)) as tg:
        await tg.poll_for_messages("@feed", 0.01, lambda rows: first.extend(ids_of(rows)), 2, after_id=0)
    fake.post_many("@feed", 120)
    second: list[int] = []
    async with TgData(client=fake.client(), tracker=KafkaTracker(settings.kafka, instance)) as tg:
        polling = asyncio.create_task(tg.poll_for_messages("@feed", 0.05, lambda r: second.extend(ids_of(r))))
        await wait_until(lambda: len(second) >= 120, within=30)
        fake.burst("@feed", 300)
        await wait_until(lambda: len(second) >= 420, within=30)
        tg.stop()
        await asyncio.wait_for(polling, 10)
    assert first == fake.message_ids("@feed")[:231]
    assert Counter(second) == Counter(fake.message_ids("@feed")[231:])


async def test_kafka_consumer_example_reads_what_the_emitter_committed(settings: Settings) -> None:
    """The consumer example reads a backfilled channel read_committed: every message once, decoded."""
    fake = FakeTelegram(seed=4)
    fake.post_many(fake.add_channel("Archive", username="archive"), 150)
    async with emitter(fake, settings, ["@archive"], follow=False) as run:
        await asyncio.wait_for(asyncio.shield(run.task), 60)
    records: list[dict[str, Any]] = []
    handled = await kafka_consumer.consume(
        (settings.kafka.bootstrap_servers or [""])[0],
        settings.kafka.topic,
        group_id=f"{settings.emitter.instance}-reader",
        max_records=151,
        idle_timeout=20,
        handle=records.append,
    )
    assert handled == 151
    assert sorted(r["message_id"] for r in records) == fake.message_ids("@archive")
    assert {r["event_type"] for r in records} == {"NEW"}
    assert all(r["date"].tzinfo is not None for r in records)
