"""Scenario 4: cold start, the time `KafkaSink.load_cursors()` takes to restore 10,000 groups' cursors.

A transactional producer first writes one cursor record per group for one instance into a fresh compacted
cursor topic (what 10,000 groups leave behind after compaction), then the load is timed `runs` times. A second
topic holds ten records per group (100,000), what the topic holds before the cleaner has compacted it.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Final

from aiokafka import AIOKafkaProducer

from bench.common import Context, create_topic, log, median, run
from bench.report import Row, fmt, verdict
from emitter.cursor import GroupCursor
from emitter.kafka_sink import KafkaSink, cursor_key
from emitter.settings import Settings

NAME = "4 cold start"
TARGET_SECONDS: Final = 3.0
UNCOMPACTED_VERSIONS: Final = 10
_PER_TRANSACTION: Final = 1_000


def scenario(ctx: Context) -> list[Row]:
    """Time the cursor restore for `cold_groups` groups, compacted and not yet compacted."""
    groups = ctx.sizes.cold_groups
    compacted = run(_measure(ctx, groups, versions=1))
    uncompacted = run(_measure(ctx, groups, versions=UNCOMPACTED_VERSIONS))
    ctx.note(
        NAME,
        f"{groups:,} cursor records (one per group, each with a cursor and some with live ranges above it) "
        f"written for one instance by a transactional producer in transactions of {_PER_TRANSACTION:,} to a "
        "fresh compacted topic; then `KafkaSink(settings, instance).load_cursors()` timed (new consumer, "
        f"read_committed to the end), median of {ctx.runs} loads. Also with {UNCOMPACTED_VERSIONS} records "
        "per group, as the topic holds them before compaction.",
    )
    t1, t10 = median(compacted), median(uncompacted)
    return [
        Row(
            NAME,
            f"load_cursors, {groups:,} groups (1 record each)",
            f"{fmt(t1, 3)} s",
            f"≤ {TARGET_SECONDS:g} s",
            t1 / TARGET_SECONDS,
            verdict(t1 <= TARGET_SECONDS),
        ),
        Row(
            NAME,
            f"load_cursors, {groups:,} groups x {UNCOMPACTED_VERSIONS} records (before compaction)",
            f"{fmt(t10, 3)} s",
            f"≤ {TARGET_SECONDS:g} s",
            t10 / TARGET_SECONDS,
            "info",
        ),
    ]


async def _measure(ctx: Context, groups: int, *, versions: int) -> list[float]:
    settings = ctx.fresh_settings()
    log(f"cold start: writing {groups * versions:,} cursor records")
    await create_topic(ctx.bootstrap, settings.kafka.cursor_topic, 1, compact=True)
    await _write_cursors(settings, groups, versions)
    times = []
    for _ in range(ctx.runs):
        sink = KafkaSink(settings.kafka, settings.emitter.instance)
        started = time.perf_counter()
        cursors = await sink.load_cursors()
        times.append(time.perf_counter() - started)
        if len(cursors) != groups:
            raise RuntimeError(f"restored {len(cursors)} cursors, wrote {groups}")
    return times


async def _write_cursors(settings: Settings, groups: int, versions: int) -> None:
    """Write `versions` successive cursors of every group, as a long-running instance would leave them."""
    rng = random.Random(groups)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers[0],  # type: ignore[index]
        transactional_id=f"bench-cursor-writer-{uuid.uuid4().hex[:10]}",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    try:
        instance = settings.emitter.instance
        ids = [-(10**12 + 1_000_000_000 + i) for i in range(groups)]
        records = [(gid, version) for version in range(versions) for gid in ids]
        for start in range(0, len(records), _PER_TRANSACTION):
            async with producer.transaction():
                for gid, version in records[start : start + _PER_TRANSACTION]:
                    position = rng.randint(1, 5_000_000) + version * 100
                    above = ((position + 3, position + 9),) if rng.random() < 0.2 else ()
                    cursor = GroupCursor(gid, position, above)
                    await producer.send(
                        settings.kafka.cursor_topic,
                        key=cursor_key(instance, gid),
                        value=cursor.to_bytes(),
                        headers=[("content-type", b"application/json")],
                    )
    finally:
        await producer.stop()
