"""The ceiling of a Python client: a bare transactional producer sending values the emitter wrote.

Shared by the backfill scenarios (Telegram path and export path), so both compare against the same code.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from bench.common import Context, read_values
from emitter.codec import Encoder
from emitter.kafka_sink import KafkaSink
from emitter.settings import Settings


@dataclass(frozen=True, slots=True)
class Ceilings:
    """The two bare producers' times for sending the values the emitter published."""

    total_bytes: int
    """Of the values read back."""
    send_seconds: float
    send_cpu: float
    batched_seconds: float
    batched_cpu: float


async def read_back_with_ceilings(ctx: Context, topic: str, records: int, batch_sizes: list[int]) -> Ceilings:
    """Read back the `records` the emitter published to `topic` and time both bare producers on them.

    Read after the emitter's timed part: holding the events meanwhile would slow the emitter's GC. The values
    are not kept: the callers run more after this, and a million of them would weigh on it.
    """
    values = await read_values(ctx.bootstrap, topic)
    if len(values) != records:
        raise RuntimeError(f"read back {len(values)} records, the emitter published {records}")
    send_seconds, send_cpu = await raw_aiokafka(ctx, values, batch_sizes)
    batched_seconds, batched_cpu = await raw_aiokafka(ctx, values, batch_sizes, batched=True)
    return Ceilings(sum(len(v) for _, v in values), send_seconds, send_cpu, batched_seconds, batched_cpu)


async def raw_aiokafka(
    ctx: Context, values: list[tuple[bytes, bytes]], batch_sizes: list[int], *, batched: bool = False
) -> tuple[float, float]:
    """Wall and CPU seconds for a bare transactional producer to send `values` in transactions of `batch_sizes`.

    `batched` uses aiokafka's batch API (`create_batch`/`send_batch`, one future per partition batch, the
    partition computed once per key) instead of one `send()` per record: what the sink could do.
    """
    settings: Settings = ctx.fresh_settings()
    sink = KafkaSink(settings.kafka, settings.emitter.instance)
    # The sink's own producer factory: the ceiling uses exactly its settings (batch size, linger, acks,
    # idempotence, transactional id), and follows them if they change. Topics are created by start().
    await sink.start()
    producer = sink._producer
    assert producer is not None
    topic = settings.kafka.topic
    headers = [("content-type", Encoder().content_type.encode())]
    send = _send_batched if batched else _send_each
    started, cpu = time.perf_counter(), time.process_time()
    try:
        i = 0
        for size in batch_sizes:
            await producer.begin_transaction()
            await asyncio.gather(*await send(producer, topic, values[i : i + size], headers))
            await producer.commit_transaction()
            i += size
        return time.perf_counter() - started, time.process_time() - cpu
    finally:
        await sink.stop()


async def _send_each(
    producer: AIOKafkaProducer, topic: str, records: list[tuple[bytes, bytes]], headers: list[tuple[str, bytes]]
) -> list[asyncio.Future[Any]]:
    """One `send()` per record, as KafkaSink does."""
    return [await producer.send(topic, key=key, value=value, headers=headers) for key, value in records]


async def _send_batched(
    producer: AIOKafkaProducer, topic: str, records: list[tuple[bytes, bytes]], headers: list[tuple[str, bytes]]
) -> list[asyncio.Future[Any]]:
    """Records grouped by partition into `BatchBuilder`s; one `send_batch()` per full builder."""
    partitions = sorted(producer.client.cluster.partitions_for_topic(topic) or ())
    if not partitions:
        await producer.client.force_metadata_update()
        partitions = sorted(producer.client.cluster.partitions_for_topic(topic) or ())
    partitioner = DefaultPartitioner()
    by_partition: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
    chosen: dict[bytes, int] = {}
    for key, value in records:
        if key not in chosen:  # same partition as send() would pick: murmur2 of the key, once per key
            chosen[key] = partitioner(key, partitions, partitions)
        by_partition[chosen[key]].append((key, value))
    futures = []
    for partition, items in by_partition.items():
        batch = producer.create_batch()
        for key, value in items:
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:  # full
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None, headers=headers)
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures
