"""Scenario 1: the emitter is SIGKILLed at random moments during backfill, live follow and sweeps, and
restarted each time with the same StringSession (an auth key only: no pts and no entity cache survive).

Each run is a forked child that starts from the parent's world, posts live messages into its own copy and
dies by SIGKILL, possibly inside a Kafka transaction. The parent replays the child's posts (same ids), forks
the next child, and after the last kill finishes in-process; a read_committed consumer must then see every
message id of every group exactly once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from multiprocessing.process import BaseProcess

from emitter.clock import ScaledClock
from reliability.common import (
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

PHASES = ("backfill", "live", "sweep")


def _world(seed: int, history: tuple[int, int, int]) -> tuple[FakeTelegram, list[str | int], list[int]]:
    """A supergroup, a broadcast channel and a basic group (whose ids the account's private chats share)."""
    fake = FakeTelegram(seed=seed, monotonic=ScaledClock(SPEED).monotonic)
    alpha = fake.add_channel("Alpha", username="alpha", megagroup=True)
    fake.post_many(alpha, history[0])
    beta = fake.add_channel("Beta", username="beta")
    fake.post_many(beta, history[1])
    gamma = fake.add_chat("Gamma")
    friend = fake.add_user("Bob")
    for _ in range(10):  # gaps in the basic group's ids, as a busy account has them
        fake.post_many(gamma, history[2] // 10)
        fake.post_many(friend, 3)
    peers = [fake.peer_id(alpha), fake.peer_id(beta), fake.peer_id(gamma)]
    return fake, ["@alpha", "@beta", peers[2]], peers


def _kill_moment(phase: str, shared: Shared, rng: random.Random, proc: BaseProcess, groups: int) -> None:
    """Wait for a random moment of `phase` in the running child."""
    if phase == "backfill":
        # After a random number of committed messages: each run moves the backfill on by a few pages only.
        goal = rng.randint(1, 1_000)
        wait_for(lambda: shared.committed.value >= goal, 120, f"{goal} commits", proc=proc)
        return
    wait_for(lambda: not shared.backfilling.value, 180, "the backfill to be committed", proc=proc)
    if phase == "live":
        time.sleep(rng.uniform(0.1, 1.0))
    else:
        wait_for(lambda: shared.sweeping.value > 0, 60, "a sweep", proc=proc)


def run(broker: Broker, row: Row, *, seed: int, quick: bool) -> None:
    """SIGKILL the emitter `kills` times spread over backfill, live follow and sweep; then check the union."""
    history, per_phase = ((5_000, 2_500, 1_500), (2, 2, 2)) if quick else ((12_000, 8_000, 3_000), (7, 7, 6))
    rng = random.Random(seed)  # noqa: S311 - reproducible kill moments
    fake, groups, peers = _world(seed, history)
    settings = fresh_settings(broker.bootstrap, emitter={"batch_size": 100, "batch_timeout_ms": 50})
    row.scenario += f" x{sum(per_phase)}"
    row.topics += topics_of(settings)
    session = fake.new_session().save()
    shared = Shared()
    posts = LivePosts(peers, seed)
    landed: Counter[str] = Counter()
    for phase, kills in zip(PHASES, per_phase, strict=True):
        for _ in range(kills):
            sweeping = phase == "sweep"
            child = Child(
                fake,
                settings,
                session,
                groups,
                shared,
                posts,
                rate=200.0,
                sweep_interval=0.3 if sweeping else 1.0,
                drop=0.3 if sweeping else 0.0,  # missed updates give the sweeps gaps to fill
                seed=rng.randrange(2**32),
            )
            proc = child.start()
            try:
                _kill_moment(phase, shared, rng, proc, len(groups))
                # Where the child really was when it died (a backfill may end before its planned kills do).
                if shared.backfilling.value:
                    landed["backfill"] += 1
                else:
                    landed["sweep" if shared.sweeping.value else "live"] += 1
                in_txn = bool(shared.in_txn.value)
                landed["inside a transaction"] += in_txn
            finally:
                sigkill(proc)
            posts.replay(fake, shared)
            log(f"kill {sum(landed[p] for p in PHASES)} ({phase}): {shared.committed.value} committed by this run")
    expected = {p: fake.message_ids(p) for p in peers}
    asyncio.run(finish(fake, settings, session, groups, expected))
    got = new_ids_by_group(asyncio.run(read_committed(broker.bootstrap, settings.kafka.topic)))
    row.tally.add_all(expected, got)
    row.check("every kill landed in a running emitter", sum(landed[p] for p in PHASES) == sum(per_phase))
    row.notes.append(
        f"kills: {landed['backfill']} backfill, {landed['live']} live, {landed['sweep']} sweep "
        f"({landed['inside a transaction']} inside a transaction); {len(groups)} groups, {posts.replayed} live posts"
    )
