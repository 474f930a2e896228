"""The account's health as a small state machine: ok, waiting, restricted, lost access, logged out, banned.

What people who run a crawler fear most is losing the account, and what they need is to hear of it once, at
once, in every place they look. The request gateway sees every request's outcome and feeds them here; this
module only decides (pure: time is passed in, nothing is logged or sent). Each input returns the new
`AccountHealth` when the account's state changed, and None when it did not, so a spell of a thousand
identical errors is one change, never a thousand.

The states, worst first (the worst that holds is the state):

- **banned**: Telegram deactivated the account (`USER_DEACTIVATED_BAN`, `USER_DEACTIVATED`,
  `PHONE_NUMBER_BANNED`). Final.
- **logged out**: the session ended (`AUTH_KEY_UNREGISTERED`, `SESSION_REVOKED`, `SESSION_EXPIRED`,
  `AUTH_KEY_DUPLICATED`, a transport -404, ...): `emitter login` makes a new one. Final for this session.
- **restricted**: the account may not do what it asks (`USER_RESTRICTED`, `PEER_FLOOD`, a frozen account's
  `FROZEN_METHOD_INVALID`); ends when that same method succeeds again.
- **waiting**: a FloodWait longer than `long_wait` seconds holds requests until a time; short waits are
  Telegram's everyday pacing and no news.
- **lost access**: groups the account can no longer read (private now, kicked, banned from them); a group
  leaves the list when one of its requests succeeds again.
- **ok**: none of the above.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

from telethon import errors
from telethon.errors import AuthKeyNotFound
from telethon.errors.rpcerrorlist import rpc_errors_dict


class AccountState(enum.StrEnum):
    """The account's state, as the metric's `state` label, /readyz and the log line name it."""

    OK = "ok"
    WAITING = "waiting"
    LOST_ACCESS = "lost access"
    RESTRICTED = "restricted"
    LOGGED_OUT = "logged out"
    BANNED = "banned"


FINAL: Final = frozenset({AccountState.BANNED, AccountState.LOGGED_OUT})
"""States no later success undoes: a person has to act."""

LONG_WAIT: Final = 60.0
"""FloodWaits longer than this (seconds) make the account "waiting": Telethon itself sleeps shorter ones
without a word (its `flood_sleep_threshold`), and so does this."""

_BANNED: Final = (errors.UserDeactivatedBanError, errors.UserDeactivatedError, errors.PhoneNumberBannedError)
_LOGGED_OUT: Final = (
    errors.AuthKeyUnregisteredError,
    errors.AuthKeyDuplicatedError,
    errors.AuthKeyPermEmptyError,
    errors.AuthKeyInvalidError,
    errors.SessionRevokedError,
    errors.SessionExpiredError,
    AuthKeyNotFound,
)
_RESTRICTED_NAMES: Final = frozenset(
    {"USER_RESTRICTED", "PEER_FLOOD", "FROZEN_METHOD_INVALID", "FROZEN_PARTICIPANT_MISSING"}
)
_NAME_OF_CLASS: Final[dict[type, str]] = {cls: str(name) for name, cls in rpc_errors_dict.items()}
"""Telethon's known errors carry their base class's message (`UNAUTHORIZED`), not Telegram's name."""


def error_name(error: BaseException) -> str:
    """Telegram's own name for an RPC error (`USER_DEACTIVATED_BAN`), else the exception's class name."""
    known = _NAME_OF_CLASS.get(type(error))
    if known is not None:
        return known
    message = getattr(error, "message", None)
    if isinstance(error, errors.RPCError) and isinstance(message, str) and message:
        return message
    return type(error).__name__


def account_verdict(error: BaseException) -> AccountState | None:
    """The account-wide state an error proves (banned, logged out, restricted), or None (pure)."""
    if isinstance(error, _BANNED):
        return AccountState.BANNED
    if isinstance(error, _LOGGED_OUT):
        return AccountState.LOGGED_OUT
    if isinstance(error, errors.UnauthorizedError) and not isinstance(error, errors.SessionPasswordNeededError):
        return AccountState.LOGGED_OUT  # a 401 Telethon has no class for yet
    if isinstance(error, errors.RPCError) and error_name(error) in _RESTRICTED_NAMES:
        return AccountState.RESTRICTED
    return None


