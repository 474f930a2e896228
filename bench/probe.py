"""The latency probe: a read_committed consumer in its own process that stamps when records become visible.

    python -m bench.probe BOOTSTRAP TOPIC EXPECTED DEADLINE_SECONDS

It positions itself at the end of every partition, prints ``ready``, then reads until it has seen EXPECTED
stamped records (text ``live <monotonic ns at post>``), the end marker (text ``END_TEXT``: a poster that cannot
know its count in advance posts it last, in the group of its stamps, so that partition order puts it after
them), or the deadline, and prints one JSON line:
``{"stamps": [[posted_ns, seen_ns], ...], "cpu": seconds}`` (its own CPU time). A process of its own so that
its fetching and decoding do not share the emitter's event loop; CLOCK_MONOTONIC is system-wide on Linux, so
the stamps compare across processes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Final

from aiokafka import AIOKafkaConsumer

from emitter.codec import decode
from emitter.kafka_client import assign_all

STAMP_PREFIX: Final = "live "
END_TEXT: Final = "end of the stamps"
"""A record with this text ends the read (after the stamps of its partition, which come before it)."""
FETCH_MAX_WAIT_MS: Final = 20
"""How long the broker may hold an empty fetch. Small, so the probe adds little to what it measures."""


async def start_probe(bootstrap: str, topic: str, expected: int, deadline: float) -> asyncio.subprocess.Process:
    """Start the probe in its own process and wait until it reads from the end of the topic.

    Its JSON line comes on the process's stdout (`communicate()`) once it has seen `expected` stamps, the end
    marker, or `deadline` seconds have passed.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.probe", bootstrap, topic, str(expected), str(deadline),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    ready = await asyncio.wait_for(proc.stdout.readline(), 60)
    if ready.strip() != b"ready":
        raise RuntimeError(f"the probe did not start: {ready!r}")
    return proc


def stamp_text(now_ns: int) -> str:
    """The text of a live message posted at `now_ns` (time.monotonic_ns)."""
    return f"{STAMP_PREFIX}{now_ns}"


async def probe(bootstrap: str, topic: str, expected: int, deadline: float) -> list[tuple[int, int]]:
    """(posted, seen) monotonic ns of the stamped records that became visible before the deadline."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    await consumer.start()
    try:
        tps = await assign_all(consumer, topic)
        await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the positions now: "ready" means "reading from here on"
            await consumer.position(tp)
        print("ready", flush=True)
        stamps: list[tuple[int, int]] = []
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        ended = False
        while len(stamps) < expected and not ended and loop.time() < end:
            chunk = await consumer.getmany(timeout_ms=100)
            arrived = time.monotonic_ns()
            for records in chunk.values():
                for record in records:
                    text = decode(record.value)["text"]
                    if text.startswith(STAMP_PREFIX):
                        stamps.append((int(text[len(STAMP_PREFIX) :]), arrived))
                    ended |= text == END_TEXT
        return stamps
    finally:
        await consumer.stop()


def main(argv: list[str]) -> None:
    """Entry point: see the module docstring."""
    bootstrap, topic, expected, deadline = argv
    stamps = asyncio.run(probe(bootstrap, topic, int(expected), float(deadline)))
    print(json.dumps({"stamps": stamps, "cpu": time.process_time()}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
