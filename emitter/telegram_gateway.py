"""One request gateway per Telegram account: every request the client makes passes it.

Telegram punishes herds. Telethon on its own sends as fast as its callers ask, sleeps a FloodWait per
request type and wakes every waiting task at the same instant, and gives up on a spell of 500s after five
tries. The gateway sits in front of the client's `_call` (so Telethon's own pagination, entity and update
requests pass it too) and does, in one place:

- **pacing**: a token bucket per request kind (history, by-id fetches, difference, resolve, dialogs, ...)
  and one for the whole account, with priorities (live follow before sweeps before backfill);
- **flood waits**: a FloodWait holds only requests of that kind until it ends; the kind's rate is halved
  and recovers slowly; held requests then resume one at a time at that rate, never as a herd;
- **error classes**: lost access to a group, account gone (log in again), and transient trouble, which is
  retried here with capped backoff, for ever, and counted;
- **accounting**: requests, flood waits and retries by method, queue depth and current rate (metrics);
- **account health**: every outcome feeds the account's state machine (`emitter.account_health`), and each
  change of state is logged once and handed to the health listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import heapq
import itertools
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Final

from telethon import errors
from telethon.errors import AuthKeyNotFound

from emitter.account_health import LONG_WAIT, AccountHealth, AccountState, HealthMachine, error_name
from emitter.clock import SYSTEM_CLOCK, Clock
from emitter.errors import FatalError

log = logging.getLogger("emitter.telegram.gateway")
health_log = logging.getLogger("emitter.telegram")
"""The account's state changes go to the source's logger: it is where an operator looks for Telegram."""

HealthCallback = Callable[[AccountHealth], object]
"""Called with the account's new health on every change of state (`until`: epoch seconds, wall clock)."""


class RequestKind(enum.StrEnum):
    """What a request costs against Telegram's limits; each kind has its own bucket."""

    HISTORY = "history"
    MESSAGES = "messages"
    DIFFERENCE = "difference"
    RESOLVE = "resolve"
    DIALOGS = "dialogs"
    FULL = "full"
    JOIN = "join"
    DOWNLOAD = "download"
    OTHER = "other"


_KIND_OF_METHOD: Final[Mapping[str, RequestKind]] = {
    "GetHistoryRequest": RequestKind.HISTORY,
    "SearchRequest": RequestKind.HISTORY,
    "GetRepliesRequest": RequestKind.HISTORY,
    "GetMessagesRequest": RequestKind.MESSAGES,
    "GetDifferenceRequest": RequestKind.DIFFERENCE,
    "GetChannelDifferenceRequest": RequestKind.DIFFERENCE,
    "ResolveUsernameRequest": RequestKind.RESOLVE,
    "GetDialogsRequest": RequestKind.DIALOGS,
    "GetPeerDialogsRequest": RequestKind.DIALOGS,
    "GetFullChannelRequest": RequestKind.FULL,
    "GetFullChatRequest": RequestKind.FULL,
    "GetFullUserRequest": RequestKind.FULL,
    "GetForumTopicsRequest": RequestKind.FULL,
    "JoinChannelRequest": RequestKind.JOIN,
    "ImportChatInviteRequest": RequestKind.JOIN,
    "GetFileRequest": RequestKind.DOWNLOAD,
}
_WRAPPER_FIELDS: Final = ("query",)
"""InvokeWithLayer, InvokeWithTakeout, InvokeWithoutUpdates… all keep the wrapped request in `query`."""


def unwrap(request: Any) -> Any:
    """The innermost request of Telegram's invoke-with wrappers."""
    while type(request).__name__.startswith("Invoke") and hasattr(request, "query"):
        request = request.query
    return request


def method_name(request: Any) -> str:
    """`messages.GetHistory` for a `GetHistoryRequest` (the name Telegram's docs and our metrics use)."""
    inner = unwrap(request)
    module = type(inner).__module__.rsplit(".", 1)[-1]
    name = type(inner).__name__.removesuffix("Request")
    return name if module == "functions" else f"{module}.{name}"


