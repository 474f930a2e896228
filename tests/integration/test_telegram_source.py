"""The Telegram source end to end: real TelegramClient ↔ in-process Telegram, real Kafka broker."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections import Counter

import pytest

from emitter.clock import ScaledClock
from emitter.settings import Settings
from tests.faketelegram import FakeTelegram, wait_until
from tests.integration.kafka_read import read_committed
from tests.integration.telegram_harness import SPEED, emitter, new_ids, published, wait_for_ids


def marked(channel: object) -> int:
    """The marked id of a TL Channel."""
    return -(10**12 + channel.id)  # type: ignore[attr-defined]


def history_requests(fake: FakeTelegram, peer: int) -> int:
    return sum(1 for call in fake.history_calls if call.peer == peer)


@pytest.fixture
def fake() -> FakeTelegram:
    return FakeTelegram(seed=1, monotonic=ScaledClock(SPEED).monotonic)


async def test_backfill_of_three_groups_once_in_order_at_ten_requests_per_thousand(
    fake: FakeTelegram, settings: Settings
) -> None:
    """A 25,000-message channel with deleted-id gaps, a supergroup and a basic group: each id once, in order,
    at 10 history requests per 1,000 messages (plus one closing request per group)."""
    channel = fake.add_channel("Big channel", username="bigchannel")
    fake.post_many(channel, 25_000)
    fake.delete(channel, range(7, 25_000, 53), push=False)
    supergroup = fake.add_channel("Supergroup", username="supergroup", megagroup=True)
    fake.post_many(supergroup, 1_234)
    basic = fake.add_chat("Basic group")
    other = fake.add_user("Bob")
    for _ in range(30):  # basic-group ids come from the account-wide counter, shared with private chats
        fake.post_many(basic, 20)
        fake.post_many(other, 7)
    basic_id = fake.peer_id(basic)
    fake.reset_counters()

    async with emitter(fake, settings, ["@bigchannel", "https://t.me/supergroup", basic_id], follow=False) as run:
        await asyncio.wait_for(asyncio.shield(run.task), 300)

    for peer, gid in ((channel, marked(channel)), (supergroup, marked(supergroup)), (basic, basic_id)):
        expected = fake.message_ids(peer)
        assert await new_ids(settings, gid) == expected, f"group {gid}"
        # One request per 100 messages, plus the empty page by which Telethon knows the walk ended.
        assert history_requests(fake, gid) == math.ceil(len(expected) / 100) + 1
    big = len(fake.message_ids(channel))
    per_thousand = history_requests(fake, marked(channel)) * 1000 / big
    print(f"channel: {big} messages, {history_requests(fake, marked(channel))} requests, {per_thousand:.2f}/1000")


async def test_backfilled_records_name_their_senders_from_the_history_answer(
    fake: FakeTelegram, settings: Settings
) -> None:
    """Senders' names come from the users and chats a history page carries (the walk skips Telethon's
    per-message finishing), for users in a supergroup and for a channel's own posts."""
    group = fake.add_channel("Talk", username="talk", megagroup=True)
    ann = fake.add_user("Ann", last_name="Lee", username="ann_lee")
    bob = fake.add_user("Bob")
    for i in range(150):  # two pages, each sender on both
        fake.post(group, f"hello {i}", sender=ann if i % 3 else bob)
    news = fake.add_channel("News", username="news")
    fake.post_many(news, 3)

    async with emitter(fake, settings, ["@talk", "@news"], follow=False) as run:
        await asyncio.wait_for(asyncio.shield(run.task), 120)

    records = await read_committed(settings.kafka.bootstrap_servers[0], settings.kafka.topic)  # type: ignore[index]
    senders = Counter(
        (r["sender"]["id"], r["sender"]["name"], r["sender"]["username"])
        for _, r in records
        if r["group"]["id"] == marked(group) and r["text"].startswith("hello")  # not the creation's service message
    )
    assert senders == {(ann.id, "Ann Lee", "ann_lee"): 100, (bob.id, "Bob", None): 50}
    posts = Counter((r["sender"]["id"], r["sender"]["name"]) for _, r in records if r["group"]["id"] == marked(news))
    assert posts[(marked(news), "News")] >= 3


async def test_burst_with_dropped_updates_is_complete_after_the_sweep(fake: FakeTelegram, settings: Settings) -> None:
    """2,000 messages within a second with 10% of live updates dropped: all published exactly once."""
    group = fake.add_channel("Busy", username="busy", megagroup=True)
    fake.post_many(group, 50)
    gid = marked(group)
    async with emitter(fake, settings, ["@busy"], sweep_interval=50) as run:
        await wait_for_ids(settings, gid, 50)
        fake.faults.drop_updates(0.10, seed=7)
        fake.burst(group, 2_000)
        expected = fake.message_ids(group)
        ids = await wait_for_ids(settings, gid, len(expected), within=120)
        assert fake.faults.dropped_updates > 100
        await wait_until(lambda: run.source.stats.sweeps >= 1, within=10)
    ids = await new_ids(settings, gid)
    assert sorted(ids) == expected
    assert len(ids) == len(set(ids)) == len(expected)
    sources = Counter(s for g, kind, _, s in await published(settings) if g == gid and kind == "NEW")
    print(f"burst: {dict(sources)}; dropped updates {fake.faults.dropped_updates}")


