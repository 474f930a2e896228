"""The account's health state machine: verdicts from Telegram's own errors, one change per change of state."""

from __future__ import annotations

import pytest
from telethon.errors import AuthKeyNotFound, rpc_message_to_error
from telethon.tl.types import RpcError

from emitter.account_health import (
    OK,
    AccountHealth,
    AccountState,
    HealthMachine,
    account_verdict,
    error_name,
)


def rpc(code: int, message: str) -> Exception:
    """An RPC error exactly as Telethon builds it from Telegram's answer."""
    return rpc_message_to_error(RpcError(code, message), None)


@pytest.mark.parametrize(
    ("code", "message", "verdict"),
    [
        (401, "USER_DEACTIVATED_BAN", AccountState.BANNED),
        (401, "USER_DEACTIVATED", AccountState.BANNED),
        (400, "PHONE_NUMBER_BANNED", AccountState.BANNED),
        (401, "AUTH_KEY_UNREGISTERED", AccountState.LOGGED_OUT),
        (401, "SESSION_REVOKED", AccountState.LOGGED_OUT),
        (401, "SESSION_EXPIRED", AccountState.LOGGED_OUT),
        (406, "AUTH_KEY_DUPLICATED", AccountState.LOGGED_OUT),
        (401, "SOMETHING_NEW_401", AccountState.LOGGED_OUT),
        (403, "USER_RESTRICTED", AccountState.RESTRICTED),
        (400, "PEER_FLOOD", AccountState.RESTRICTED),
        (420, "FROZEN_METHOD_INVALID", AccountState.RESTRICTED),
        (400, "CHANNEL_PRIVATE", None),
        (420, "FLOOD_WAIT_600", None),
        (500, "RPC_CALL_FAIL", None),
        (400, "USERNAME_INVALID", None),
        (401, "SESSION_PASSWORD_NEEDED", None),
    ],
)
def test_account_verdicts_come_from_telegrams_error_names(code: int, message: str, verdict: AccountState) -> None:
    """Bans, logouts and restrictions are told apart by Telegram's error name; others prove nothing."""
    assert account_verdict(rpc(code, message)) is verdict


def test_a_transport_404_is_a_logout_and_errors_keep_telegrams_name() -> None:
    """AuthKeyNotFound (the transport -404) means logged out; known and unknown errors keep Telegram's name."""
    assert account_verdict(AuthKeyNotFound()) is AccountState.LOGGED_OUT
    assert error_name(rpc(401, "USER_DEACTIVATED_BAN")) == "USER_DEACTIVATED_BAN"
    assert error_name(rpc(401, "SOMETHING_NEW_401")) == "SOMETHING_NEW_401"
    assert error_name(ConnectionError("x")) == "ConnectionError"


def test_a_ban_is_one_change_however_often_it_is_seen_and_is_final() -> None:
    """A thousand banned answers are one change; no later success makes the account ok again."""
    machine = HealthMachine()
    changes = [machine.failed(rpc(401, "USER_DEACTIVATED_BAN"), float(t), method="users.GetUsers") for t in range(1000)]
    assert [c for c in changes if c is not None] == [
        AccountHealth(AccountState.BANNED, "USER_DEACTIVATED_BAN", "users.GetUsers")
    ]
    assert machine.succeeded(2000.0, method="users.GetUsers", group=-100) is None
    assert machine.current.state is AccountState.BANNED


def test_a_ban_outranks_a_logout_but_a_logout_never_hides_a_ban() -> None:
    """Logged out then banned becomes banned; banned then logged out stays banned."""
    machine = HealthMachine()
    assert machine.failed(rpc(401, "AUTH_KEY_UNREGISTERED"), 0.0) is not None
    change = machine.failed(rpc(401, "USER_DEACTIVATED_BAN"), 1.0)
    assert change is not None and change.state is AccountState.BANNED
    assert machine.failed(rpc(401, "SESSION_REVOKED"), 2.0) is None
    assert machine.current.reason == "USER_DEACTIVATED_BAN"


def test_only_a_long_flood_wait_makes_the_account_wait_until_it_ends() -> None:
    """A 30 s wait is no news; a 600 s one is "waiting" until it ends, then ok, one change each way."""
    machine = HealthMachine(long_wait=60.0)
    assert machine.flood(30.0, 0.0, method="messages.GetHistory") is None
    waiting = machine.flood(600.0, 10.0, method="messages.GetHistory")
    assert waiting == AccountHealth(AccountState.WAITING, "FLOOD_WAIT_600", "messages.GetHistory", until=610.0)
    assert machine.flood(100.0, 20.0, method="messages.GetHistory") is None, "a shorter wait inside the long one"
    assert machine.tick(609.0) is None
    assert machine.succeeded(300.0, method="other.Thing") is None
    assert machine.tick(610.0) == OK


def test_a_longer_wait_during_a_wait_moves_its_end() -> None:
    """A wait that ends later than the running one is a change (its new end); the state stays waiting."""
    machine = HealthMachine()
    machine.flood(120.0, 0.0)
    change = machine.flood(900.0, 60.0)
    assert change is not None and change.state is AccountState.WAITING and change.until == 960.0


def test_lost_groups_are_counted_and_come_back_on_success() -> None:
    """Lost access counts groups; a successful request for a group gives it back; the count shows under worse states."""
    machine = HealthMachine()
    first = machine.lost_access(-1001, "CHANNEL_PRIVATE", 0.0)
    assert first is not None and first.state is AccountState.LOST_ACCESS and first.lost_groups == (-1001,)
    second = machine.lost_access(-1002, "USER_BANNED_IN_CHANNEL", 1.0)
    assert second is not None and second.lost_groups == (-1002, -1001)
    assert second.describe() == "lost access to 2 groups"
    assert machine.lost_access(-1002, "USER_BANNED_IN_CHANNEL", 2.0) is None
    waiting = machine.flood(600.0, 3.0)
    assert waiting is not None and waiting.state is AccountState.WAITING and waiting.lost_groups == (-1002, -1001)
    assert machine.succeeded(4.0, group=-1001) is not None
    assert machine.current.lost_groups == (-1002,)
    assert machine.succeeded(5.0, group=-1002) is not None
    assert machine.tick(700.0) == OK


def test_a_restriction_ends_when_its_method_succeeds_again() -> None:
    """Restricted on one method stays restricted while other methods succeed, and ends when that one does."""
    machine = HealthMachine()
    change = machine.failed(rpc(403, "USER_RESTRICTED"), 0.0, method="channels.JoinChannel")
    assert change is not None and change.state is AccountState.RESTRICTED
    assert machine.succeeded(1.0, method="messages.GetHistory") is None
    assert machine.succeeded(2.0, method="channels.JoinChannel") == OK


def test_health_as_readiness_shows_it() -> None:
    """The /readyz form names the state, the reason, the wait's end and the seconds left."""
    health = AccountHealth(AccountState.WAITING, "FLOOD_WAIT_600", "messages.GetHistory", until=1_000_600.0)
    assert health.as_dict(1_000_000.0) == {
        "state": "waiting",
        "reason": "FLOOD_WAIT_600",
        "method": "messages.GetHistory",
        "until": "1970-01-12T13:56:40+00:00",
        "seconds_left": 600.0,
    }
    assert health.describe(1_000_000.0) == "waiting 600 s (FLOOD_WAIT_600 on messages.GetHistory)"
    assert OK.as_dict(0.0) == {"state": "ok"}
