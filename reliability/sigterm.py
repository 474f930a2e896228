"""Scenario 2: SIGTERM while a Kafka transaction is open. The emitter must stop taking updates, commit what it
accepted, and exit 0 within `emitter.drain_timeout`; a restart then publishes the rest, nothing twice.

Each round forks a child that runs `emitter.app.run` (the CLI's path, with its signal handlers) on the
production batching defaults while a busy group posts live. The parent sends SIGTERM at a moment the sink is
inside `commit`, times the exit, and checks what the child left: the cursors it had accepted are the ones
Kafka holds, and each group's committed ids are a gapless prefix of its history. The next round restarts
from there; after the last one the emitter finishes in-process and every id must be there exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import tempfile
import time
from multiprocessing.process import BaseProcess
from pathlib import Path

from emitter.clock import ScaledClock
from emitter.cursor import GroupCursor
from emitter.settings import Settings
from reliability.common import (
    SPEED,
    Broker,
    Child,
    LivePosts,
    Row,
    Shared,
    committed_cursors,
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

GRACE = 5.0
"""Seconds past the drain bound the parent waits before it gives up on the child (and SIGKILLs it)."""


def _world(seed: int, history: int) -> tuple[FakeTelegram, list[str | int], list[int]]:
    """Three supergroups that get most of the live traffic (each busy feeder is a chance to hit a race in
    the stop), and a broadcast channel."""
    fake = FakeTelegram(seed=seed, monotonic=ScaledClock(SPEED).monotonic)
    chats = [fake.add_channel(f"Busy {i}", username=f"busy{i}", megagroup=True) for i in range(3)]
    chats.append(fake.add_channel("News", username="news"))
    for chat in chats:
        fake.post_many(chat, history)
    return fake, ["@busy0", "@busy1", "@busy2", "@news"], [fake.peer_id(c) for c in chats]


def _sigterm(child: Child, rng: random.Random, live_before: int, bound: float) -> tuple[BaseProcess, float, bool]:
    """Start the child, SIGTERM it inside a transaction once live commits flow; (process, seconds, hung)."""
    shared = child.shared
    proc = child.start()
    try:
        wait_for(lambda: shared.following.value >= len(child.groups), 120, "the backfill to end", proc=proc)
        goal = shared.posted.value + live_before
        wait_for(lambda: shared.posted.value >= goal, 60, "live posts", proc=proc)
        time.sleep(rng.uniform(0.0, 0.3))
        wait_for(lambda: bool(shared.in_txn.value), 30, "an open transaction", proc=proc)
        sent_at = time.monotonic()
        os.kill(proc.pid or 0, signal.SIGTERM)
        shared.stop_posting.value = 1  # the world goes quiet: the emitter owes only what it accepted
        proc.join(bound + GRACE)
        return proc, time.monotonic() - sent_at, proc.is_alive()
    finally:
        sigkill(proc)


def run(broker: Broker, row: Row, *, seed: int, quick: bool) -> None:
    """SIGTERM during transactions of busy live groups, `rounds` times; then the rest after a restart."""
    history, live_before, rounds = (1_000, 300, 3) if quick else (5_000, 2_000, 8)
    max_hangs = 1 if quick else 2  # a hung round costs the whole bound; a couple make the point
    rng = random.Random(seed)  # noqa: S311 - reproducible moments
    fake, groups, peers = _world(seed, history)
    # Production batching; the production drain_timeout (20 s), or 5 s with --quick so a hang costs less.
    settings = fresh_settings(broker.bootstrap, emitter={"drain_timeout": 5.0} if quick else {})
    bound = settings.emitter.drain_timeout
    row.scenario += f" x{rounds}"
    row.topics += topics_of(settings)
    session = fake.new_session().save()
    shared = Shared()
    posts = LivePosts(peers[:3] * 3 + peers[3:], seed)  # the busy groups get 9 posts in 10
    drains: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            child = Child(fake, settings, session, groups, shared, posts, rate=1_000.0, post_after_backfill=True)
            child.accepted_path = Path(tmp) / f"accepted-{i}.json"
            proc, seconds, hung = _sigterm(child, rng, live_before, bound)
            posts.replay(fake, shared)
            drains.append(f">{seconds:.0f} s, SIGKILLed" if hung else f"{seconds:.2f} s")
            log(f"SIGTERM round {i + 1}: " + ("still running, SIGKILLed" if hung else f"exit {proc.exitcode}"))
            row.check(f"exit code 0 within drain_timeout={bound:.0f} s", not hung and proc.exitcode == 0)
            if not hung:
                _check_left(row, broker, settings, fake=fake, peers=peers, accepted=_accepted(child.accepted_path))
            elif sum(d.endswith("SIGKILLed") for d in drains) >= max_hangs:
                break
    row.notes.append(f"SIGTERM → exit: {', '.join(drains)} (bound {bound:.0f} s; {len(drains)} of {rounds} rounds run)")
    row.notes.append(f"{posts.replayed} live posts")

    expected = {p: fake.message_ids(p) for p in peers}
    asyncio.run(finish(fake, settings, session, groups, expected))
    got = new_ids_by_group(asyncio.run(read_committed(broker.bootstrap, settings.kafka.topic)))
    row.tally.add_all(expected, got)


def _check_left(
    row: Row,
    broker: Broker,
    settings: Settings,
    *,
    fake: FakeTelegram,
    peers: list[int],
    accepted: dict[int, GroupCursor],
) -> None:
    """What a drained child left in Kafka: exactly what it had accepted, as a gapless prefix per group."""
    cursors = asyncio.run(committed_cursors(settings))
    row.check("committed cursors == accepted cursors", bool(accepted) and cursors == accepted)
    committed = new_ids_by_group(asyncio.run(read_committed(broker.bootstrap, settings.kafka.topic)))
    for p in peers:
        ids = committed.get(p, [])
        row.check("a gapless prefix per group after each stop", ids == fake.message_ids(p)[: len(ids)])


def _accepted(path: Path) -> dict[int, GroupCursor]:
    """The cursors the child had accepted when it stopped (empty if it did not get to write them)."""
    try:
        raw: dict[str, str] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {int(gid): GroupCursor.from_bytes(value.encode()) for gid, value in raw.items()}
