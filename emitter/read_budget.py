"""The account's rolling 24-hour read budget: how many messages backfill walks may still read (pure).

Telegram bans accounts that read too much too fast; a cap on messages read per day is what tgdata's users
set to stay safe. Spending is counted in hourly buckets, kept per group so that each group's buckets travel
with its cursor (same transaction as the pages they paid for) and a restart sums them back: the budget then
survives restarts without a store of its own. A bucket counts as spent until a whole window after its hour
*ends*, so no 24-hour span, however placed, ever holds more reads than the limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

Spending = tuple[tuple[int, int], ...]
"""(bucket start, Unix seconds; messages read in it), oldest first, one entry per bucket."""

WINDOW: Final = 86_400
"""The budget's window: a rolling day."""
BUCKET: Final = 3_600
"""Bucket width: an hour, so a group's spending is at most 25 small pairs in its cursor."""


def spend(spending: Spending, now: float, count: int, *, bucket: int = BUCKET) -> Spending:
    """`spending` with `count` reads at `now` added to now's bucket."""
    start = int(now // bucket) * bucket
    if spending and spending[-1][0] == start:
        return (*spending[:-1], (start, spending[-1][1] + count))
    return _merge((*spending, (start, count)))


def pruned(spending: Spending, now: float, *, window: int = WINDOW, bucket: int = BUCKET) -> Spending:
    """`spending` without the buckets that no longer count at `now`."""
    return tuple((start, n) for start, n in spending if start + bucket + window > now)


def used(spending: Iterable[Spending], now: float, *, window: int = WINDOW, bucket: int = BUCKET) -> int:
    """Reads that still count at `now`, over several groups' spending."""
    return sum(n for s in spending for _, n in pruned(s, now, window=window, bucket=bucket))


def resumes_at(
    spending: Iterable[Spending], limit: int, now: float, *, window: int = WINDOW, bucket: int = BUCKET
) -> float | None:
    """When at least one read is allowed again (Unix seconds), or None if one is allowed at `now`."""
    live = _merge(b for s in spending for b in pruned(s, now, window=window, bucket=bucket))
    over = sum(n for _, n in live) - limit + 1
    if over <= 0:
        return None
    for start, n in live:
        over -= n
        if over <= 0:
            return float(start + bucket + window)
    raise AssertionError("unreachable: the buckets sum to more than `over`")  # pragma: no cover


def _merge(buckets: Iterable[tuple[int, int]]) -> Spending:
    totals: dict[int, int] = {}
    for start, n in buckets:
        totals[start] = totals.get(start, 0) + n
    return tuple(sorted(totals.items()))


@dataclass
class ReadBudget:
    """The account's budget (`limit` messages per rolling day; 0 = unlimited) and every group's spending.

    Times are Unix seconds passed in by the caller, so tests run the day on a scaled clock.
    """

    limit: int = 0
    spending: dict[int, Spending] = field(default_factory=dict)

    @property
    def limited(self) -> bool:
        """Whether there is a budget at all."""
        return self.limit > 0

    def restore(self, stored: Mapping[int, Spending], now: float) -> None:
        """Take the spending the committed cursors hold (at start: a restart does not reset the budget).

        A stored bucket is an earlier snapshot of the same count, so the larger of the two wins: restoring
        twice, or after reads this run made, counts nothing twice.
        """
        for gid, spent in stored.items():
            mine = dict(self.spending.get(gid, ()))
            for start, n in pruned(spent, now):
                mine[start] = max(n, mine.get(start, 0))
            self.spending[gid] = tuple(sorted(mine.items()))

    def left(self, now: float) -> int:
        """Messages that may still be read at `now` (a large number when unlimited)."""
        if not self.limited:
            return 2**62
        return max(0, self.limit - used(self.spending.values(), now))

    def take(self, group_id: int, now: float, count: int = 1) -> None:
        """Record `count` messages of `group_id` read at `now`."""
        self.spending[group_id] = spend(pruned(self.spending.get(group_id, ()), now), now, count)

    def of(self, group_id: int, now: float) -> Spending:
        """The group's spending that still counts (what its cursor stores)."""
        return pruned(self.spending.get(group_id, ()), now)

    def resumes_at(self, now: float) -> float | None:
        """When reading may go on (Unix seconds), or None if it may now."""
        return resumes_at(self.spending.values(), self.limit, now) if self.limited else None

    def describe(self, now: float) -> str:
        """One line for `emitter check`: spent of the limit, and when reads free up (UTC, whole seconds)."""
        if not self.limited:
            return "read budget: unlimited (telegram.read_budget_per_day = 0)"
        spent = used(self.spending.values(), now)
        line = f"read budget: {spent} of {self.limit} messages per rolling 24 h spent"
        resume = self.resumes_at(now)
        if resume is not None:
            return f"{line}; backfills paused until {_utc(resume)} (follow goes on)"
        oldest = _merge(b for s in self.spending.values() for b in pruned(s, now))
        if not oldest:
            return f"{line}, {self.limit} left"
        start, n = oldest[0]
        return f"{line}, {self.limit - spent} left; the oldest {n} free up at {_utc(start + BUCKET + WINDOW)}"


def _utc(unix: float) -> str:
    return datetime.fromtimestamp(int(unix), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
