"""Change capture: edits, deletes and reactions made while the emitter was away reach consumers once, in order.

The fake keeps its update log across the emitter's restart and answers getChannelDifference / getDifference
from it (with "too long" past 100 updates, like Telegram); reaction changes are not in that log, as on
Telegram. Each restart uses a new StringSession: nothing survives but what the emitter put in Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections import Counter
from typing import Any

import pytest

from emitter.clock import ScaledClock
from emitter.settings import Settings
from emitter.telegram_client import client_options
from emitter.telegram_gateway import RequestGateway
from tests.change_world import change_kind, flat, make_changes, three_groups
from tests.faketelegram import FakeTelegram, wait_until
from tests.integration.kafka_read import read_committed
from tests.integration.telegram_harness import SPEED, emitter, positioned

pytestmark = pytest.mark.integration


async def records(settings: Settings) -> list[dict[str, Any]]:
    """Every committed record, in consumer order."""
    topic = settings.kafka.topic
    return [r for _, r in await read_committed(settings.kafka.bootstrap_servers[0], topic)]  # type: ignore[index]


def changes_of(recs: list[dict[str, Any]]) -> Counter[tuple[int, str, int]]:
    """(group, kind, message id) of the change records; kind EDIT, REACTIONS or DELETE.

    The tests make no change before the moment they test, so every change record is one of theirs (an index
    into the records would not do: a consumer reads partitions in no order across groups)."""
    return Counter(
        (r["group"]["id"], change_kind(r["event_type"], r["change"]), r["message_id"])
        for r in recs
        if r["event_type"] != "NEW"
    )


async def test_changes_made_while_stopped_are_published_once_after_a_restart(settings: Settings) -> None:
    """Stopped (drained like SIGTERM), 350 changes in 3 groups, restarted on a new session: each once, typed."""
    clock = ScaledClock(SPEED)
    fake = FakeTelegram(seed=12, monotonic=clock.monotonic)
    groups, specs = three_groups(fake, 800)
    before = {fake.peer_id(g): fake.message_ids(g)[-1] for g in groups}
    async with emitter(fake, settings, specs, timer=clock, gateway=RequestGateway(clock=clock)) as run:
        await wait_until(
            lambda: all(run.monitor.tracker.cursor(g).cursor >= last for g, last in before.items()),
            within=120,
            interval=0.1,
            message="the first emitter did not backfill",
        )
        await wait_until(lambda: all(positioned(run, g) for g in before), within=60, interval=0.1)
    plan = {"EDIT": 200, "DELETE": 100, "REACTIONS": 50}
    expected = flat(make_changes(fake, groups, plan, random.Random(12), pool=400, push=False))

    client = fake.client(fake.new_session().save(), **client_options())
    async with emitter(fake, settings, specs, client=client, timer=clock) as run:

        async def all_there() -> bool:
            return set(changes_of(await records(settings))) >= expected

        with contextlib.suppress(AssertionError):  # the comparison below says what is missing
            await wait_until(all_there, within=120, interval=0.5)
    got = changes_of(await records(settings))
    missing = Counter((g, kind) for g, kind, _ in expected - set(got))
    assert not missing, f"missing by group and kind: {dict(missing)}; stats {run.source.stats}"
    assert set(got) == expected, f"unexpected: {sorted(set(got) - expected)[:5]}"
    assert max(got.values()) == 1, f"duplicated: {[k for k, n in got.items() if n > 1][:5]}"
    assert run.source.stats.catch_ups >= 3 and run.source.stats.rescans >= 3


async def test_a_long_disconnect_past_the_difference_limit_is_recovered_by_a_rescan(settings: Settings) -> None:
    """150 changes in one channel while disconnected (Telegram keeps 100): all published, once."""
    clock = ScaledClock(SPEED)
    fake = FakeTelegram(seed=13, monotonic=clock.monotonic)
    channel = fake.add_channel("News", username="news")
    fake.post_many(channel, 600)
    gid = fake.peer_id(channel)
    async with emitter(fake, settings, ["@news"], timer=clock, gateway=RequestGateway(clock=clock)) as run:
        last = fake.message_ids(channel)[-1]
        await wait_until(lambda: run.monitor.tracker.cursor(gid).cursor >= last, within=60, interval=0.1)
        await wait_until(lambda: positioned(run, gid), within=60, interval=0.1)
        fake.set_online(False)
        rng = random.Random(13)
        pool = fake.message_ids(channel)[-450:]
        expected = set()
        for n in range(150):
            msg_id = pool.pop(rng.randrange(len(pool)))
            if n % 3:
                fake.edit(channel, msg_id, f"while away {n}", push=False)
                expected.add((gid, "EDIT", msg_id))
            else:
                fake.delete(channel, [msg_id], push=False)
                expected.add((gid, "DELETE", msg_id))
        await asyncio.sleep(30 / SPEED)  # the outage's length (30 Telegram seconds), not a wait for readiness
        fake.set_online(True)

        async def all_there() -> bool:
            return set(changes_of(await records(settings))) >= expected

        await wait_until(all_there, within=90, interval=0.5, message="not every change was published")
        assert run.source.stats.too_long >= 1
    got = changes_of(await records(settings))
    assert set(got) == expected and max(got.values()) == 1


async def test_an_edit_of_a_message_whose_new_was_lost_comes_after_its_new(settings: Settings) -> None:
    """The NEW update is dropped, the edit arrives live: the consumer gets NEW (edited) first, then EDITs."""
    clock = ScaledClock(SPEED)
    fake = FakeTelegram(seed=14, monotonic=clock.monotonic)
    channel = fake.add_channel("News", username="news")
    fake.post_many(channel, 50)
    gid = fake.peer_id(channel)
    async with emitter(fake, settings, ["@news"], timer=clock, gateway=RequestGateway(clock=clock)) as run:
        await wait_until(lambda: run.monitor.tracker.cursor(gid).cursor >= fake.message_ids(channel)[-1], within=60)
        await wait_until(lambda: positioned(run, gid), within=60, interval=0.1)
        fake.faults.drop_next_updates(1)
        msg = fake.post(channel, "first version")
        fake.edit(channel, msg.id, "second version")

        async def count(n: int) -> bool:
            return sum(1 for r in await records(settings) if r["message_id"] == msg.id) >= n

        await wait_until(lambda: count(1), within=60, interval=0.3, message="the message did not arrive")
        fake.edit(channel, msg.id, "third version")
        await wait_until(lambda: count(2), within=60, interval=0.3, message="the last edit did not arrive")
    mine = [r for r in await records(settings) if r["message_id"] == msg.id and r["group"]["id"] == gid]
    assert mine[0]["event_type"] == "NEW"
    assert all(r["event_type"] == "EDIT" for r in mine[1:])
    assert mine[-1]["text"] == "third version"


async def test_id_order_holds_in_a_burst_with_dropped_updates(settings: Settings) -> None:
    """2,000 live messages, 10% of updates dropped: every NEW exactly once and in ascending id order."""
    clock = ScaledClock(SPEED)
    fake = FakeTelegram(seed=15, monotonic=clock.monotonic)
    channel = fake.add_channel("News", username="news")
    fake.post_many(channel, 20)
    gid = fake.peer_id(channel)
    async with emitter(
        fake, settings, ["@news"], timer=clock, gateway=RequestGateway(clock=clock), sweep_interval=5.0
    ) as run:
        await wait_until(lambda: positioned(run, gid), within=60, interval=0.1)
        fake.faults.drop_updates(0.1, seed=15)
        fake.burst(channel, 2_000)
        want = fake.message_ids(channel)
        await wait_until(lambda: all(run.monitor.tracker.cursor(gid).is_published(i) for i in want), within=120)
    ids = [r["message_id"] for r in await records(settings) if r["event_type"] == "NEW"]
    assert sorted(ids) == want and len(ids) == len(set(ids))
    out_of_order = sum(1 for a, b in itertools.pairwise(ids) if b < a)
    assert out_of_order == 0


async def test_a_reaction_change_is_published_with_the_current_counts(settings: Settings) -> None:
    """UpdateMessageReactions live: an EDIT with change = REACTIONS carrying the message and its counts."""
    clock = ScaledClock(SPEED)
    fake = FakeTelegram(seed=16, monotonic=clock.monotonic)
    channel = fake.add_channel("News", username="news")
    fake.post_many(channel, 30)
    gid = fake.peer_id(channel)
    target = fake.message_ids(channel)[-3]
    async with emitter(fake, settings, ["@news"], timer=clock, gateway=RequestGateway(clock=clock)) as run:
        await wait_until(lambda: run.monitor.tracker.cursor(gid).cursor >= fake.message_ids(channel)[-1], within=60)
        fake.react(channel, target, {"🔥": 4, "👍": 2})

        async def reacted() -> bool:
            return any(r["change"] == "REACTIONS" for r in await records(settings))

        await wait_until(reacted, within=60, interval=0.3, message="no REACTIONS change was published")
    rec = next(r for r in await records(settings) if r["change"] == "REACTIONS")
    assert (rec["event_type"], rec["message_id"]) == ("EDIT", target)
    assert sorted((x["emoji"], x["count"]) for x in rec["reactions"]) == [("👍", 2), ("🔥", 4)]
    assert rec["text"]  # the whole message, not just the counts


async def test_a_delete_of_a_backfilled_basic_group_message_is_published(settings: Settings) -> None:
    """Basic-group deletions carry no chat id: the digest kept with the cursor finds the group."""
    clock = ScaledClock(SPEED)
    fake = FakeTelegram(seed=17, monotonic=clock.monotonic)
    basic = fake.add_chat("Family")
    fake.post_many(basic, 60)
    gid = fake.peer_id(basic)
    target = fake.message_ids(basic)[10]
    async with emitter(fake, settings, [gid], timer=clock, gateway=RequestGateway(clock=clock)) as run:
        await wait_until(lambda: target in run.monitor.tracker.cursor(gid).digest, within=60)
        await wait_until(lambda: positioned(run, gid), within=60, interval=0.1)
        fake.delete(basic, [target])

        async def deleted() -> bool:
            return (gid, "DELETE", target) in changes_of(await records(settings))

        await wait_until(deleted, within=60, interval=0.3, message="the deletion was not published")


async def test_a_quiet_group_writes_heartbeats_with_its_position(settings: Settings) -> None:
    """No messages for a while: the cursor still moves (heartbeat time and position) in the transactions."""
    clock = ScaledClock(SPEED)
    fake = FakeTelegram(seed=18, monotonic=clock.monotonic)
    channel = fake.add_channel("News", username="news")
    fake.post_many(channel, 5)
    gid = fake.peer_id(channel)
    async with emitter(
        fake, settings, ["@news"], timer=clock, gateway=RequestGateway(clock=clock), heartbeat_interval=10.0
    ) as run:
        await wait_until(lambda: run.monitor.tracker.cursor(gid).heartbeat is not None, within=30, interval=0.1)
        first = run.monitor.tracker.cursor(gid).heartbeat
        await wait_until(lambda: (run.monitor.tracker.cursor(gid).heartbeat or 0) > (first or 0), within=30)
        assert run.monitor.tracker.cursor(gid).pts == fake.pts_of(channel)


async def test_id_order_holds_after_telegram_says_too_long(settings: Settings) -> None:
    """150 messages while disconnected ("too long" on return) and live posts during the recovery: ascending ids."""
    clock = ScaledClock(SPEED)
    fake = FakeTelegram(seed=19, monotonic=clock.monotonic)
    channel = fake.add_channel("News", username="news")
    fake.post_many(channel, 20)
    gid = fake.peer_id(channel)
    async with emitter(fake, settings, ["@news"], timer=clock, gateway=RequestGateway(clock=clock)) as run:
        await wait_until(lambda: positioned(run, gid), within=60, interval=0.1)
        fake.set_online(False)
        for i in range(150):
            fake.post(channel, f"while away {i}", push=False)
        fake.set_online(True)
        for i in range(200):  # live posts while the emitter recovers
            fake.post(channel, f"live {i}")
            await asyncio.sleep(0.01)  # a posting rate, not a wait for readiness
        want = fake.message_ids(channel)
        await wait_until(lambda: all(run.monitor.tracker.cursor(gid).is_published(i) for i in want), within=120)
        assert run.source.stats.too_long >= 1
    ids = [r["message_id"] for r in await records(settings) if r["event_type"] == "NEW"]
    assert sorted(ids) == want and len(ids) == len(set(ids))
    assert sum(1 for a, b in itertools.pairwise(ids) if b < a) == 0
