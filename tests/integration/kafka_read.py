"""Reading a topic back, read_committed, to its end: what a consumer of ours would see."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from emitter.codec import decode


async def read_committed(bootstrap: str, topic: str, *, raw: bool = False) -> list[tuple[bytes, Any]]:
    """Every committed record of `topic` as (key, decoded record) — or (key, bytes) with raw=True."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed", group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[tuple[bytes, Any]] = []
        pending = {tp for tp in tps if end[tp] > 0}
        while pending:
            chunk = await consumer.getmany(*pending, timeout_ms=1000)
            for records in chunk.values():
                out += [(r.key, r.value if raw else decode(r.value)) for r in records]
            pending = {tp for tp in pending if await consumer.position(tp) < end[tp]}
        return out
    finally:
        await consumer.stop()


def new_ids_by_group(records: list[tuple[bytes, Any]]) -> dict[int, list[int]]:
    """Message ids of NEW events per group, in the order a consumer reads them."""
    out: dict[int, list[int]] = defaultdict(list)
    for key, record in records:
        assert int(key) == record["group"]["id"], "records are keyed by their group"
        if record["event_type"] == "NEW":
            out[record["group"]["id"]].append(record["message_id"])
    return dict(out)
