"""Read `telegram-messages` as the emitter's consumers should: read_committed, Avro-decoded, traced.

Every committed record arrives exactly once; records of aborted transactions never do. Each record is
handled inside a CONSUMER span that continues the emitter's trace (its `traceparent` header).

    python -m examples.kafka_consumer --bootstrap-servers 127.0.0.1:9092 --from-beginning
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

from emitter.codec import decode
from emitter.tracing import continue_trace

Record = dict[str, Any]


def print_record(record: Record) -> None:
    """The default handler: one line per record."""
    print(record["event_type"], record["group"]["id"], record["message_id"], repr(record["text"][:60]))


async def consume(
    bootstrap_servers: str,
    topic: str = "telegram-messages",
    *,
    group_id: str | None = "telegram-consumer-example",
    from_beginning: bool = True,
    max_records: int | None = None,
    idle_timeout: float = 10.0,
    handle: Callable[[Record], None] = print_record,
) -> int:
    """Hand every committed record to `handle`; stop after `max_records` or `idle_timeout` s without one.

    Offsets are committed after the records were handled, so a crash repeats at most one poll's records
    in your application (make `handle` idempotent, for example keyed by group id and message id).

    Returns:
        How many records were handled.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    loop = asyncio.get_running_loop()
    handled, last = 0, loop.time()
    try:
        while (max_records is None or handled < max_records) and loop.time() - last < idle_timeout:
            left = None if max_records is None else max_records - handled
            batch = await consumer.getmany(timeout_ms=200, max_records=left)
            for records in batch.values():
                for record in records:
                    with continue_trace(record):
                        handle(decode(record.value))
                    handled += 1
            if batch:
                last = loop.time()
                if group_id is not None:
                    await consumer.commit()
    finally:
        await consumer.stop()
    return handled


def main(argv: list[str] | None = None) -> int:
    """Print committed records until none came for `--idle-timeout` seconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="telegram-messages")
    parser.add_argument("--group-id", default="telegram-consumer-example")
    parser.add_argument("--from-beginning", action="store_true")
    parser.add_argument("--idle-timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    asyncio.run(
        consume(
            args.bootstrap_servers,
            args.topic,
            group_id=args.group_id,
            from_beginning=args.from_beginning,
            idle_timeout=args.idle_timeout,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
