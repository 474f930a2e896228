"""The read budget against the fake Telegram and the real broker, its day run on a scaled clock.

A backfill stops where the budget is spent and the group goes on publishing live messages; a restart keeps
the spending (it travels in the cursors); the backfill resumes once the oldest reads leave the window.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from emitter.cli import main
from emitter.clock import ScaledClock
from emitter.read_budget import BUCKET, WINDOW
from emitter.settings import Settings
from emitter.telegram_gateway import RequestGateway
from tests.faketelegram import FakeTelegram, wait_until
from tests.integration.telegram_harness import emitter, published

pytestmark = pytest.mark.integration

SPEED = 1000
"""A day and an hour (the longest a spent budget waits) pass in about 90 s: the live check and a restart on a
loaded machine fit well inside the day (the test fails, saying so, if the restart outlasts it)."""
FAST = 4000
"""For the test that restarts nothing."""
BUDGET = 1000
HISTORY = 5000
QUIET = {"sweep_interval": 6 * 3600.0, "heartbeat_interval": 6 * 3600.0}
"""Sweeps and heartbeats on Telegram's hours, not every few real milliseconds at this speed."""


def phase(run: Any, gid: int) -> dict[str, Any]:
    """The group's entry in the source's /readyz status (empty until it is resolved)."""
    assert not run.task.done(), run.task
    group: dict[str, Any] = run.source.status()["groups"].get(str(gid), {})
    return group


async def new_by_source(settings: Settings, gid: int) -> Counter[tuple[int, str]]:
    """(message id, source) of the group's NEW records, counted."""
    return Counter((m, src) for g, kind, m, src in await published(settings) if g == gid and kind == "NEW")


async def backfilled(settings: Settings, gid: int) -> list[int]:
    """Ids of the group's NEW records a backfill walk published, ascending."""
    return sorted(m for m, src in (await new_by_source(settings, gid)).elements() if src == "BACKFILL")


async def test_a_spent_budget_pauses_the_backfill_lets_live_through_and_resumes_after_the_day(
    settings: Settings,
) -> None:
    """A budget of 1,000 stops a 5,000-message backfill at 1,000 (also across a restart), live messages are
    published during the pause, readiness holds and says when it resumes, and after the window it reads on."""
    clock = ScaledClock(SPEED)
    fake = FakeTelegram(seed=15, monotonic=clock.monotonic)
    group = fake.add_channel("Big", username="big", megagroup=True)
    fake.post_many(group, HISTORY)
    gid = fake.peer_id(group)
    history = fake.message_ids(group)
    spent_at = 0.0

    async with emitter(fake, settings, ["@big"], timer=clock, read_budget=BUDGET, **QUIET) as run:
        await wait_until(lambda: phase(run, gid).get("state") == "backfill paused", within=60, message="the pause")
        spent_at = clock.time()
        resume_at = run.source.budget.resumes_at(spent_at)
        assert resume_at is not None
        status = phase(run, gid)
        assert "read budget" in status["reason"]
        assert "resumes_at" in status
        assert run.source.status()["read_budget"]["left"] == 0
        assert run.source.problems() == []
        assert run.monitor.ready
        assert run.monitor.progress.get(run.source.live.followed[gid].group).paused_until is not None
        for i in range(5):
            fake.post(group, f"live {i}")
        live = fake.message_ids(group)[-5:]

        async def live_published() -> bool:
            got = await new_by_source(settings, gid)
            return all((m, "LIVE") in got for m in live)

        await wait_until(live_published, within=30, interval=0.3, message="live messages during the pause")
        assert phase(run, gid).get("state") == "backfill paused"
        assert await backfilled(settings, gid) == history[:BUDGET]

    # The spending is in the committed cursors: a restart (a new session) does not start a fresh day.
    stopped = time.monotonic()
    async with emitter(fake, settings, ["@big"], timer=clock, read_budget=BUDGET, **QUIET) as run:
        await wait_until(
            lambda: phase(run, gid).get("state") == "backfill paused", within=WINDOW / SPEED, message="paused again"
        )
        restart = time.monotonic() - stopped
        assert clock.time() < resume_at, "the restart took longer than the budget's day (scaled): test too slow"
        assert await backfilled(settings, gid) == history[:BUDGET]
        assert run.source.budget.resumes_at(clock.time()) == resume_at

        async def resumed() -> bool:
            return len(await backfilled(settings, gid)) > BUDGET

        await wait_until(resumed, within=(WINDOW + BUCKET) / SPEED + 60, interval=0.2, message="the resume")
        resumed_after = clock.time() - spent_at

    got = await new_by_source(settings, gid)
    assert max(got.values()) == 1, "every message once"
    walked = await backfilled(settings, gid)
    assert walked == history[: len(walked)]
    assert BUDGET < len(walked) <= 2 * BUDGET, "a second day reads no more than a day's budget"
    assert resumed_after >= WINDOW
    print(
        f"read budget: paused at {BUDGET} of {HISTORY}, resumed after {resumed_after / 3600:.1f} h (scaled); "
        f"the restart took {restart:.1f} s"
    )


