"""Reading an instance's committed cursors back from the compacted cursor topic; shared by the sink, the
Kafka tracker and `emitter check`.

Every identity writes to the same cursor topic. A `read_committed` consumer stops at the last stable offset,
the first offset of the oldest transaction still open, so while another identity's transaction is open
(up to its `transaction_timeout_ms`, after a node loss say) "the end" that consumer sees can lie before our
own newest committed cursor. Reading there would restore an old cursor and publish everything after it a
second time. So the reader samples the high watermark (isolation READ_UNCOMMITTED: everything written,
committed or not) and reads `read_committed` until its position reaches that mark, which it does once the
other transaction ends. Called after our producer's init, which aborted our own old transaction, every
cursor we ever committed lies below that mark.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from emitter.cursor import GroupCursor
from emitter.errors import RetriableError
from emitter.kafka_client import assign_all, connection_options, refusal
from emitter.settings import KafkaSettings

__all__ = ["WAIT_MARGIN", "cursor_key", "read_cursors"]

log = logging.getLogger("emitter.kafka")

WAIT_MARGIN = 15.0
"""Seconds beyond the transaction timeout to wait for another identity's open transaction: the broker
aborts an expired transaction on its own schedule (every 10 s by default), not the instant it expires."""


def cursor_key(instance: str, group_id: int) -> bytes:
    """The compacted topic's key of one group's cursor: instances share the topic without clashing."""
    return f"{instance}:{group_id}".encode()


async def read_cursors(settings: KafkaSettings, instance: str, *, wait: float | None = None) -> dict[int, GroupCursor]:
    """The committed cursors of `instance`, by group id: the cursor topic read up to its high watermark.

    Args:
        settings: brokers, security and the cursor topic.
        instance: whose cursors (the key prefix).
        wait: seconds to wait for other identities' open transactions; by default the transaction timeout
            plus `WAIT_MARGIN`. Past it, RetriableError (the caller retries with a new sample).
    """
    limit = settings.transaction_timeout_ms / 1000 + WAIT_MARGIN if wait is None else wait
    topic = settings.cursor_topic
    try:
        marks = await _high_watermarks(settings, topic)
        if not marks:
            # No partitions (the topic does not exist yet): nothing to read. Not read through a consumer that
            # would stop before its coordinator task started, which aiokafka answers with CancelledError.
            return {}
        consumer = AIOKafkaConsumer(
            **connection_options(settings), isolation_level="read_committed", enable_auto_commit=False, group_id=None
        )
        try:
            await consumer.start()
            return await _read(consumer, topic, instance, marks, limit)
        finally:
            await consumer.stop()
    except KafkaError as e:
        raise await refusal(settings, e) or RetriableError(f"cannot read cursor topic {topic!r}: {e}") from e


async def _high_watermarks(settings: KafkaSettings, topic: str) -> dict[TopicPartition, int]:
    """Each partition's end including open transactions: where our newest commit lies at the latest."""
    consumer = AIOKafkaConsumer(
        **connection_options(settings), isolation_level="read_uncommitted", enable_auto_commit=False, group_id=None
    )
    try:
        await consumer.start()
        tps = await assign_all(consumer, topic)
        return dict(await consumer.end_offsets(tps)) if tps else {}
    finally:
        await consumer.stop()


async def _read(
    consumer: AIOKafkaConsumer, topic: str, instance: str, marks: Mapping[TopicPartition, int], limit: float
) -> dict[int, GroupCursor]:
    tps = list(marks)
    if not tps:
        return {}
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    prefix = f"{instance}:".encode()
    cursors: dict[int, GroupCursor] = {}
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + limit
    stalled: dict[TopicPartition, float] = {}
    announced: set[TopicPartition] = set()
    pending = {tp for tp in tps if marks[tp] > 0}
    while pending:
        chunk = await consumer.getmany(*pending, timeout_ms=500, max_records=10000)
        for records in chunk.values():
            for record in records:
                _apply(cursors, prefix, record.key, record.value)
        now = loop.time()
        for tp in list(pending):
            if await consumer.position(tp) >= marks[tp]:
                pending.discard(tp)
            elif tp in chunk:
                stalled.pop(tp, None)
            elif now - stalled.setdefault(tp, now) >= 1.0 and tp not in announced:
                # No progress below the mark: the last stable offset holds us back (an open transaction).
                announced.add(tp)
                log.info(
                    "waiting for another identity's open transaction on %s partition %d (up to %.0f s)",
                    topic,
                    tp.partition,
                    deadline - started,
                    extra={"partition": tp.partition},
                )
        if pending and now >= deadline:
            where = ", ".join(f"partition {tp.partition}" for tp in sorted(pending))
            raise RetriableError(
                f"cursor topic {topic!r} ({where}) is held back by an open transaction for more than {limit:.0f} s"
            )
    if announced:
        log.info("the open transaction on %s ended after %.1f s; cursors read", topic, loop.time() - started)
    return cursors


def _apply(cursors: dict[int, GroupCursor], prefix: bytes, key: bytes | None, value: bytes | None) -> None:
    """One cursor record: ours (by key prefix) sets or, as a tombstone, forgets its group's cursor."""
    if key is None or not key.startswith(prefix):
        return
    group_id = int(key[len(prefix) :])
    if value is None:
        cursors.pop(group_id, None)
    else:
        cursors[group_id] = GroupCursor.from_bytes(value)
