"""Scripted faults: what the fake Telegram does wrong, and when.

Request faults are answered as Telegram answers them, with an `rpc_error` in place of the result, so the
client's own `rpc_message_to_error` builds the exception (FloodWaitError with `.seconds`, ServerError,
...) and Telethon's own retry and flood-sleep logic runs. Update faults drop live updates on their way to
a connection, so Telethon's pts bookkeeping sees a gap and recovers (or not) by itself.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from telethon.tl import types

from ._tl import RequestSpec, spec_matches


@dataclass(eq=False)
class RequestFault:
    """One rule: answer matching requests with an RPC error, `times` times (None: until removed)."""

    request: RequestSpec
    code: int
    message: str
    times: int | None = 1
    when: Callable[[Any], bool] | None = None
    """Extra predicate on the (innermost) request, e.g. ``lambda r: r.offset_id > 500``."""
    hits: int = 0

    @property
    def exhausted(self) -> bool:
        """Whether the rule has fired as often as it was told to."""
        return self.times is not None and self.hits >= self.times


@dataclass(frozen=True, slots=True)
class FiredFault:
    """A record of a fault that fired, for assertions and for debugging failing tests."""

    request: str
    code: int
    message: str


@dataclass(eq=False)
class FaultPlan:
    """The faults scheduled on one `FakeTelegram`; reach it as ``fake.faults``."""

    seed: int = 0
    rules: list[RequestFault] = field(default_factory=list)
    fired: list[FiredFault] = field(default_factory=list)
    dropped_updates: int = 0
    _drop_fraction: float = 0.0
    _drop_next: int = 0
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        # Seeded so that a test dropping "30 % of updates" drops the same ones on every run.
        self._rng = random.Random(self.seed)

    def flood_wait(
        self,
        request: RequestSpec,
        seconds: int,
        *,
        times: int | None = 1,
        when: Callable[[Any], bool] | None = None,
    ) -> RequestFault:
        """Answer the next `times` matching requests with FLOOD_WAIT_<seconds> (420).

        Telethon sleeps by itself when `seconds` <= the client's `flood_sleep_threshold` and retries,
        otherwise it raises FloodWaitError(seconds=...). The fake never sleeps: a test that wants a
        120 s wait without waiting 120 s builds its client with a low `flood_sleep_threshold` so the
        error reaches the code under test, which should sleep through an injectable clock. Beware:
        Telethon remembers the wait per request type in ``client._flood_waited_requests`` against the
        real `time.time()`, and refuses the same request type client-side until it ends; see
        `forget_flood_waits`.
        """
        return self.rpc_error(request, f"FLOOD_WAIT_{seconds}", code=420, times=times, when=when)

    def rpc_error(
        self,
        request: RequestSpec,
        message: str,
        *,
        code: int = 400,
        times: int | None = 1,
        when: Callable[[Any], bool] | None = None,
    ) -> RequestFault:
        """Answer the next `times` matching requests with an arbitrary RPC error.

        E.g. ``rpc_error(GetHistoryRequest, 'RPC_CALL_FAIL', code=500)`` (Telethon retries 500s itself,
        sleeping 2 s between attempts) or ``rpc_error(None, 'AUTH_KEY_UNREGISTERED', code=401)``.
        """
        rule = RequestFault(request, code, message, times, when)
        self.rules.append(rule)
        return rule

    def drop_updates(self, fraction: float, *, seed: int | None = None) -> None:
        """Drop this fraction (0..1) of live updates per connection, chosen by a seeded random."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be within [0, 1], got {fraction}")
        self._drop_fraction = fraction
        if seed is not None:
            self._rng = random.Random(seed)

    def drop_next_updates(self, n: int) -> None:
        """Drop the next `n` live update deliveries (counted per connection)."""
        self._drop_next += n

    def clear(self) -> None:
        """Remove every scheduled fault (the `fired` history stays)."""
        self.rules.clear()
        self._drop_fraction = 0.0
        self._drop_next = 0

    # Used by the world.

    def check_request(self, key: str, request: object) -> types.RpcError | None:
        """The error to answer `request` with, if a rule matches it (the rule's count is used up)."""
        for rule in self.rules:
            if rule.exhausted or not spec_matches(rule.request, key):
                continue
            if rule.when is not None and not rule.when(request):
                continue
            rule.hits += 1
            self.fired.append(FiredFault(key, rule.code, rule.message))
            return types.RpcError(rule.code, rule.message)
        return None

    def should_drop_update(self) -> bool:
        """Whether the next update delivery to one connection is lost."""
        if self._drop_next > 0:
            self._drop_next -= 1
        elif not (self._drop_fraction and self._rng.random() < self._drop_fraction):
            return False
        self.dropped_updates += 1
        return True
