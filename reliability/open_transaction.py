"""Scenario 6: two identities, one open transaction. Every identity writes its cursors to the same compacted
topic; identity B holds a transaction open on it (a node lost mid-commit keeps one open until the broker
times it out) while identity A commits past it, is SIGKILLed and restarts.

A `read_committed` read "to the end" stops at the last stable offset, before B's open transaction, so A
would restore cursors older than its newest commit and publish the difference again. A must instead wait
for B's transaction to end (it logs that it waits), restore its newest cursors, and publish nothing twice.
B is a raw aiokafka transactional producer in a process of its own, ended by the parent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer

from emitter.clock import ScaledClock
from emitter.cursor import GroupCursor
from emitter.cursor_reader import cursor_key
from emitter.settings import Settings
from reliability.common import (
    FORK,
    SPEED,
    Broker,
    Child,
    LivePosts,
    Row,
    Shared,
    finish,
    fresh_settings,
    log,
    new_ids_by_group,
    read_committed,
    sigkill,
    topics_of,
    wait_for,
)
from tests.faketelegram import FakeTelegram

WAIT_LINE = "waiting for another identity's open transaction"


class _Flag(logging.Handler):
    """Sets a shared flag when the emitter logs that it waits for another identity (inherited by children)."""

    def __init__(self, flag: Any) -> None:
        super().__init__(logging.INFO)
        self.flag = flag

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith(WAIT_LINE):
            self.flag.value = 1


def _hold_open(settings: Settings, opened: Any, end: Any) -> None:
    """Identity B: open a transaction on the shared cursor topic, keep it open until told, then abort it."""

    async def main() -> None:
        k = settings.kafka
        producer = AIOKafkaProducer(
            bootstrap_servers=k.bootstrap_servers, transactional_id=f"{k.transactional_id_prefix}-b"
        )
        await producer.start()
        try:
            await producer.begin_transaction()
            await (await producer.send(k.cursor_topic, key=cursor_key("b", 1), value=GroupCursor(1, 1).to_bytes()))
            opened.value = 1
            while not end.value:  # noqa: ASYNC110 - a flag in shared memory, set by another process
                await asyncio.sleep(0.05)
            await producer.abort_transaction()
        finally:
            await producer.stop()

    asyncio.run(main())


def _world(seed: int, history: int) -> tuple[FakeTelegram, list[str | int], list[int]]:
    fake = FakeTelegram(seed=seed, monotonic=ScaledClock(SPEED).monotonic)
    alpha = fake.add_channel("Alpha", username="alpha", megagroup=True)
    fake.post_many(alpha, history)
    beta = fake.add_channel("Beta", username="beta")
    fake.post_many(beta, history // 2)
    return fake, ["@alpha", "@beta"], [fake.peer_id(alpha), fake.peer_id(beta)]


class _IdentityB:
    """B's process and the shared flags between it, the parent and A."""

    def __init__(self, settings: Settings) -> None:
        self.waited, self.opened, self.end = FORK.RawValue("i", 0), FORK.RawValue("i", 0), FORK.RawValue("i", 0)
        self.process = FORK.Process(target=_hold_open, args=(settings, self.opened, self.end), name="identity-b")
        self.process.daemon = True

    def open(self) -> None:
        """Start B and wait until its transaction is open."""
        self.process.start()
        wait_for(lambda: bool(self.opened.value), 60, "B's transaction to open", proc=self.process)

    def close(self) -> None:
        """End B's transaction (abort) and wait for B to exit."""
        self.end.value = 1
        if self.process.pid is not None:
            self.process.join(30)
            if self.process.is_alive():
                self.process.kill()


def _first_life(child: Child, b: _IdentityB, history: int) -> int:
    """A commits, B opens its transaction, A commits 1,000 more and is SIGKILLed; how many it committed past."""
    proc = child.start()
    shared = child.shared
    try:
        wait_for(lambda: shared.committed.value >= history // 5, 120, "A's first commits", proc=proc)
        b.open()
        at_open = shared.committed.value
        wait_for(lambda: shared.committed.value >= at_open + 1_000, 120, "A's commits past B's", proc=proc)
        return shared.committed.value - at_open
    finally:
        sigkill(proc)


def _restart(child: Child, b: _IdentityB, row: Row) -> tuple[float, float]:
    """A restarts while B holds on: it must wait, publish nothing, and go on once B ends. (waited, resumed in)"""
    proc = child.start()
    shared = child.shared
    try:
        # Either it waits (right), or it goes on with old cursors (what a read to the last stable offset does).
        wait_for(lambda: bool(b.waited.value or shared.committed.value), 60, "A's restart to wait or go on", proc=proc)
        held = time.monotonic()
        time.sleep(2.0)  # B stays open a while longer: A must not go on meanwhile
        row.check("A waited for B's open transaction", bool(b.waited.value))
        row.check("A published nothing while B's transaction was open", shared.committed.value == 0)
        b.close()
        ended = time.monotonic()
        wait_for(lambda: shared.committed.value > 0, 60, "A to go on after B ended", proc=proc)
        return ended - held, time.monotonic() - ended
    finally:
        sigkill(proc)


def run(broker: Broker, row: Row, *, seed: int, quick: bool) -> None:
    """A commits past B's open transaction, is SIGKILLed, restarts while B's transaction is still open."""
    history = 4_000 if quick else 15_000
    fake, groups, peers = _world(seed, history)
    settings = fresh_settings(broker.bootstrap, emitter={"batch_size": 100, "batch_timeout_ms": 50})
    row.topics += topics_of(settings)
    session = fake.new_session().save()
    shared = Shared()
    posts = LivePosts(peers, seed)
    b = _IdentityB(settings)
    flag = _Flag(b.waited)
    logging.getLogger("emitter.kafka").addHandler(flag)
    try:
        past = _first_life(Child(fake, settings, session, groups, shared, posts, rate=100.0), b, history)
        posts.replay(fake, shared)
        waited, resumed_in = _restart(Child(fake, settings, session, groups, shared, posts, rate=100.0), b, row)
        posts.replay(fake, shared)
    finally:
        b.close()
        logging.getLogger("emitter.kafka").removeHandler(flag)
    expected = {p: fake.message_ids(p) for p in peers}
    asyncio.run(finish(fake, settings, session, groups, expected))
    got = new_ids_by_group(asyncio.run(read_committed(broker.bootstrap, settings.kafka.topic)))
    row.tally.add_all(expected, got)
    row.notes.append(
        f"A committed {past:,} messages past B's open transaction before SIGKILL; its restart waited "
        f"{waited:.1f} s more after logging the wait (B held on) and went on {resumed_in:.1f} s after B ended"
    )
    log(f"open transaction: {row.notes[-1]}")
