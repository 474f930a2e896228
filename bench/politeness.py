"""Scenario 6: Telegram politeness: what one account costs Telegram, and what pacing buys under its limits.

Both parts run the real emitter (production client options, the production gateway with default paces) against
the fake Telegram with its Telegram-like per-method limits, on one scaled clock shared by the fake and the
gateway, so that Telegram minutes pass in wall seconds. Figures are in Telegram time.

- Following 200 quiet groups: requests per minute the account sends, with the default sweep interval.
- A backfill of 3 large and 20 small groups, paced (defaults) and unpaced (each request sent at once, each
  FloodWait slept by the task that got it, as Telethon does on its own): messages per Telegram second,
  FloodWaits answered, and requests sent while a wait was running.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from bench.common import Context, log, median, run
from bench.report import Row, fmt, verdict
from emitter.app import create_monitor
from emitter.clock import ScaledClock
from emitter.kafka_sink import KafkaSink
from emitter.settings import Settings
from emitter.telegram_client import client_options
from emitter.telegram_gateway import DEFAULT_PACES, RequestGateway, RequestKind
from emitter.telegram_source import TelegramSource
from tests.faketelegram import FakeTelegram

NAME = "8 Telegram politeness"
SPEED: Final = 60
BACKFILL_SPEED: Final = 4
QUIET_GROUPS: Final = 200
QUIET_MINUTES: Final = 20.0


async def _quiet(settings: Settings, minutes: float, groups_n: int) -> tuple[float, dict[str, int]]:
    """Requests per Telegram minute while following `groups_n` groups where nothing happens."""
    clock = ScaledClock(SPEED)
    fake = FakeTelegram(seed=21, monotonic=clock.monotonic)
    groups = [fake.add_channel(f"Quiet {i}", username=f"quiet_{i:03d}", megagroup=True) for i in range(groups_n)]
    for g in groups:
        fake.post_many(g, 2)
    source = TelegramSource(
        fake.client(**client_options()), [f"@{g.username}" for g in groups], own_client=True, timer=clock
    )
    monitor = create_monitor(settings, source, KafkaSink(settings.kafka, settings.emitter.instance))
    task = asyncio.create_task(monitor.run())
    try:
        # Past the backfill, then count a window of pure following.
        while not all(monitor.tracker.cursor(fake.peer_id(g)).cursor >= 2 for g in groups):
            if task.done():
                task.result()
            await asyncio.sleep(0.1)
        fake.reset_counters()
        start = clock.monotonic()
        await clock.sleep(minutes * 60)
        elapsed = (clock.monotonic() - start) / 60
        counts = dict(fake.request_counts)
    finally:
        monitor.request_stop()
        await asyncio.wait_for(task, 120)
    return sum(counts.values()) / elapsed, counts


async def _backfill(
    settings: Settings, *, paced: bool, large: int, budget: float | None = None
) -> tuple[float, int, int, float]:
    """Messages per Telegram second, FloodWaits, requests sent during a running wait, and Telegram seconds.

    The clock runs slowly here (x4): the fake must answer faster than Telegram's limits refill, or an unpaced
    client could not outrun them. An unpaced run is stopped after `budget` Telegram seconds: its waits
    escalate (Telegram lengthens the wait of a client that keeps sending), so it may not finish usefully.
    """
    clock = ScaledClock(BACKFILL_SPEED)
    fake = FakeTelegram(seed=22, monotonic=clock.monotonic)
    specs: list[str | int] = []
    for i in range(23):
        g = fake.add_channel(f"Group {i}", username=f"group_{i}", megagroup=True)
        fake.post_many(g, large if i < 3 else 50)
        specs.append(f"@{g.username}")
    source = TelegramSource(
        fake.client(**client_options()),
        specs,
        follow=False,
        own_client=True,
        timer=clock,
        # Unpaced is the emitter before the gateway: every group at once, each request sent when asked.
        gateway=RequestGateway(clock=clock, paced=paced, backfill_concurrency=2 if paced else len(specs)),
    )
    monitor = create_monitor(settings, source, KafkaSink(settings.kafka, settings.emitter.instance))
    start = clock.monotonic()
    task = asyncio.create_task(monitor.run())
    try:
        await asyncio.wait_for(asyncio.shield(task), clock.to_real(budget) if budget else 1800)
    except TimeoutError:
        monitor.request_stop()
        await asyncio.wait_for(task, 120)
    seconds = clock.monotonic() - start
    published = monitor.stats.published
    return published / seconds, sum(fake.flood_waits.values()), sum(fake.sent_during_wait.values()), seconds


def scenario(ctx: Context) -> list[Row]:
    """Both parts, median of `runs` for the backfill."""
    minutes = 2.0 if ctx.quick else QUIET_MINUTES
    large = 300 if ctx.quick else 3_000
    quiet = 20 if ctx.quick else QUIET_GROUPS
    log(f"politeness: following {quiet} quiet groups for {minutes:g} Telegram minutes")
    per_minute, counts = run(_quiet(ctx.fresh_settings(), minutes, quiet))
    results: dict[bool, list[tuple[float, int, int, float]]] = {True: [], False: []}
    for i in range(ctx.runs):
        log(f"politeness: backfill {i + 1}/{ctx.runs}, paced")
        paced = run(_backfill(ctx.fresh_settings(), paced=True, large=large))
        results[True].append(paced)
        log(f"politeness: backfill {i + 1}/{ctx.runs}, unpaced, for as long ({paced[3]:.0f} Telegram s)")
        results[False].append(run(_backfill(ctx.fresh_settings(), paced=False, large=large, budget=paced[3])))

    def med(paced: bool, k: int) -> float:
        return median([float(r[k]) for r in results[paced]])

    top = ", ".join(f"{m} {n}" for m, n in sorted(counts.items(), key=lambda kv: -kv[1])[:3])
    ctx.note(
        NAME,
        f"Following: {quiet} channels with 2 messages each, nothing posted, default sweep interval "
        f"(30 s ±20 %) and paces; requests counted by the fake over {minutes:g} Telegram minutes after the "
        f"backfill (most: {top}). A timed sweep of a quiet group walks its tail (GetHistory) and then catches up "
        "on changes (GetChannelDifference: edits and deletes have no other trace), so the history and difference "
        "paces (1/s each) are the ceiling: sweeps of 200 groups every 30 s would ask for 6.7/s of each, so the "
        "gateway stretches them (with --quick: 20 groups, 80 a minute). Backfill: 3 groups x "
        f"{large:,} + 20 x 50 messages, {ctx.runs} run(s) each way, Telegram time (clock x{BACKFILL_SPEED}); the "
        "unpaced run is stopped after as many Telegram seconds as the paced one took.",
    )
    ceiling = 60 * (DEFAULT_PACES[RequestKind.HISTORY].rate + DEFAULT_PACES[RequestKind.DIFFERENCE].rate)
    rows: list[Any] = [
        Row(
            NAME,
            f"requests per minute, one account following {QUIET_GROUPS} quiet groups",
            fmt(per_minute, 1),
            f"≤ {ceiling:g} + others (the history and difference paces)",
            None,
            verdict(per_minute <= ceiling + 30),
        ),
        Row(NAME, "backfill msgs per Telegram second, paced", fmt(med(True, 0), 1)),
        Row(NAME, "backfill msgs per Telegram second, unpaced", fmt(med(False, 0), 1)),
        Row(
            NAME,
            "FloodWaits, paced / unpaced",
            f"{fmt(med(True, 1))} / {fmt(med(False, 1))}",
            "paced ≤ unpaced ÷ 10",
            None,
            verdict(med(True, 1) <= med(False, 1) / 10),
        ),
        Row(
            NAME,
            "requests sent during a running FloodWait, paced / unpaced",
            f"{fmt(med(True, 2))} / {fmt(med(False, 2))}",
            "paced 0",
            None,
            verdict(med(True, 2) == 0),
        ),
    ]
    return rows
