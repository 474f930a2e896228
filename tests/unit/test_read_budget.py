"""The rolling read budget's arithmetic: hourly buckets, the window, restarts and when reading resumes."""

from __future__ import annotations

import pytest

from emitter.read_budget import BUCKET, WINDOW, ReadBudget, pruned, resumes_at, spend, used

T0 = 1_700_000_000.0 - 1_700_000_000 % BUCKET
"""The start of an hour (Unix seconds)."""


def test_reads_in_one_hour_share_a_bucket_and_the_next_hour_opens_another() -> None:
    """Spending is one (hour, count) pair per hour, oldest first."""
    s = spend((), T0 + 10, 5)
    s = spend(s, T0 + 3599, 2)
    s = spend(s, T0 + 3600, 1)
    assert s == ((int(T0), 7), (int(T0) + BUCKET, 1))


@pytest.mark.parametrize(
    ("at", "counted"),
    [(T0 + 1, 7), (T0 + WINDOW + BUCKET - 1, 7), (T0 + WINDOW + BUCKET, 0)],
)
def test_a_bucket_counts_until_a_whole_window_after_its_hour_ends(at: float, counted: int) -> None:
    """Reads count for 24 h after the end of their hour, so no 24 h span holds more than the limit."""
    s = spend((), T0, 7)
    assert used([s], at) == counted
    assert len(pruned(s, at)) == (1 if counted else 0)


def test_the_budget_is_the_accounts_summed_over_groups() -> None:
    """Two groups' reads spend one budget."""
    budget = ReadBudget(10)
    budget.take(1, T0, 6)
    budget.take(2, T0 + 5, 3)
    assert budget.left(T0 + 6) == 1
    budget.take(2, T0 + 7)
    assert budget.left(T0 + 8) == 0
    assert budget.of(2, T0 + 8) == ((int(T0), 4),)


def test_reading_resumes_when_the_oldest_buckets_free_enough() -> None:
    """Spent at 1,000: one read is allowed again when the oldest bucket leaves the window, not before."""
    budget = ReadBudget(1000)
    budget.take(1, T0, 400)
    budget.take(1, T0 + 2 * BUCKET, 600)
    assert budget.resumes_at(T0 + 2 * BUCKET) == T0 + BUCKET + WINDOW
    assert budget.left(T0 + BUCKET + WINDOW - 1) == 0
    assert budget.left(T0 + BUCKET + WINDOW) == 400
    assert budget.resumes_at(T0 + BUCKET + WINDOW) is None


def test_a_budget_overspent_across_buckets_waits_for_as_many_as_it_takes() -> None:
    """Over the limit (a smaller budget after a restart), reading waits until the sum drops below it."""
    spent = (((int(T0), 500), (int(T0) + BUCKET, 500), (int(T0) + 2 * BUCKET, 500)),)
    assert resumes_at(spent, 600, T0 + 3 * BUCKET) == T0 + 2 * BUCKET + WINDOW
    assert resumes_at(spent, 1501, T0 + 3 * BUCKET) is None


def test_a_restart_restores_the_stored_spending_without_what_expired() -> None:
    """The cursors' buckets come back at start; buckets older than the window are dropped."""
    budget = ReadBudget(1000)
    stored = {1: ((int(T0) - WINDOW - BUCKET, 900), (int(T0), 300)), 2: ((int(T0), 200),)}
    budget.restore(stored, T0 + 60)
    assert budget.left(T0 + 60) == 500
    assert budget.of(1, T0 + 60) == ((int(T0), 300),)


def test_restoring_again_counts_nothing_twice() -> None:
    """The cursors restored a second time, or after this run read more, leave the larger count per bucket."""
    budget = ReadBudget(1000)
    budget.restore({1: ((int(T0), 300),)}, T0 + 60)
    budget.take(1, T0 + 70, 50)
    budget.restore({1: ((int(T0), 300),)}, T0 + 80)
    assert budget.of(1, T0 + 80) == ((int(T0), 350),)


def test_no_budget_is_unlimited() -> None:
    """A limit of 0 never stops reading."""
    budget = ReadBudget(0)
    budget.take(1, T0, 10**9)
    assert not budget.limited
    assert budget.left(T0) > 10**9
    assert budget.resumes_at(T0) is None


@pytest.mark.parametrize(
    ("limit", "spending", "line"),
    [
        (0, {}, "read budget: unlimited (telegram.read_budget_per_day = 0)"),
        (500, {}, "read budget: 0 of 500 messages per rolling 24 h spent, 500 left"),
        (
            500,
            {1: ((0, 120),), 2: ((BUCKET, 80),)},
            "read budget: 200 of 500 messages per rolling 24 h spent, 300 left; the oldest 120 free up at "
            "1970-01-02T01:00:00Z",
        ),
        (
            200,
            {1: ((0, 120),), 2: ((BUCKET, 80),)},
            "read budget: 200 of 200 messages per rolling 24 h spent; backfills paused until 1970-01-02T01:00:00Z "
            "(follow goes on)",
        ),
        (
            50,
            {1: ((0, 120), (BUCKET, 80))},
            "read budget: 200 of 50 messages per rolling 24 h spent; backfills paused until 1970-01-02T02:00:00Z "
            "(follow goes on)",
        ),
    ],
)
def test_describe_says_spent_of_the_limit_and_when_reads_free_up(
    limit: int, spending: dict[int, tuple[tuple[int, int], ...]], line: str
) -> None:
    """`emitter check`'s line: spent of the limit, and when the oldest reads leave the window or reading resumes."""
    budget = ReadBudget(limit, dict(spending))
    assert budget.describe(2 * BUCKET) == line