def kind_of(request: Any) -> RequestKind:
    """The bucket a request is paced by."""
    return _KIND_OF_METHOD.get(type(unwrap(request)).__name__, RequestKind.OTHER)


class Priority(enum.IntEnum):
    """Who waits least when a kind is busy: lower goes first."""

    LIVE = 0
    SWEEP = 1
    BACKFILL = 2


priority: ContextVar[Priority] = ContextVar("emitter_request_priority", default=Priority.LIVE)
"""The priority of requests made by the current task (Telethon's own update requests count as live)."""
current_group: ContextVar[int | None] = ContextVar("emitter_request_group", default=None)
"""The group the current task works for, so waits show in that group's status."""


@contextlib.contextmanager
def requests_for(group_id: int | None, prio: Priority) -> Any:
    """Run the block's Telegram requests for `group_id` at `prio`."""
    g = current_group.set(group_id)
    p = priority.set(prio)
    try:
        yield
    finally:
        # An async generator closed by the loop's finaliser runs this in another context, where the tokens
        # are foreign; the values die with that context anyway.
        with contextlib.suppress(ValueError):
            priority.reset(p)
            current_group.reset(g)


# --- error classes -----------------------------------------------------------------------------------------


class ErrorClass(enum.Enum):
    """How the emitter reacts to a Telegram error."""

    LOST_ACCESS = "lost access"
    """This group only: mark it failed, re-check it later."""
    ACCOUNT_GONE = "account gone"
    """The session is dead: stop within seconds and ask for `emitter login`."""
    FLOOD = "flood wait"
    """Hold requests of this kind until the wait ends."""
    TRANSIENT = "transient"
    """Back off and retry, for ever."""
    REQUEST = "request"
    """The request itself is wrong (a bad username, say): the caller decides."""


LOST_ACCESS: Final = (
    errors.ChannelPrivateError,
    errors.ChatForbiddenError,
    errors.ChannelBannedError,
    errors.UserBannedInChannelError,
    errors.UserKickedError,
    errors.ChannelInvalidError,
    errors.ChatIdInvalidError,
    errors.ChatRestrictedError,
    errors.ChatAdminRequiredError,
    errors.PeerIdInvalidError,  # what a basic group answers once the account was removed from it
)
ACCOUNT_GONE: Final = (
    errors.AuthKeyUnregisteredError,
    errors.AuthKeyDuplicatedError,
    errors.AuthKeyPermEmptyError,
    errors.SessionRevokedError,
    errors.SessionExpiredError,
    errors.UserDeactivatedError,
    errors.UserDeactivatedBanError,
    AuthKeyNotFound,
)
_FLOOD: Final = (errors.FloodWaitError, errors.FloodPremiumWaitError, errors.FloodTestPhoneWaitError)
_TRANSIENT_RPC: Final = (
    errors.ServerError,
    errors.RpcCallFailError,
    errors.RpcMcgetFailError,
    errors.TimedOutError,
    errors.InterdcCallErrorError,
    errors.InterdcCallRichErrorError,
)


def classify(error: BaseException) -> ErrorClass:  # noqa: PLR0911 - a decision table reads best flat
    """The class of a Telegram error (pure; the table the README's "errors" section describes)."""
    if isinstance(error, _FLOOD):
        return ErrorClass.FLOOD
    if isinstance(error, ACCOUNT_GONE):
        return ErrorClass.ACCOUNT_GONE
    if isinstance(error, errors.UnauthorizedError) and not isinstance(error, errors.SessionPasswordNeededError):
        return ErrorClass.ACCOUNT_GONE
    if isinstance(error, LOST_ACCESS):
        return ErrorClass.LOST_ACCESS
    if isinstance(error, _TRANSIENT_RPC):
        return ErrorClass.TRANSIENT
    if isinstance(error, errors.RPCError):
        code = getattr(error, "code", None)
        return ErrorClass.TRANSIENT if isinstance(code, int) and (code >= 500 or code < 0) else ErrorClass.REQUEST
    if isinstance(error, ValueError) and str(error).startswith("Request was unsuccessful"):
        return ErrorClass.TRANSIENT  # Telethon's own retries of 500s ran out
    if isinstance(error, ConnectionError | TimeoutError | OSError):
        return ErrorClass.TRANSIENT
    return ErrorClass.REQUEST