async def test_a_paused_backfill_gives_back_its_slot_so_queued_groups_publish_live(settings: Settings) -> None:
    """With one backfill slot, the group that spent the budget gives the slot back: the group queued behind it
    pauses too (nothing left to read) and publishes its live messages instead of waiting a day in the queue."""
    clock = ScaledClock(FAST)
    fake = FakeTelegram(seed=16, monotonic=clock.monotonic)
    big = fake.add_channel("Big", username="big", megagroup=True)
    small = fake.add_channel("Small", username="small", megagroup=True)
    fake.post_many(big, 300)
    fake.post_many(small, 50)
    gids = [fake.peer_id(big), fake.peer_id(small)]
    gateway = RequestGateway(backfill_concurrency=1, clock=clock)
    async with emitter(
        fake, settings, ["@big", "@small"], timer=clock, gateway=gateway, read_budget=100, **QUIET
    ) as run:
        await wait_until(
            lambda: all(phase(run, g).get("state") in ("backfill paused", "following") for g in gids),
            within=60,
            message="both groups out of the backfill queue",
        )
        states = {phase(run, g)["state"] for g in gids}
        for g in (big, small):
            fake.post(g, "live")
        live = {fake.peer_id(g): fake.message_ids(g)[-1] for g in (big, small)}

        async def live_published() -> bool:
            got = Counter((g, m, src) for g, kind, m, src in await published(settings) if kind == "NEW")
            return all((g, m, "LIVE") in got for g, m in live.items())

        await wait_until(live_published, within=30, interval=0.3, message="live messages of both groups")
        assert "backfill paused" in states
        assert sum([len(await backfilled(settings, g)) for g in gids]) == 100
        print(f"one slot, budget 100: group states {sorted(states)}")


async def test_check_prints_the_budget_the_cursors_hold(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """After a run spent its budget, `emitter check` prints spent of per day and until when backfills pause,
    read from the committed cursors, beside the account's state; the proxy it names has its password masked."""
    clock = ScaledClock(1)  # the budget's hours on the wall clock `emitter check` reads
    fake = FakeTelegram(seed=16, monotonic=clock.monotonic)
    group = fake.add_channel("Big", username="bigger", megagroup=True)
    fake.post_many(group, 600)
    gid = fake.peer_id(group)
    async with emitter(fake, settings, ["@bigger"], timer=clock, read_budget=200, **QUIET) as run:
        await wait_until(lambda: phase(run, gid).get("state") == "backfill paused", within=60, message="the pause")
        now = clock.time()
        spent = 200 - run.source.budget.left(now)
        resume = run.source.budget.resumes_at(now)
    assert resume is not None
    for var in list(os.environ):
        if var.startswith(("EMITTER_", "TELEGRAM_")):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    k = settings.kafka
    env = {
        "TELEGRAM_API_ID": "12345",
        "TELEGRAM_API_HASH": "0123456789abcdef0123456789abcdef",
        "TELEGRAM_SESSION": fake.new_session().save(),
        "EMITTER_TELEGRAM__GROUPS": "@bigger",
        "EMITTER_TELEGRAM__READ_BUDGET_PER_DAY": "200",
        "EMITTER_TELEGRAM__PROXY": "socks5://emitter:check-proxy-pw@127.0.0.1:21080",
        "EMITTER_KAFKA__BOOTSTRAP_SERVERS": ",".join(k.bootstrap_servers or ()),
        "EMITTER_KAFKA__TOPIC": k.topic,
        "EMITTER_KAFKA__CURSOR_TOPIC": k.cursor_topic,
        "EMITTER_KAFKA__TRANSACTIONAL_ID_PREFIX": k.transactional_id_prefix,
        "EMITTER_KAFKA__PARTITIONS": str(k.partitions),
        "EMITTER_EMITTER__INSTANCE": settings.emitter.instance,
    }
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    with fake.patch_telethon():  # the in-process fake ignores the proxy: this checks what check prints
        assert await asyncio.to_thread(main, ["check"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    until = datetime.fromtimestamp(int(resume), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "proxy: socks5://emitter:***@127.0.0.1:21080" in lines
    assert lines[-2:] == [
        "account: ok",
        f"read budget: {spent} of 200 messages per rolling 24 h spent; backfills paused until {until} (follow goes on)",
    ]
    assert spent >= 200
    assert "check-proxy-pw" not in out
