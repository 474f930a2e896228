"""Through a real SOCKS5 proxy to a Telegram on TCP: records arrive, and with the proxy down nothing goes direct.

No patched sender here: the client is the emitter's own (`make_client`), running Telethon's real MTProto
sender and TCP transport through python-socks and microsocks to the fake Telegram's MTProto listener.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from emitter.cli import main
from emitter.settings import Settings, TelegramSettings
from emitter.telegram_client import make_client
from tests.faketelegram import FakeTelegram, wait_until
from tests.faketelegram.tcp import MTProtoListener
from tests.integration.telegram_harness import emitter, wait_for_ids
from tests.socks_proxy import OUTGOING, PASSWORD, URL, Microsocks

LISTENER_PORT = 21443
API_HASH = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def world() -> FakeTelegram:
    """A world whose DC address is the MTProto listener."""
    return FakeTelegram(seed=15, dc_address="127.0.0.1", dc_port=LISTENER_PORT)


@pytest.fixture
async def listener(world: FakeTelegram) -> AsyncIterator[MTProtoListener]:
    async with MTProtoListener(world, port=LISTENER_PORT) as server:
        yield server


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Microsocks]:
    socks = Microsocks(tmp_path / "microsocks.log")
    try:
        yield socks
    finally:
        socks.stop()


def _account(world: FakeTelegram) -> TelegramSettings:
    return TelegramSettings(
        api_id=12345,
        api_hash=SecretStr(API_HASH),
        session=SecretStr(world.new_session().save()),
        groups=["@news"],
        proxy=SecretStr(URL),
        require_proxy=True,
    )


async def test_records_arrive_through_the_proxy(
    settings: Settings, world: FakeTelegram, listener: MTProtoListener, proxy: Microsocks
) -> None:
    """Backfill and a live message reach Kafka over MTProto through microsocks; every connection came from it."""
    channel = world.add_channel("News", username="news")
    world.post_many(channel, 120)
    gid = world.peer_id(channel)
    proxy.start()
    account = _account(world)
    async with emitter(world, settings, ["@news"], client=make_client(account), proxy=account.proxy_route):
        await wait_for_ids(settings, gid, len(world.message_ids(channel)))
        world.post(channel, "live through the proxy")
        ids = await wait_for_ids(settings, gid, len(world.message_ids(channel)))
    assert sorted(ids) == world.message_ids(channel)
    assert listener.peers, "nothing reached the listener"
    assert {host for host, _ in listener.peers} == {OUTGOING}, listener.peers
    assert f"connected to 127.0.0.1:{LISTENER_PORT}" in proxy.log()
    assert world.init_connections, "no initConnection came over the socket"


async def test_proxy_down_waits_reports_and_never_goes_direct(
    settings: Settings,
    world: FakeTelegram,
    listener: MTProtoListener,
    proxy: Microsocks,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With require_proxy and the proxy down the emitter retries and says why in readiness, one line per attempt
    and no traceback; the listener sees no connection at all; once the proxy is up, records arrive through it."""
    caplog.set_level(logging.INFO)
    channel = world.add_channel("News", username="news")
    world.post_many(channel, 40)
    gid = world.peer_id(channel)
    account = _account(world)
    async with emitter(
        world, settings, ["@news"], client=make_client(account), proxy=account.proxy_route, unreachable_after=1.0
    ) as run:

        def reported() -> bool:
            return any("through proxy socks5://emitter:***@127.0.0.1:21080" in p for p in run.monitor.problems())

        await wait_until(reported, within=30, message="readiness naming the unreachable proxy")
        status = run.monitor.status()
        assert not status["ready"]
        assert status["source"]["account"]["transport"]["connected"] is False
        assert status["source"]["proxy"] == "socks5://emitter:***@127.0.0.1:21080"
        await wait_until(lambda: len(_attempts(caplog)) >= 2, within=30, message="two connection attempts")
        assert listener.peers == [], "a connection reached Telegram without the proxy"

        proxy.start()
        await wait_for_ids(settings, gid, len(world.message_ids(channel)))
        assert run.monitor.status()["source"]["account"]["transport"]["connected"] is True
    attempts = _attempts(caplog)
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in attempts), "a traceback per attempt"
    assert listener.peers and {host for host, _ in listener.peers} == {OUTGOING}, listener.peers
    assert PASSWORD not in caplog.text + json.dumps(status)


def _attempts(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Telethon's one line per failed connection attempt."""
    return [r for r in caplog.records if "at connecting failed" in r.getMessage()]


async def test_a_stop_while_the_proxy_is_down_ends_the_run(
    settings: Settings, world: FakeTelegram, listener: MTProtoListener, proxy: Microsocks
) -> None:
    """SIGTERM's stop ends a run whose first connection waits for the proxy: promptly, and still nothing direct."""
    world.add_channel("News", username="news")
    account = _account(world)
    async with emitter(world, settings, ["@news"], client=make_client(account), proxy=account.proxy_route) as run:
        await wait_until(lambda: not run.monitor.status()["source"]["connected"], within=10, message="not connected")
        run.monitor.request_stop()
        stats = await asyncio.wait_for(run.task, 10)
    assert stats.published == 0
    assert not run.source.client.is_connected()
    assert listener.peers == []


async def test_check_goes_through_the_proxy_and_names_it_masked(
    world: FakeTelegram,
    listener: MTProtoListener,
    proxy: Microsocks,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """`emitter check` names the proxy with its password masked and logs in and resolves the group through it."""
    channel = world.add_channel("News", username="news")
    proxy.start()
    for var in list(os.environ):
        if var.startswith(("EMITTER_", "TELEGRAM_")):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    env = {
        "TELEGRAM_API_ID": "12345",
        "TELEGRAM_API_HASH": API_HASH,
        "TELEGRAM_SESSION": world.new_session().save(),
        "EMITTER_TELEGRAM__GROUPS": "@news",
        "EMITTER_TELEGRAM__PROXY": URL,
        "EMITTER_TELEGRAM__REQUIRE_PROXY": "true",
    }
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    # The command runs its own event loop: in a thread, while this loop serves the listener.
    assert await asyncio.to_thread(main, ["check"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1] == "proxy: socks5://emitter:***@127.0.0.1:21080, required"
    assert f'ok @news → {world.peer_id(channel)} CHANNEL "News"' in out
    assert PASSWORD not in out
    assert listener.peers and {host for host, _ in listener.peers} == {OUTGOING}, listener.peers