class AccountGoneError(FatalError):
    """Telegram ended the session (logged out, revoked, banned, duplicated): a person must log in again."""

    def __init__(self, cause: BaseException) -> None:
        name = type(cause).__name__
        super().__init__(f"Telegram ended the session ({name}): run `emitter login` to create a new one")
        self.cause_name = name


# --- pacing ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pace:
    """A token bucket's shape: `rate` requests per second on average, `burst` at once."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"a pace needs rate > 0 and burst >= 1, got {self.rate}/{self.burst}")


DEFAULT_PACES: Final[Mapping[RequestKind, Pace]] = {
    RequestKind.HISTORY: Pace(1.0, 5),
    RequestKind.MESSAGES: Pace(1.0, 5),
    RequestKind.DIFFERENCE: Pace(1.0, 5),
    RequestKind.RESOLVE: Pace(1 / 60, 3),
    RequestKind.DIALOGS: Pace(1 / 30, 1),
    RequestKind.FULL: Pace(0.1, 3),
    RequestKind.JOIN: Pace(1 / 300, 1),
    RequestKind.DOWNLOAD: Pace(2.0, 4),
    RequestKind.OTHER: Pace(2.0, 10),
}
"""Conservative defaults, well inside what Telegram tolerates from one account (NOTES.md): a backfill reads
about 100 messages a second, a resolve costs a minute of budget, a dialog page half a minute."""
DEFAULT_ACCOUNT_PACE: Final = Pace(3.0, 10)
"""All kinds together."""


def parse_paces(text: str) -> dict[RequestKind, Pace]:
    """`history=1/5,resolve=0.02/3` (kind=rate/burst) as paces; raises ValueError naming the bad part."""
    out: dict[RequestKind, Pace] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, shape = part.partition("=")
        try:
            kind = RequestKind(name.strip())
        except ValueError:
            kinds = ", ".join(k.value for k in RequestKind)
            raise ValueError(f"{name.strip()!r} is not a request kind: expected one of {kinds}") from None
        rate, _, burst = shape.partition("/")
        try:
            out[kind] = Pace(float(rate), float(burst or 1))
        except ValueError:
            raise ValueError(f"{part!r}: expected kind=rate/burst with rate > 0 and burst >= 1") from None
    return out


_MIN_FACTOR: Final = 1 / 16
_RECOVERY_SECONDS: Final = 600.0
"""A halved rate takes this long to grow back to full: "recovering slowly"."""


@dataclass
class Bucket:
    """A token bucket whose rate halves on every FloodWait and recovers linearly (pure: time is passed in)."""

    pace: Pace
    tokens: float = -1.0
    updated: float = 0.0
    factor: float = 1.0
    held_until: float = 0.0
    """No request of this kind goes out before this time (a running FloodWait)."""

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.pace.burst

    @property
    def rate(self) -> float:
        """The current rate (requests/s), after flood-wait halvings."""
        return self.pace.rate * self.factor

    def _advance(self, now: float) -> None:
        dt = max(0.0, now - self.updated)
        self.updated = max(self.updated, now)
        self.factor = min(1.0, self.factor + dt / _RECOVERY_SECONDS)
        self.tokens = min(self.pace.burst, self.tokens + dt * self.rate)

    def wait_time(self, now: float) -> float:
        """Seconds until one request may go (0: now)."""
        self._advance(now)
        held = self.held_until - now
        short = (1.0 - self.tokens) / self.rate if self.tokens < 1.0 else 0.0
        return max(held, short, 0.0)

    def take(self, now: float) -> None:
        """Spend one token (call only when `wait_time` is 0)."""
        self._advance(now)
        self.tokens -= 1.0

    def flooded(self, now: float, seconds: float) -> None:
        """Telegram asked for `seconds` of quiet: hold, halve the rate, and restart from an empty bucket."""
        self._advance(now)
        self.held_until = max(self.held_until, now + seconds)
        self.factor = max(_MIN_FACTOR, self.factor / 2)
        # Empty when the wait ends, not refilled during it: the held requests then go one at a time.
        self.tokens = 0.0
        self.updated = self.held_until


FAIR_SHARE: Final = 4
"""Every this many grants of a kind go to the oldest waiter of the lowest priority waiting, so that sweeps of
many followed groups, which alone can ask for more than the pace allows, never starve the backfills."""


@dataclass
class _Lane:
    """One kind's bucket and its waiting requests, best priority first (and, now and then, the lowest)."""

    bucket: Bucket
    waiters: list[tuple[int, int]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    grants: int = 0

    def head(self) -> tuple[int, int]:
        """The waiter whose turn it is."""
        if self.grants % FAIR_SHARE == FAIR_SHARE - 1:
            lowest = max(prio for prio, _ in self.waiters)
            return min(t for t in self.waiters if t[0] == lowest)
        return self.waiters[0]


@dataclass
class GatewayStats:
    """What the gateway did, for metrics and tests."""

    requests: Counter[str] = field(default_factory=Counter)
    """Requests sent to Telegram, by method."""
    flood_waits: Counter[str] = field(default_factory=Counter)
    """FloodWaits Telegram answered, by method."""
    flood_wait_seconds: float = 0.0
    retries: Counter[str] = field(default_factory=Counter)
    """Transient errors retried, by method."""
    account_gone: int = 0


@dataclass(frozen=True, slots=True)
class Hold:
    """A running FloodWait on one kind, as the status page shows it."""

    kind: RequestKind
    method: str
    until: float
    seconds: float


_BACKOFF_START: Final = 1.0
_BACKOFF_MAX: Final = 60.0
_BACKOFF_RESET_AFTER: Final = 120.0


class RequestGateway:
    """Paces, holds and retries every request of one account's client.

    Args:
        paces: per-kind buckets (defaults: `DEFAULT_PACES`); `None` with `paced=False` to measure the
            unpaced behaviour in benchmarks.
        account: the bucket all kinds share.
        backfill_concurrency: at most this many groups walk their backfill at once.
        clock: monotonic time and sleep (a `ScaledClock` in tests).
        paced: False sends requests as soon as asked and sleeps each FloodWait in the task that got it, as
            Telethon does on its own: for measuring the difference only.
        long_wait: FloodWaits longer than this many seconds make the account's state "waiting".
    """

    def __init__(
        self,
        paces: Mapping[RequestKind, Pace] | None = None,
        *,
        account: Pace = DEFAULT_ACCOUNT_PACE,
        backfill_concurrency: int = 2,
        clock: Clock = SYSTEM_CLOCK,
        paced: bool = True,
        rng: random.Random | None = None,
        long_wait: float = LONG_WAIT,
    ) -> None:
        merged = {**DEFAULT_PACES, **(paces or {})}
        self.clock = clock
        self.paced = paced
        self.stats = GatewayStats()
        self.backfill_slots = asyncio.Semaphore(backfill_concurrency)
        self.backfill_concurrency = backfill_concurrency
        self._lanes = {kind: _Lane(Bucket(pace)) for kind, pace in merged.items()}
        self._account = Bucket(account)
        self._seq = itertools.count()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._holds: dict[RequestKind, Hold] = {}
        self._waiting_groups: dict[int, Hold] = {}
        self._retrying_groups: dict[int, str] = {}
        self._backoff: dict[RequestKind, tuple[float, float]] = {}
        self._client: Any = None
        self._inner: Callable[..., Awaitable[Any]] | None = None
        self.gone: AccountGoneError | None = None
        """Set once Telegram ended the session; every later request raises it."""
        self._health = HealthMachine(long_wait=long_wait)
        self._health_listeners: list[HealthCallback] = []
        self._wait_timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"RequestGateway(paced={self.paced}, backfill_concurrency={self.backfill_concurrency})"

    # --- wiring ---------------------------------------------------------------------------------------------

    def attach(self, client: Any) -> None:
        """Route every request of `client` through this gateway (idempotent).

        Telethon's own FloodWait sleeping is switched off (`flood_sleep_threshold = 0`): it sleeps each wait
        in every waiting task and wakes them together, which is the herd Telegram punishes; here a wait
        holds one kind and releases its requests one at a time. Its own retries of 500s are switched off
        too (`request_retries = 0`: one attempt per call; Telethon counts retries after the first, so 1 meant
        two attempts): they re-send behind the pacing's back, and the gateway retries transient errors paced.
        """
        if self._client is client:
            return
        if getattr(client, "_emitter_gateway", None) is not None:
            raise RuntimeError("this client already has a request gateway")
        inner = client._call
        self._client, self._inner = client, inner
        client.flood_sleep_threshold = 0
        # Telethon re-sends a failed request `request_retries` more times inside one `_call`, unpaced.
        client._request_retries = 0

        async def call(sender: Any, request: Any, ordered: bool = False, flood_sleep_threshold: Any = None) -> Any:
            return await self.call(sender, request, ordered)

        client._call = call
        client._emitter_gateway = self

    def detach(self) -> None:
        """Give the client its own `_call` back (idempotent)."""
        timer, self._wait_timer = self._wait_timer, None
        if timer is not None:
            timer.cancel()
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(AttributeError):
                del client._call
                del client._emitter_gateway

    @contextlib.asynccontextmanager
    async def backfill_slot(self) -> AsyncIterator[None]:
        """Hold one of the `backfill_concurrency` slots while walking a group's backfill."""
        async with self.backfill_slots:
            yield

    # --- the call -------------------------------------------------------------------------------------------

    async def call(self, sender: Any, request: Any, ordered: bool = False) -> Any:
        """Send one request (or Telethon's list of them) through pacing, flood holds and retries."""
        if self._inner is None:
            raise RuntimeError("attach() the gateway to a client first")
        first = request[0] if isinstance(request, list) else request
        kind, method = kind_of(first), method_name(first)
        while True:
            if self.gone is not None:
                raise self.gone
            await self._admit(kind, method)
            self.stats.requests[method] += 1
            # The gateway decides when a kind may go again; Telethon's real-time memory of the wait would
            # refuse a request our (possibly scaled) clock has already released.
            flood_memory = getattr(self._client, "_flood_waited_requests", None)
            if isinstance(flood_memory, dict):
                flood_memory.pop(getattr(unwrap(first), "CONSTRUCTOR_ID", None), None)
            try:
                result = await self._inner(sender, request, ordered=ordered, flood_sleep_threshold=0)
            except Exception as e:
                await self._failed(e, kind, method)
                continue
            self._succeeded(kind, method)
            return result

    async def _failed(self, error: Exception, kind: RequestKind, method: str) -> None:
        """Handle a failed request: return to retry it, raise to give it to the caller."""
        verdict = classify(error)
        if verdict is ErrorClass.FLOOD:
            seconds = float(getattr(error, "seconds", 0) or 1)
            self._flood_health(seconds, method)
            if not self.paced:
                # What Telethon does on its own: this task sleeps its wait and tries again, and so does every
                # other task that hit the same wait (the herd; kept only to measure it against).
                self.stats.flood_waits[method] += 1
                self.stats.flood_wait_seconds += seconds
                await self.clock.sleep(seconds)
                return
            self._flooded(kind, method, seconds)
            return
        if verdict is ErrorClass.ACCOUNT_GONE:
            raise self._gone(error, method) from error
        if verdict is ErrorClass.TRANSIENT and self._client_alive():
            await self._back_off(kind, method, error)
            return
        group = current_group.get()
        if verdict is ErrorClass.LOST_ACCESS and group is not None:
            self._report(self._health.lost_access(group, error_name(error), self.clock.monotonic()))
        elif verdict is ErrorClass.REQUEST:
            self._report(self._health.failed(error, self.clock.monotonic(), method=method))  # restricted?
        raise error

    def _client_alive(self) -> bool:
        """False once the client is disconnected for good (a request would never go out again)."""
        client = self._client
        return client is None or bool(client.is_connected())

    def _gone(self, error: BaseException, method: str | None = None) -> AccountGoneError:
        self._report(self._health.failed(error, self.clock.monotonic(), method=method))
        if self.gone is None:
            self.stats.account_gone += 1
            self.gone = AccountGoneError(error)
            log.critical("%s", self.gone)
        return self.gone

    def note_disconnected(self, error: BaseException | None) -> None:
        """The client disconnected for good: if Telegram ended the session, every later request fails."""
        if error is not None and classify(error) is ErrorClass.ACCOUNT_GONE:
            self._gone(error)

    def _flooded(self, kind: RequestKind, method: str, seconds: float) -> None:
        now = self.clock.monotonic()
        self.stats.flood_waits[method] += 1
        self.stats.flood_wait_seconds += seconds
        lane = self._lanes[kind]
        lane.bucket.flooded(now, seconds)
        hold = Hold(kind, method, lane.bucket.held_until, seconds)
        self._holds[kind] = hold
        group = current_group.get()
        if group is not None:
            self._waiting_groups[group] = hold
        log.warning(
            "Telegram asked for %d s of quiet on %s: holding %s requests, then resuming at %.2f/s",
            seconds,
            method,
            kind.value,
            lane.bucket.rate,
        )
        lane.changed.set()

    async def _back_off(self, kind: RequestKind, method: str, error: BaseException) -> None:
        now = self.clock.monotonic()
        delay, last = self._backoff.get(kind, (0.0, 0.0))
        delay = _BACKOFF_START if delay == 0 or now - last > _BACKOFF_RESET_AFTER else min(delay * 2, _BACKOFF_MAX)
        self._backoff[kind] = (delay, now)
        self.stats.retries[method] += 1
        group = current_group.get()
        reason = f"{type(error).__name__}: {error}"
        if group is not None:
            self._retrying_groups[group] = reason
        jittered = delay * (0.5 + self._rng.random())
        log.warning("%s failed (%s): retrying in %.1f s", method, reason, jittered)
        await self.clock.sleep(jittered)

    def _succeeded(self, kind: RequestKind, method: str) -> None:
        group = current_group.get()
        if group is not None:
            self._retrying_groups.pop(group, None)
            self._waiting_groups.pop(group, None)
        self._backoff.pop(kind, None)
        self._report(self._health.succeeded(self.clock.monotonic(), method=method, group=group))

    # --- account health -------------------------------------------------------------------------------------

    def add_health_listener(self, callback: HealthCallback) -> None:
        """Call `callback(health)` on every change of the account's state (a failing callback is logged)."""
        if callback not in self._health_listeners:
            self._health_listeners.append(callback)

    def remove_health_listener(self, callback: HealthCallback) -> None:
        """Stop calling `callback` (idempotent)."""
        with contextlib.suppress(ValueError):
            self._health_listeners.remove(callback)

    def account_health(self) -> AccountHealth:
        """The account's state now (`until`: epoch seconds of the wall clock)."""
        self._report(self._health.tick(self.clock.monotonic()))
        return self._public(self._health.current)

    def _public(self, health: AccountHealth) -> AccountHealth:
        """`health` with its wait's end on the wall clock, which is what people and callbacks can use."""
        if health.until is None:
            return health
        left = self.clock.to_real(health.until - self.clock.monotonic())
        return replace(health, until=time.time() + left)

    def _flood_health(self, seconds: float, method: str) -> None:
        self._report(self._health.flood(seconds, self.clock.monotonic(), method=method))
        if self._health.current.state is AccountState.WAITING and self._wait_timer is None:
            self._arm_wait_timer()

    def _arm_wait_timer(self) -> None:
        """Wake when the wait ends, so its end is reported even if no request of the account goes meanwhile."""
        until = self._health.current.until
        if until is None:
            return
        delay = self.clock.to_real(until - self.clock.monotonic())
        self._wait_timer = asyncio.get_running_loop().call_later(delay + 0.01, self._wait_over)

    def _wait_over(self) -> None:
        self._wait_timer = None
        self._report(self._health.tick(self.clock.monotonic()))
        if self._health.current.state is AccountState.WAITING:
            self._arm_wait_timer()  # a longer wait came meanwhile

    def _report(self, change: AccountHealth | None) -> None:
        """One log line and one call of every listener per change of state."""
        if change is None:
            return
        public = self._public(change)
        health_log.log(
            logging.INFO if change.state in (AccountState.OK, AccountState.WAITING) else logging.WARNING,
            "Telegram account: %s",
            change.describe(self.clock.monotonic()),
            extra={
                "account_state": change.state.value,
                "account_reason": change.reason,
                "account_method": change.method,
                "account_until": public.until,
                "lost_groups": list(change.lost_groups),
            },
        )
        for callback in list(self._health_listeners):
            try:
                callback(public)
            except Exception:  # a library user's callback must not break the account's requests
                health_log.exception("the health callback %r failed", callback)

    async def _admit(self, kind: RequestKind, method: str) -> None:
        """Wait for this request's turn: best priority first, then its kind's and the account's tokens."""
        lane = self._lanes[kind]
        ticket = (int(priority.get()), next(self._seq))
        heapq.heappush(lane.waiters, ticket)
        try:
            while True:
                if lane.head() != ticket:
                    lane.changed.clear()
                    await lane.changed.wait()
                    continue
                wait = self._wait_time(lane)
                if wait <= 0:
                    now = self.clock.monotonic()
                    lane.grants += 1
                    if self.paced:
                        lane.bucket.take(now)
                        self._account.take(now)
                    return
                await self.clock.sleep(wait)
        finally:
            with contextlib.suppress(ValueError):
                lane.waiters.remove(ticket)
                heapq.heapify(lane.waiters)
            lane.changed.set()

    def _wait_time(self, lane: _Lane) -> float:
        if not self.paced:
            return 0.0
        now = self.clock.monotonic()
        return max(lane.bucket.wait_time(now), self._account.wait_time(now))

    # --- what the status page and metrics read ------------------------------------------------------------

    def holds(self) -> list[Hold]:
        """FloodWaits still running."""
        now = self.clock.monotonic()
        return [h for h in self._holds.values() if h.until > now]

    def group_wait(self, group_id: int) -> Hold | None:
        """The FloodWait the group's current request is held by, if any."""
        hold = self._waiting_groups.get(group_id)
        return hold if hold is not None and hold.until > self.clock.monotonic() else None

    def group_retrying(self, group_id: int) -> str | None:
        """The transient error the group's current request is being retried after, if any."""
        return self._retrying_groups.get(group_id)

    def rates(self) -> dict[str, float]:
        """Current rate (requests/s) of every kind, after flood-wait halvings."""
        now = self.clock.monotonic()
        out = {}
        for kind, lane in self._lanes.items():
            lane.bucket.wait_time(now)  # brings the recovery up to date
            out[kind.value] = lane.bucket.rate
        return out

    def queue_depths(self) -> dict[str, int]:
        """Requests waiting for their turn, by kind."""
        return {kind.value: len(lane.waiters) for kind, lane in self._lanes.items()}

    def jitter(self, seconds: float, spread: float = 0.2) -> float:
        """`seconds` spread by ±`spread`, so timed work of many groups does not fall on one tick."""
        return seconds * (1 - spread + 2 * spread * self._rng.random())
