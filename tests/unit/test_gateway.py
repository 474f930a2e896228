"""The request gateway: pacing per kind, priorities, flood holds without herds, retries, error classes.

The gateway is the unit here, so what sits below it is a recording stand-in for Telethon's `_call`; the
integration tests drive the real TelegramClient through it against the fake Telegram.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from telethon import errors
from telethon.errors import AuthKeyNotFound
from telethon.tl import functions, types

from emitter.account_health import AccountState
from emitter.clock import ScaledClock
from emitter.telegram_gateway import (
    AccountGoneError,
    Bucket,
    ErrorClass,
    Pace,
    Priority,
    RequestGateway,
    RequestKind,
    classify,
    kind_of,
    method_name,
    parse_paces,
    requests_for,
)
from tests.faketelegram import wait_until

HISTORY = functions.messages.GetHistoryRequest(types.InputPeerEmpty(), 0, None, 0, 100, 0, 0, 0)
RESOLVE = functions.contacts.ResolveUsernameRequest("somechannel")


def rpc(code: int, message: str, request: Any = HISTORY) -> BaseException:
    """An RPC error exactly as Telethon builds it from Telegram's answer."""
    return errors.rpc_message_to_error(types.RpcError(code, message), request)


class StandIn:
    """Telethon's `_call` as the gateway sees it: records when each request went out, fails on script."""

    def __init__(self, clock: ScaledClock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, str]] = []
        self.script: list[Callable[[Any], BaseException | None]] = []
        self.connected = True
        self._flood_waited_requests: dict[int, float] = {}
        self.flood_sleep_threshold = 60
        self._request_retries = 5

    def is_connected(self) -> bool:
        return self.connected

    async def _call(self, sender: Any, request: Any, ordered: bool = False, flood_sleep_threshold: Any = None) -> Any:
        self.sent.append((self.clock.monotonic(), method_name(request)))
        for rule in list(self.script):
            error = rule(request)
            if error is not None:
                raise error
        return "ok"

    def fail(self, error: BaseException, times: int, on: type | None = None) -> None:
        left = [times]

        def rule(request: Any) -> BaseException | None:
            if left[0] <= 0 or (on is not None and not isinstance(request, on)):
                return None
            left[0] -= 1
            return error

        self.script.append(rule)


def gateway(clock: ScaledClock, **kwargs: Any) -> tuple[RequestGateway, StandIn]:
    client = StandIn(clock)
    gw = RequestGateway(clock=clock, **kwargs)
    gw.attach(client)
    return gw, client


def test_requests_are_sorted_into_kinds_by_method() -> None:
    """Each TL method is paced by its own bucket; wrappers are looked through."""
    assert kind_of(HISTORY) is RequestKind.HISTORY
    assert kind_of(functions.InvokeWithLayerRequest(229, RESOLVE)) is RequestKind.RESOLVE
    assert kind_of(functions.channels.GetMessagesRequest(types.InputChannelEmpty(), [])) is RequestKind.MESSAGES
    assert kind_of(functions.updates.GetStateRequest()) is RequestKind.OTHER
    assert method_name(RESOLVE) == "contacts.ResolveUsername"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (rpc(420, "FLOOD_WAIT_30"), ErrorClass.FLOOD),
        (rpc(401, "AUTH_KEY_UNREGISTERED"), ErrorClass.ACCOUNT_GONE),
        (rpc(401, "SESSION_REVOKED"), ErrorClass.ACCOUNT_GONE),
        (rpc(401, "SESSION_EXPIRED"), ErrorClass.ACCOUNT_GONE),
        (rpc(401, "AUTH_KEY_PERM_EMPTY"), ErrorClass.ACCOUNT_GONE),
        (rpc(406, "AUTH_KEY_DUPLICATED"), ErrorClass.ACCOUNT_GONE),
        (rpc(401, "USER_DEACTIVATED_BAN"), ErrorClass.ACCOUNT_GONE),
        (AuthKeyNotFound(), ErrorClass.ACCOUNT_GONE),
        (rpc(400, "CHANNEL_PRIVATE"), ErrorClass.LOST_ACCESS),
        (rpc(400, "USER_BANNED_IN_CHANNEL"), ErrorClass.LOST_ACCESS),
        (rpc(500, "RPC_CALL_FAIL"), ErrorClass.TRANSIENT),
        (rpc(500, "INTERNAL"), ErrorClass.TRANSIENT),
        (rpc(-503, "Timeout"), ErrorClass.TRANSIENT),
        (ValueError("Request was unsuccessful 5 time(s)"), ErrorClass.TRANSIENT),
        (ConnectionError("Cannot send requests while disconnected"), ErrorClass.TRANSIENT),
        (rpc(400, "USERNAME_NOT_OCCUPIED", RESOLVE), ErrorClass.REQUEST),
        (ValueError("Could not find the input entity"), ErrorClass.REQUEST),
    ],
)
def test_errors_are_classified_once(error: BaseException, expected: ErrorClass) -> None:
    """Every Telegram error falls in one class, which says how the emitter reacts."""
    assert classify(error) is expected


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    """Burst requests at once, then one per 1/rate seconds."""
    b = Bucket(Pace(2.0, 3))
    for _ in range(3):
        assert b.wait_time(0.0) == 0
        b.take(0.0)
    assert b.wait_time(0.0) == pytest.approx(0.5)
    assert b.wait_time(0.5) == 0


