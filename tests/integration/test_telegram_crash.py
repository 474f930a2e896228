"""SIGKILL during follow, restart with the same StringSession: nothing lost, nothing duplicated.

The emitter runs in a forked child that shares the in-process Telegram's starting state; the child posts
live messages and is killed with SIGKILL at a random moment (a transaction may be open). The parent then
replays the same posts into its copy of the world (so ids match), restarts the emitter with the same
StringSession (auth key only: no pts, no entity cache survive) and checks the union.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import signal
import time

from emitter.clock import ScaledClock
from emitter.kafka_sink import KafkaSink
from emitter.monitor import Monitor
from emitter.settings import Settings
from emitter.telegram_client import client_options
from emitter.telegram_source import TelegramSource
from tests.faketelegram import FakeTelegram
from tests.integration.telegram_harness import SPEED, emitter, new_ids, wait_for_ids

HISTORY = 1_500
LIVE_BEFORE_KILL = 400
LIVE_AFTER_RESTART = 100


def _live_text(i: int) -> str:
    return f"live {i}"


def _child(fake: FakeTelegram, settings: Settings, session: str) -> None:
    """Run the emitter on @crashy and keep posting live messages until killed."""

    async def main() -> None:
        client = fake.client(session, **client_options())
        source = TelegramSource(client, ["@crashy"], sweep_interval=25, own_client=True, timer=ScaledClock(SPEED))
        monitor = Monitor(
            source, KafkaSink(settings.kafka, settings.emitter.instance), batch_size=25, batch_timeout=0.02
        )
        task = asyncio.create_task(monitor.run())
        while not monitor.ready:  # noqa: ASYNC110 - polling a flag the monitor sets, with the test deadline
            await asyncio.sleep(0.01)
        for i in range(LIVE_BEFORE_KILL):
            fake.post("@crashy", _live_text(i))
            await asyncio.sleep(0.004)
        await task

    asyncio.run(main())


def test_sigkill_during_follow_then_restart_with_string_session(settings: Settings) -> None:
    """A follow killed mid-stream and restarted from a StringSession publishes every message exactly once."""
    fake = FakeTelegram(seed=3, monotonic=ScaledClock(SPEED).monotonic)
    channel = fake.add_channel("Crashy", username="crashy", megagroup=True)
    fake.post_many(channel, HISTORY)
    gid = fake.peer_id(channel)
    session = fake.new_session().save()
    seed = int(os.environ.get("TEST_SEED", time.time_ns() % 10_000))
    print(f"seed={seed}")

    child = multiprocessing.get_context("fork").Process(target=_child, args=(fake, settings, session), daemon=True)
    child.start()
    try:
        # Kill once the backfill is committed and live messages are flowing.
        asyncio.run(wait_for_ids(settings, gid, HISTORY + 1 + 20, within=120))
        time.sleep(random.Random(seed).uniform(0.0, 0.5))
        assert child.pid is not None and child.is_alive()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.join(30)
    assert child.exitcode == -signal.SIGKILL
    before_restart = asyncio.run(new_ids(settings, gid))
    print(f"published before the kill: {len(before_restart)}")

    async def restart() -> list[int]:
        for i in range(LIVE_BEFORE_KILL):  # the parent's world catches up with what the child posted
            fake.post(channel, _live_text(i), push=False)
        client = fake.client(session, **client_options())
        async with emitter(fake, settings, ["@crashy"], client=client, sweep_interval=25):
            for i in range(LIVE_AFTER_RESTART):
                fake.post(channel, f"after restart {i}")
            await wait_for_ids(settings, gid, len(fake.message_ids(channel)), within=120)
        return await new_ids(settings, gid)  # after the drain: a late duplicate would show here

    ids = asyncio.run(restart())
    assert len(ids) == len(set(ids)), "duplicates"
    assert sorted(ids) == fake.message_ids(channel), "lost messages"
    assert len(before_restart) < len(ids), "the kill landed before the end"