async def test_messages_sent_while_disconnected_arrive_after_reconnect(fake: FakeTelegram, settings: Settings) -> None:
    """500 messages posted while the client is offline are published once it reconnects (no timer sweep)."""
    group = fake.add_channel("Flaky", username="flaky", megagroup=True)
    fake.post_many(group, 10)
    gid = marked(group)
    async with emitter(fake, settings, ["@flaky"], sweep_interval=3600 * 50) as run:
        await wait_for_ids(settings, gid, len(fake.message_ids(group)))
        fake.set_online(False)
        for i in range(500):
            fake.post(group, f"while offline {i}")
        fake.set_online(True)
        ids = await wait_for_ids(settings, gid, len(fake.message_ids(group)), within=120)
        assert run.source.stats.reconnects >= 1, "the reconnect hook asked for a sweep"
    ids = await new_ids(settings, gid)
    assert sorted(ids) == fake.message_ids(group)
    assert len(ids) == len(set(ids))


async def test_flood_waits_mid_backfill_are_held_by_the_gateway(fake: FakeTelegram, settings: Settings) -> None:
    """FloodWaits of 5 s and 120 s (scaled time) mid-backfill: held by the gateway, no page fetched twice."""
    group = fake.add_channel("Rate limited", username="limited")
    fake.post_many(group, 3_000)
    gid = marked(group)
    calls = itertools.count(1)
    fake.faults.flood_wait("GetHistoryRequest", 5, when=lambda _req: next(calls) == 6, times=None)
    later = itertools.count(1)
    fake.faults.flood_wait("GetHistoryRequest", 120, when=lambda _req: next(later) == 20, times=None)
    timer = ScaledClock(40)
    fake.reset_counters()
    started = timer.monotonic()
    async with emitter(fake, settings, ["@limited"], follow=False, timer=timer) as run:
        await asyncio.wait_for(asyncio.shield(run.task), 120)
        assert run.source.stats.flood_waits == 2
        assert run.source.stats.flood_wait_seconds == 125
    assert timer.monotonic() - started >= 125, "the waits were not waited out"
    assert await new_ids(settings, gid) == fake.message_ids(group)
    returned = Counter(i for call in fake.history_calls for i in call.returned_ids)
    assert returned and max(returned.values()) == 1, "a page was fetched twice"


async def test_edits_and_deletes_are_events_of_their_own(fake: FakeTelegram, settings: Settings) -> None:
    """An edit publishes EDIT (never a second NEW) and a delete publishes DELETE."""
    group = fake.add_channel("Edited", username="edited", megagroup=True)
    fake.post_many(group, 10)
    gid = marked(group)
    async with emitter(fake, settings, ["@edited"], sweep_interval=25):
        await wait_for_ids(settings, gid, 10)
        fake.edit(group, 3, "changed text")
        fake.delete(group, [4])

        async def both() -> bool:
            kinds = {(kind, m) for g, kind, m, _ in await published(settings) if g == gid}
            return ("EDIT", 3) in kinds and ("DELETE", 4) in kinds

        await wait_until(both, within=30, interval=0.3)
    events = [(kind, m) for g, kind, m, _ in await published(settings) if g == gid]
    assert events.count(("NEW", 3)) == 1
    assert events.count(("EDIT", 3)) == 1
    assert events.count(("DELETE", 4)) == 1


async def test_migration_mid_follow_continues_in_the_supergroup(fake: FakeTelegram, settings: Settings) -> None:
    """A basic group that becomes a supergroup is followed there: later messages arrive from the new id."""
    chat = fake.add_chat("Growing group")
    fake.post_many(chat, 20)
    chat_id = fake.peer_id(chat)
    async with emitter(fake, settings, [chat_id], sweep_interval=25):
        await wait_for_ids(settings, chat_id, 20)
        channel = fake.migrate(chat)
        for i in range(5):
            fake.post(channel, f"in the supergroup {i}")
        await wait_for_ids(settings, marked(channel), 6, within=60)
    new_group = await new_ids(settings, marked(channel))
    assert sorted(new_group) == fake.message_ids(channel)
    assert len(new_group) == len(set(new_group))
    old = await new_ids(settings, chat_id)
    assert sorted(old) == fake.message_ids(chat)  # the migration service message included


async def test_lost_access_to_one_group_leaves_the_others_flowing(
    fake: FakeTelegram, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """ChannelPrivate in one of three groups marks it failed and names it; the other two keep flowing."""
    groups = [fake.add_channel(f"Group {i}", username=f"group_{i}", megagroup=True) for i in range(3)]
    for g in groups:
        fake.post_many(g, 5)
    lost = marked(groups[1])
    with caplog.at_level(logging.ERROR, logger="emitter"):
        async with emitter(fake, settings, ["@group_0", "@group_1", "@group_2"], sweep_interval=25) as run:
            for g in groups:
                await wait_for_ids(settings, marked(g), len(fake.message_ids(g)))
            fake.revoke_access(groups[1])
            await wait_until(lambda: lost in run.monitor.stats.failed, within=30)
            for g in (groups[0], groups[2]):
                for i in range(10):
                    fake.post(g, f"after {i}")
            for g in (groups[0], groups[2]):
                expected = fake.message_ids(g)
                assert sorted(await wait_for_ids(settings, marked(g), len(expected))) == expected
            status = run.monitor.status()
            assert status["failed"] == {lost: run.monitor.stats.failed[lost]}
            assert "ChannelPrivateError" in run.monitor.stats.failed[lost]
    assert any(str(lost) in r.getMessage() and "failed" in r.getMessage() for r in caplog.records)