def test_a_flood_wait_holds_halves_and_recovers_slowly() -> None:
    """A FloodWait holds the bucket for its length, halves its rate, and the rate grows back over minutes."""
    b = Bucket(Pace(1.0, 5))
    b.flooded(10.0, 30.0)
    assert b.wait_time(20.0) == pytest.approx(20.0)
    assert b.rate == pytest.approx(0.5, abs=0.02)
    assert b.wait_time(40.0) > 0, "the bucket restarts empty: no burst right after a wait"
    b.wait_time(10.0 + 600.0)
    assert b.rate == pytest.approx(1.0)


def test_paces_parse_and_bad_ones_are_named() -> None:
    """`kind=rate/burst` overrides; an unknown kind or a bad number is one clear error."""
    assert parse_paces("history=2/10, resolve=0.01/2") == {
        RequestKind.HISTORY: Pace(2.0, 10),
        RequestKind.RESOLVE: Pace(0.01, 2),
    }
    with pytest.raises(ValueError, match="'histroy' is not a request kind"):
        parse_paces("histroy=1/5")
    with pytest.raises(ValueError, match="expected kind=rate/burst"):
        parse_paces("history=0/5")


async def test_a_kind_never_goes_above_its_pace() -> None:
    """30 history requests at once: the first `burst` go together, the rest one per 1/rate."""
    clock = ScaledClock(200)
    gw, client = gateway(clock, paces={RequestKind.HISTORY: Pace(2.0, 4)})
    await asyncio.gather(*(gw.call(None, HISTORY) for _ in range(30)))
    times = [t for t, _ in client.sent]
    assert len(times) == 30
    for i in range(30):  # any window of W seconds holds at most burst + rate * W requests
        for j in range(i + 1, 30):
            assert j - i + 1 <= 4 + 2.0 * (times[j] - times[i]) + 0.05, (i, j, times[j] - times[i])
    assert times[-1] - times[0] >= (30 - 4) / 2.0 * 0.95, "faster than the pace on average"


async def test_live_requests_go_before_queued_backfill() -> None:
    """With a busy kind, a live request overtakes backfill requests that queued before it."""
    clock = ScaledClock(100)
    gw, _client = gateway(clock, paces={RequestKind.HISTORY: Pace(1.0, 1)})
    order: list[str] = []

    async def one(name: str, prio: Priority) -> None:
        with requests_for(None, prio):
            await gw.call(None, HISTORY)
        order.append(name)

    backfill = [asyncio.create_task(one(f"backfill {i}", Priority.BACKFILL)) for i in range(4)]
    await asyncio.sleep(0)
    live = asyncio.create_task(one("live", Priority.LIVE))
    await asyncio.gather(*backfill, live)
    assert order.index("live") <= 1, order


async def test_a_flood_wait_holds_only_its_kind_and_releases_one_at_a_time() -> None:
    """FLOOD_WAIT on history: resolve requests still go; history resumes after the wait, spaced, no herd."""
    clock = ScaledClock(50)
    gw, client = gateway(clock, paces={RequestKind.HISTORY: Pace(1.0, 5)})
    client.fail(rpc(420, "FLOOD_WAIT_20"), times=1, on=functions.messages.GetHistoryRequest)
    start = clock.monotonic()
    history = [asyncio.create_task(gw.call(None, HISTORY)) for _ in range(6)]
    await asyncio.sleep(clock.to_real(2))
    await gw.call(None, RESOLVE)
    resolved_at = clock.monotonic() - start
    await asyncio.gather(*history)
    assert resolved_at < 10, "another kind waited for history's flood wait"
    after = [t - start for t, m in client.sent if m == "messages.GetHistory"][1:]
    assert all(t >= 20 - 0.5 for t in after), f"history sent during the wait: {after}"
    # The halved rate (0.5/s) from an empty bucket: five requests take about 8 s, never a herd (a loaded
    # machine oversleeps a little, which a token bucket may then spend as two requests close together).
    assert after[-1] - after[0] >= 4 / 0.5 * 0.6, f"resumed as a herd: {after}"
    assert all(sum(1 for u in after if t <= u < t + 1) <= 2 for t in after), f"resumed as a herd: {after}"
    assert gw.stats.flood_waits["messages.GetHistory"] == 1


