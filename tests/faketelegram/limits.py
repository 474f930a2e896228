"""Telegram's flood limits as token buckets: which request may go now, and how long a client must wait.

Telegram does not publish its limits; what clients see is FLOOD_WAIT_X after a burst of one method, with
X growing for methods it guards harder (contacts.resolveUsername the most) and for clients that keep sending
while told to wait. `TELEGRAM_LIKE` encodes those reports (see README.md next to this file) as one bucket
per method of the account; `RateLimiter` is the pure state machine the world asks on every request, with
the time passed in, so it can run on a scaled clock.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._tl import request_key

# A request that arrives this many (fake) seconds before a wait ends still counts as on time: asyncio may
# wake a sleeper a clock tick early, and Telegram's own clock is not finer than that either.
_GRACE = 1e-3


@dataclass(frozen=True, slots=True)
class Bucket:
    """`capacity` requests at once, refilled at `per_second` tokens a second."""

    capacity: float
    per_second: float

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.per_second <= 0:
            raise ValueError(f"a bucket needs capacity >= 1 and per_second > 0, got {self!r}")


def _normalise(key: str | type[Any]) -> str:
    """'messages.GetHistory', 'messages.GetHistoryRequest' and the TL class all mean one request key."""
    if isinstance(key, type):
        return request_key(key)
    return key if key.endswith("Request") else f"{key}Request"


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Buckets by request key (as `_tl.request_key` spells it, with or without the 'Request' suffix).

    A key not in `buckets` gets `default` (None: unlimited); keys in `unlimited` are never limited.
    `max_wait` caps how far escalation stretches a wait (Telegram's longest reported waits are about a day).
    """

    buckets: Mapping[str, Bucket] = field(default_factory=dict)
    default: Bucket | None = None
    unlimited: frozenset[str] = frozenset({"PingRequest", "PingDelayDisconnectRequest"})
    max_wait: float = 86_400.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "buckets", {_normalise(k): v for k, v in self.buckets.items()})
        object.__setattr__(self, "unlimited", frozenset(_normalise(k) for k in self.unlimited))

    def bucket_for(self, key: str) -> Bucket | None:
        """The bucket that limits requests with `key`, or None if they are not limited."""
        key = _normalise(key)
        if key in self.unlimited:
            return None
        return self.buckets.get(key, self.default)

    def with_buckets(self, buckets: Mapping[str, Bucket]) -> RateLimits:
        """A copy with some buckets added or changed (e.g. a tighter GetHistory for one test)."""
        return RateLimits({**self.buckets, **buckets}, self.default, self.unlimited, self.max_wait)


TELEGRAM_LIKE = RateLimits(
    {
        "messages.GetHistory": Bucket(20, 1.0),
        "channels.GetMessages": Bucket(20, 1.0),
        "messages.GetMessages": Bucket(20, 1.0),
        # The strictest: waits of many hours after a few dozen calls are commonly reported.
        "contacts.ResolveUsername": Bucket(10, 1 / 60),
        # About 25 s per page once the first few are spent.
        "messages.GetDialogs": Bucket(3, 1 / 25),
        "updates.GetChannelDifference": Bucket(30, 2.0),
        "updates.GetDifference": Bucket(20, 1.0),
        "channels.GetFullChannel": Bucket(10, 0.2),
        "messages.GetFullChat": Bucket(10, 0.2),
        "channels.GetForumTopics": Bucket(10, 0.2),
        "channels.JoinChannel": Bucket(5, 1 / 120),
        "messages.ImportChatInvite": Bucket(5, 1 / 120),
        # Downloaders report short waits (2-22 s) on upload.getFile once they fetch many parts at once.
        "upload.GetFile": Bucket(30, 5.0),
    },
    default=Bucket(50, 10.0),
)
"""The default limits of `FakeTelegram`, in the fake's (monotonic) seconds."""


@dataclass(slots=True)
class _State:
    tokens: float
    updated: float
    wait_until: float = -math.inf


@dataclass(eq=False)
class RateLimiter:
    """Token buckets for one account, plus the waits it announced; times are the caller's monotonic seconds."""

    limits: RateLimits
    flood_waits: Counter[str] = field(default_factory=Counter)
    """FLOOD_WAITs answered, by request key."""
    sent_during_wait: Counter[str] = field(default_factory=Counter)
    """Requests that arrived while their method's announced wait still ran, by request key."""
    _states: dict[str, _State] = field(default_factory=dict)

    def admit(self, key: str, now: float) -> int | None:
        """None if a request with `key` may run at `now`; otherwise the FLOOD_WAIT seconds to answer.

        A request during a running wait doubles what remains of it (at least one second more), as
        Telegram is reported to punish clients that do not wait.
        """
        bucket = self.limits.bucket_for(key)
        if bucket is None:
            return None
        st = self._states.get(key)
        if st is None:
            st = self._states[key] = _State(tokens=bucket.capacity, updated=now)
        st.tokens = min(bucket.capacity, st.tokens + (now - st.updated) * bucket.per_second)
        st.updated = now
        remaining = st.wait_until - now
        if remaining > _GRACE:
            self.sent_during_wait[key] += 1
            longer = max(2 * remaining, remaining + 1)
            return self._announce(key, st, now, min(longer, max(remaining, self.limits.max_wait)))
        if st.tokens + _GRACE * bucket.per_second >= 1:
            st.tokens = max(0.0, st.tokens - 1)
            return None
        return self._announce(key, st, now, (1 - st.tokens) / bucket.per_second)

    def _announce(self, key: str, st: _State, now: float, wait: float) -> int:
        seconds = max(1, math.ceil(wait - _GRACE))
        st.wait_until = now + seconds
        self.flood_waits[key] += 1
        return seconds

    def clear_logs(self) -> None:
        """Forget the counters (the buckets and running waits stay: they are Telegram's state)."""
        self.flood_waits.clear()
        self.sent_during_wait.clear()
