"""The account's health against the in-process Telegram: a ban, a logout and a long flood wait are each one
change of state, seen alike in /metrics, /readyz, the log and the health callback."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from typing import Any
from unittest.mock import ANY

import pytest
from prometheus_client.parser import text_string_to_metric_families

from emitter.account_health import AccountHealth
from emitter.app import probe_routes
from emitter.clock import ScaledClock
from emitter.errors import FatalError
from emitter.http_server import HttpServer
from emitter.settings import Settings
from emitter.telegram_client import client_options
from tests.faketelegram import FakeTelegram, wait_until
from tests.integration.telegram_harness import SPEED, Running, emitter, wait_for_ids

pytestmark = pytest.mark.integration


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Observed:
    """What an operator and a library user see of the account: the probe, the scrape, the log, the callback."""

    def __init__(self, run: Running, server: HttpServer, caplog: pytest.LogCaptureFixture) -> None:
        self.run, self.server, self.caplog = run, server, caplog
        self.calls: list[AccountHealth] = []

    async def readyz(self) -> tuple[int, dict[str, Any]]:
        status, body = await asyncio.to_thread(_get, self.server.port, "/readyz")
        return status, json.loads(body)

    async def metric_state(self) -> str:
        """The `state` label whose `emitter_account_state` sample is 1 (exactly one must be)."""
        _, body = await asyncio.to_thread(_get, self.server.port, "/metrics")
        family = next(f for f in text_string_to_metric_families(body) if f.name == "emitter_account_state")
        current = [s.labels["state"] for s in family.samples if s.value == 1]
        assert len(current) == 1, family.samples
        return current[0]

    def logged(self) -> list[str]:
        """`account_state` of every account-health log line of the logger `emitter.telegram`."""
        return [
            r.account_state for r in self.caplog.records if r.name == "emitter.telegram" and hasattr(r, "account_state")
        ]


async def observing(run: Running, caplog: pytest.LogCaptureFixture) -> tuple[Observed, HttpServer]:
    run.monitor.metrics.bind_telegram(run.source)  # as `emitter run` does
    server = HttpServer(probe_routes(run.monitor))
    await server.start()
    return Observed(run, server, caplog), server


@pytest.mark.parametrize(
    ("how", "message", "state"),
    [
        ("rpc", "USER_DEACTIVATED_BAN", "banned"),
        ("rpc", "SESSION_REVOKED", "logged out"),
        ("rpc", "AUTH_KEY_UNREGISTERED", "logged out"),
        ("transport", "AuthKeyNotFound", "logged out"),
    ],
)
async def test_a_ban_or_a_logout_is_one_change_everywhere(
    settings: Settings, caplog: pytest.LogCaptureFixture, how: str, message: str, state: str
) -> None:
    """Telegram bans the account or ends its session (401 or transport -404) mid-follow: one change to banned
    or logged out in the callback, the log, `emitter_account_state` and /readyz (not ready); the emitter stops."""
    caplog.set_level(logging.INFO, logger="emitter.telegram")
    clock = ScaledClock(SPEED)
    fake = FakeTelegram(seed=31, monotonic=clock.monotonic)
    group = fake.add_channel("Watched", username="watched", megagroup=True)
    fake.post_many(group, 150)
    client = fake.client(fake.new_session(), **client_options())
    calls: list[AccountHealth] = []
    with pytest.raises(FatalError, match="emitter login"):  # noqa: PT012 - raised as the run ends, after the checks
        async with emitter(
            fake, settings, ["@watched"], client=client, timer=clock, sweep_interval=30, health_callback=calls.append
        ) as run:
            seen, server = await observing(run, caplog)
            try:
                await wait_for_ids(settings, fake.peer_id(group), 150)
                assert await seen.metric_state() == "ok"
                assert calls == [] and seen.logged() == []
                fake.kill_session(client, how=how, **({"message": message} if how == "rpc" else {}))
                await asyncio.wait({run.task}, timeout=15)
                assert run.task.done(), "the emitter did not stop"
                status, ready = await seen.readyz()
                metric = await seen.metric_state()
            finally:
                await server.stop()
    assert [c.state.value for c in calls] == [state]
    assert calls[0].reason == message
    assert seen.logged() == [state]
    assert metric == state
    assert status == 503
    assert ready["source"]["account"]["state"] == state
    assert ready["source"]["account"]["reason"] == message


async def test_a_long_flood_wait_is_one_change_to_waiting_and_one_back(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A 600 s FloodWait on a sweep: waiting (with its end) in the callback, the log, the metric and /readyz
    while it runs, ok again once it is over, one change each way; short waits change nothing."""
    caplog.set_level(logging.INFO, logger="emitter.telegram")
    clock = ScaledClock(SPEED)
    fake = FakeTelegram(seed=32, monotonic=clock.monotonic)
    group = fake.add_channel("Busy", username="busy", megagroup=True)
    fake.post_many(group, 150)
    gid = fake.peer_id(group)
    calls: list[AccountHealth] = []
    async with emitter(fake, settings, ["@busy"], timer=clock, sweep_interval=30, health_callback=calls.append) as run:
        seen, server = await observing(run, caplog)
        try:
            await wait_for_ids(settings, gid, 150)
            fake.faults.flood_wait("GetHistoryRequest", 5)  # everyday pacing: no news
            long = fake.faults.flood_wait("GetHistoryRequest", 600)  # the next one
            await wait_until(lambda: long.exhausted, within=30, message="the sweep's history request")
            status, ready = await seen.readyz()
            account = ready["source"]["account"]
            assert account["state"] == "waiting", ready
            assert account["reason"] == "FLOOD_WAIT_600" and account["method"] == "messages.GetHistory"
            assert 0 < account["seconds_left"] <= 600
            assert status == 200, "a wait is no reason to be unready"
            assert await seen.metric_state() == "waiting"
            assert [c.state.value for c in calls] == ["waiting"]
            fake.post(group, "during the wait")

            async def over() -> bool:
                return await seen.metric_state() == "ok"

            await wait_until(over, within=30, message="the end of the wait")  # 600 s at 50x: 12 s
            await wait_for_ids(settings, gid, 151)
            _, ready = await seen.readyz()
            assert ready["source"]["account"] == {"state": "ok", "transport": {"connected": True, "since": ANY}}
        finally:
            await server.stop()
    assert [c.state.value for c in calls] == ["waiting", "ok"]
    assert calls[0].until is not None and calls[0].until > 0
    assert seen.logged() == ["waiting", "ok"]
    assert run.source.stats.flood_waits >= 2