@dataclass(frozen=True, slots=True)
class AccountHealth:
    """One account's state and what it rests on (what the callback receives, /readyz shows and logs say)."""

    state: AccountState
    reason: str | None = None
    """Telegram's error name behind the state (`USER_DEACTIVATED_BAN`, `FLOOD_WAIT_600`, ...)."""
    method: str | None = None
    """The method whose request proved it (`messages.GetHistory`)."""
    until: float | None = None
    """While waiting: when the wait ends, on the clock the machine was fed with (the gateway hands health
    out with it on the wall clock, in epoch seconds)."""
    lost_groups: tuple[int, ...] = ()
    """Marked ids of the groups the account lost access to (also beside worse states)."""

    @property
    def ok(self) -> bool:
        """Whether nothing is wrong."""
        return self.state is AccountState.OK

    def describe(self, now: float | None = None) -> str:
        """One line for a person: `waiting 540 s (FLOOD_WAIT_600 on messages.GetHistory)`."""
        text = self.state.value
        if self.state is AccountState.LOST_ACCESS:
            text = f"lost access to {len(self.lost_groups)} group{'s' if len(self.lost_groups) != 1 else ''}"
        elif self.state is AccountState.WAITING and self.until is not None and now is not None:
            text = f"waiting {max(0.0, self.until - now):.0f} s"
        if self.reason:
            text += f" ({self.reason}{f' on {self.method}' if self.method else ''})"
        return text

    def as_dict(self, now: float) -> dict[str, Any]:
        """The JSON /readyz shows: state, reason, method, the wait's end, lost groups.

        Args:
            now: epoch seconds; `until` must be on the wall clock too (as the gateway hands health out).
        """
        out: dict[str, Any] = {"state": self.state.value}
        if self.reason:
            out["reason"] = self.reason
        if self.method:
            out["method"] = self.method
        if self.until is not None:
            out["until"] = datetime.fromtimestamp(self.until, UTC).isoformat(timespec="seconds")
            out["seconds_left"] = round(max(0.0, self.until - now), 1)
        if self.lost_groups:
            out["lost_groups"] = list(self.lost_groups)
        return out


OK: Final = AccountHealth(AccountState.OK)


@dataclass
class HealthMachine:
    """Folds request outcomes into the account's state; every input returns the new health on a change.

    Args:
        long_wait: FloodWaits longer than this many seconds count as "waiting".
    """

    long_wait: float = LONG_WAIT
    current: AccountHealth = OK
    _final: AccountHealth | None = None
    _restricted: AccountHealth | None = None
    _wait: AccountHealth | None = None
    _lost: dict[int, str] = field(default_factory=dict)

    def failed(self, error: BaseException, now: float, *, method: str | None = None) -> AccountHealth | None:
        """A request failed with `error` (account-wide verdicts only; see `flood` and `lost_access`)."""
        verdict = account_verdict(error)
        if verdict is None:
            return None
        health = AccountHealth(verdict, error_name(error), method)
        if verdict in FINAL:
            if self._final is None or (verdict is AccountState.BANNED and self._final.state is not verdict):
                self._final = health
        elif self._restricted is None:
            self._restricted = health
        return self._settle(now)

    def flood(self, seconds: float, now: float, *, method: str | None = None) -> AccountHealth | None:
        """Telegram asked for `seconds` of quiet on `method`; a long wait makes the account wait."""
        if seconds <= self.long_wait:
            return self._settle(now)
        until = now + seconds
        if self._wait is None or self._wait.until is None or until > self._wait.until:
            self._wait = AccountHealth(AccountState.WAITING, f"FLOOD_WAIT_{seconds:.0f}", method, until)
        return self._settle(now)

    def lost_access(self, group: int, reason: str, now: float) -> AccountHealth | None:
        """The account can no longer read `group`."""
        self._lost[group] = reason
        return self._settle(now)

    def succeeded(self, now: float, *, method: str | None = None, group: int | None = None) -> AccountHealth | None:
        """A request went through: its group is readable again, and a restriction on its method is over."""
        if self.current.state is AccountState.OK:
            return None  # the hot path: every request of a healthy account ends here
        if group is not None:
            self._lost.pop(group, None)
        if self._restricted is not None and method == self._restricted.method:
            self._restricted = None
        return self._settle(now)

    def tick(self, now: float) -> AccountHealth | None:
        """Time passed: a wait that ended is over."""
        return self._settle(now)

    def _settle(self, now: float) -> AccountHealth | None:
        if self._wait is not None and self._wait.until is not None and now >= self._wait.until:
            self._wait = None
        lost = tuple(sorted(self._lost))
        worst = self._final or self._restricted or self._wait
        if worst is None:
            worst = AccountHealth(AccountState.LOST_ACCESS) if lost else OK
        health = replace(worst, lost_groups=lost)
        if health == self.current:
            return None
        self.current = health
        return health

    def lost_reasons(self) -> Mapping[int, str]:
        """Why each lost group was lost."""
        return dict(self._lost)