async def test_transient_errors_are_retried_until_they_pass() -> None:
    """A spell of 500s longer than Telethon's own retries is waited out here, with backoff, and counted."""
    clock = ScaledClock(200)
    gw, client = gateway(clock)
    client.fail(ValueError("Request was unsuccessful 5 time(s)"), times=4)
    assert await gw.call(None, HISTORY) == "ok"
    assert gw.stats.retries["messages.GetHistory"] == 4
    times = [t for t, _ in client.sent]
    assert times[-1] - times[0] >= 1 + 2 + 4 - 3, "no backoff between retries"


async def test_a_dead_session_stops_every_request() -> None:
    """AUTH_KEY_UNREGISTERED raises AccountGoneError, naming `emitter login`; later requests fail at once."""
    clock = ScaledClock(200)
    gw, client = gateway(clock)
    client.fail(rpc(401, "AUTH_KEY_UNREGISTERED"), times=1)
    with pytest.raises(AccountGoneError, match="run `emitter login`"):
        await gw.call(None, HISTORY)
    sent = len(client.sent)
    with pytest.raises(AccountGoneError):
        await gw.call(None, RESOLVE)
    assert len(client.sent) == sent
    assert gw.stats.account_gone == 1


async def test_attaching_takes_flood_sleeping_away_from_telethon() -> None:
    """Telethon's own sleeping would wake every waiter at once, its own retries skip the pacing: both are off."""
    clock = ScaledClock(200)
    gw, client = gateway(clock)
    assert client.flood_sleep_threshold == 0
    assert client._request_retries == 0
    gw.detach()
    assert "_call" not in vars(client)


async def test_a_busy_kind_still_serves_its_oldest_waiter_now_and_then() -> None:
    """Sweeps that alone ask for more than the pace never starve a backfill: every few grants go to the oldest."""
    clock = ScaledClock(200)
    gw, _client = gateway(clock, paces={RequestKind.HISTORY: Pace(2.0, 1)})
    done: list[str] = []

    async def one(name: str, prio: Priority) -> None:
        with requests_for(None, prio):
            await gw.call(None, HISTORY)
        done.append(name)

    backfill = asyncio.create_task(one("backfill", Priority.BACKFILL))
    await asyncio.sleep(0)
    sweeps = [asyncio.create_task(one(f"sweep {i}", Priority.SWEEP)) for i in range(12)]
    await asyncio.gather(backfill, *sweeps)
    assert done.index("backfill") < 6, done


async def test_the_end_of_a_long_wait_is_reported_without_any_request(caplog: pytest.LogCaptureFixture) -> None:
    """A 120 s FloodWait makes the account waiting; its end is reported when it comes, though nothing is sent."""
    caplog.set_level(logging.INFO, logger="emitter.telegram")
    clock = ScaledClock(100)
    gw, client = gateway(clock)
    heard: list[AccountState] = []
    gw.add_health_listener(lambda h: heard.append(h.state))
    client.fail(rpc(420, "FLOOD_WAIT_120"), times=1)
    task = asyncio.create_task(gw.call(None, HISTORY))
    await wait_until(lambda: heard == [AccountState.WAITING], within=5)
    health = gw.account_health()
    assert health.until is not None and 0 < health.until - time.time() <= 1.2, "until is not on the wall clock"
    task.cancel()
    await wait_until(lambda: heard == [AccountState.WAITING, AccountState.OK], within=5)
    lines = [r for r in caplog.records if getattr(r, "account_state", None)]
    assert [(r.name, r.account_state) for r in lines] == [("emitter.telegram", "waiting"), ("emitter.telegram", "ok")]


async def test_a_failing_health_listener_is_logged_and_the_request_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    """A listener that raises is logged; the other listeners still hear the change and the caller its error."""
    clock = ScaledClock(200)
    gw, client = gateway(clock)
    heard: list[AccountState] = []

    def broken(_health: Any) -> None:
        raise RuntimeError("the user's bug")

    gw.add_health_listener(broken)
    gw.add_health_listener(lambda h: heard.append(h.state))
    client.fail(rpc(403, "USER_RESTRICTED"), times=1)
    with pytest.raises(errors.UserRestrictedError):
        await gw.call(None, HISTORY)
    assert heard == [AccountState.RESTRICTED]
    assert any("health callback" in r.getMessage() and r.exc_info for r in caplog.records)
    assert await gw.call(None, HISTORY) == "ok"
    assert heard == [AccountState.RESTRICTED, AccountState.OK], "the method's success ends the restriction"
