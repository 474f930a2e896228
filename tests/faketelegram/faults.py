"""Scripted faults: what the fake Telegram does wrong, and when.

Request faults are answered as Telegram answers them, with an `rpc_error` in place of the result, so the
client's own `rpc_message_to_error` builds the exception (FloodWaitError with `.seconds`, ServerError,
...) and Telethon's own retry and flood-sleep logic runs. Update faults drop live updates on their way to
a connection, so Telethon's pts bookkeeping sees a gap and recovers (or not) by itself. Connection cuts
break the link a request arrived on before it is answered, so Telethon's own reconnect and re-send run.
Spells are
faults by time: every matching request fails until the world's monotonic clock passes their end, however
often the client retries.
"""

from __future__ import annotations

import random
import time
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


# What a spell over "all requests" (spec None) still lets through: keepalive pings and what a connection
# needs before any call (the config in invokeWithLayer(initConnection(...)), the nearest DC). Telegram
# answers those from its front ends; the 500s of a spell come from the data centres behind them.
SPELL_EXEMPT = frozenset(
    {"PingRequest", "PingDelayDisconnectRequest", "help.GetConfigRequest", "help.GetNearestDcRequest"}
)


@dataclass(eq=False)
class Spell:
    """Answer every matching request with one RPC error until `until` (the world's monotonic seconds)."""

    request: RequestSpec
    code: int
    message: str
    until: float
    hits: int = 0

    def matches(self, key: str, now: float) -> bool:
        """Whether this spell answers a request with `key` arriving at `now`."""
        if now >= self.until:
            return False
        if self.request is None:
            return key not in SPELL_EXEMPT
        return spec_matches(self.request, key)


@dataclass(eq=False)
class ConnectionCut:
    """One rule: cut the connection a matching request arrived on, before it is answered, `times` times."""

    request: RequestSpec
    times: int | None = 1
    when: Callable[[Any], bool] | None = None
    hits: int = 0


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
    monotonic: Callable[[], float] = time.monotonic
    """The clock spells are timed on (the world passes its own)."""
    rules: list[RequestFault] = field(default_factory=list)
    spells: list[Spell] = field(default_factory=list)
    cuts: list[ConnectionCut] = field(default_factory=list)
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

    def flood_wait_file(self, file_id: int, seconds: int, *, after_parts: int) -> RequestFault:
        """Answer FLOOD_WAIT_<seconds> once, to the first upload.getFile of file `file_id` past its first
        `after_parts` parts (counted in the request's own limit): a wait in the middle of a large file."""

        def past(request: Any) -> bool:
            location = getattr(request, "location", None)
            return getattr(location, "id", None) == file_id and request.offset >= after_parts * request.limit

        return self.flood_wait("upload.GetFile", seconds, when=past)

    def cut_connection(
        self, request: RequestSpec, *, times: int | None = 1, when: Callable[[Any], bool] | None = None
    ) -> ConnectionCut:
        """Cut the connection the next `times` matching requests arrive on, before answering them.

        The request reaches the server (it is counted) but its answer is lost with the connection, as when
        a network fails mid-request: Telethon notices the dead connection, reconnects and sends the
        unanswered request again. ``when`` is a predicate on the (innermost) request, as for `rpc_error`.
        """
        cut = ConnectionCut(request, times, when)
        self.cuts.append(cut)
        return cut

    def spell(self, request: RequestSpec, seconds: float, message: str = "RPC_CALL_FAIL", code: int = 500) -> Spell:
        """Answer every matching request with `code` `message` for `seconds` from now (the world's clock).

        A spell outlasts Telethon's own retries (``request_retries``, default 5, 2 s of real time
        apart) when it is longer than they are: Telethon then raises ``ValueError('Request was
        unsuccessful N time(s)')`` to the caller. Typical spells: ``'RPC_CALL_FAIL'``/500 (RpcCallFailError),
        ``'INTERNAL'``/500 (ServerError), ``'Timeout'``/-503 (TimedOutError). `request` None means
        every request except those in `SPELL_EXEMPT` (pings and the connection's config), so
        connecting still works while every call fails.
        """
        if seconds <= 0:
            raise ValueError(f"a spell must last a positive number of seconds, got {seconds}")
        spell = Spell(request, code, message, self.monotonic() + seconds)
        self.spells.append(spell)
        return spell

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
        """Remove every scheduled fault and spell (the `fired` history stays)."""
        self.rules.clear()
        self.spells.clear()
        self.cuts.clear()
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
        now = self.monotonic()
        for spell in self.spells:
            if spell.matches(key, now):
                spell.hits += 1
                self.fired.append(FiredFault(key, spell.code, spell.message))
                return types.RpcError(spell.code, spell.message)
        return None

    def check_cut(self, key: str, request: object) -> bool:
        """Whether to cut the connection `request` arrived on instead of answering it (a rule is used up)."""
        for cut in self.cuts:
            if cut.times is not None and cut.hits >= cut.times:
                continue
            if not spec_matches(cut.request, key) or (cut.when is not None and not cut.when(request)):
                continue
            cut.hits += 1
            self.fired.append(FiredFault(key, 0, "connection cut"))
            return True
        return False

    def should_drop_update(self) -> bool:
        """Whether the next update delivery to one connection is lost."""
        if self._drop_next > 0:
            self._drop_next -= 1
        elif not (self._drop_fraction and self._rng.random() < self._drop_fraction):
            return False
        self.dropped_updates += 1
        return True
