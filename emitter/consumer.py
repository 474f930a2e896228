"""Reading `telegram-messages` back: a read_committed consumer that decodes records.

This is what `emitter tail` prints and what tests and consumers use to check what was committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from emitter.codec import decode, to_json_ready
from emitter.errors import FatalError
from emitter.kafka_client import assign_all, connection_options, refusal
from emitter.schema_registry import RegistryConfig, SchemaRegistry
from emitter.settings import KafkaSettings


async def tail(
    settings: KafkaSettings,
    *,
    from_beginning: bool = False,
    group_id: int | None = None,
    max_records: int | None = None,
    idle_timeout: float | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Yield committed records as JSON-ready dicts, with `_partition` and `_offset` added.

    Confluent-framed values are decoded with the schema registry of `settings` (each schema id fetched
    once); single-object values need none.

    Args:
        settings: where to read (topic, brokers, security, schema registry).
        from_beginning: start at the oldest record instead of the end.
        group_id: only records of this group (marked id).
        max_records: stop after this many records.
        idle_timeout: stop after this many seconds without a record (None: follow forever).
    """
    consumer = AIOKafkaConsumer(
        **connection_options(settings), isolation_level="read_committed", enable_auto_commit=False, group_id=None
    )
    try:
        await consumer.start()
    except KafkaError as e:
        await consumer.stop()
        servers = ",".join(settings.bootstrap_servers or ())
        raise await refusal(settings, e) or FatalError(f"Kafka at {servers} is not reachable: {e}") from e
    registry = SchemaRegistry(RegistryConfig.from_settings(settings)) if settings.schema_registry_url else None
    try:
        if registry is not None:
            await registry.start()
        await _seek(consumer, settings, from_beginning)
        key = None if group_id is None else str(group_id).encode()
        seen = 0
        loop = asyncio.get_running_loop()
        last = loop.time()
        while max_records is None or seen < max_records:
            chunk = await consumer.getmany(timeout_ms=200)
            if not chunk:
                if idle_timeout is not None and loop.time() - last > idle_timeout:
                    return
                continue
            last = loop.time()
            for records in chunk.values():
                for r in records:
                    if key is not None and r.key != key:
                        continue
                    record = decode(r.value) if registry is None else await registry.decode(r.value)
                    doc = to_json_ready(record)
                    doc["_partition"], doc["_offset"] = r.partition, r.offset
                    yield doc
                    seen += 1
                    if max_records is not None and seen >= max_records:
                        return
    finally:
        await consumer.stop()
        if registry is not None:
            await registry.stop()


async def _seek(consumer: AIOKafkaConsumer, settings: KafkaSettings, from_beginning: bool) -> None:
    tps = await assign_all(consumer, settings.topic)
    if not tps:
        raise FatalError(f"topic {settings.topic!r} does not exist on {','.join(settings.bootstrap_servers or ())}")
    if from_beginning:
        await consumer.seek_to_beginning(*tps)
    else:
        await consumer.seek_to_end(*tps)