async def test_a_lost_group_is_counted_and_given_back(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """The account loses one of two groups: "lost access" with that group in the callback, the log, the
    metrics and /readyz; once access returns and the re-check reads it, ok again."""
    caplog.set_level(logging.INFO, logger="emitter.telegram")
    clock = ScaledClock(SPEED)
    fake = FakeTelegram(seed=33, monotonic=clock.monotonic)
    groups = [fake.add_channel(f"Group {i}", username=f"group_{i}", megagroup=True) for i in range(2)]
    for g in groups:
        fake.post_many(g, 10)
    lost = fake.peer_id(groups[1])
    calls: list[AccountHealth] = []
    specs: list[str | int] = ["@group_0", "@group_1"]
    async with emitter(
        fake, settings, specs, timer=clock, sweep_interval=20, recheck_interval=120, health_callback=calls.append
    ) as run:
        seen, server = await observing(run, caplog)
        try:
            await wait_for_ids(settings, lost, 10)
            fake.revoke_access(groups[1])

            async def lost_one() -> bool:
                return await seen.metric_state() == "lost access"

            await wait_until(lost_one, within=30, message="the lost group")
            _, ready = await seen.readyz()
            assert ready["source"]["account"] == {
                "state": "lost access",
                "lost_groups": [lost],
                "transport": {"connected": True, "since": ANY},
            }
            _, body = await asyncio.to_thread(_get, server.port, "/metrics")
            assert "emitter_account_lost_groups 1.0" in body
            fake.restore_access(groups[1])

            async def back() -> bool:
                return await seen.metric_state() == "ok"

            await wait_until(back, within=30, message="the re-check")  # 120 s at 50x
        finally:
            await server.stop()
    assert [(c.state.value, c.lost_groups) for c in calls] == [("lost access", (lost,)), ("ok", ())]
    assert seen.logged() == ["lost access", "ok"]
