"""Scenario 2: live latency, from the fake Telegram pushing an update to a read_committed consumer seeing it.

The emitter follows one supergroup (TelegramSource with live handlers, the production sweep interval) into
KafkaSink; a poster in the same loop calls `fake.post` at a steady rate with the post time stamped in the
text; `bench.probe`, in its own process, reads the topic read_committed and computes arrival minus post.
At the target rate a further window has the fake drop a share of the updates: each loss is a pts gap the
emitter closes with a catch-up before it publishes what follows (ids stay in order), and the ratio to the
window without losses in the same run shows what that costs.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Final

from bench.common import Context, log, median, run
from bench.probe import FETCH_MAX_WAIT_MS, stamp_text
from bench.report import Row, fmt, verdict
from emitter.app import create_monitor
from emitter.telegram_client import client_options
from emitter.telegram_gateway import RequestGateway
from emitter.telegram_source import TelegramSource
from tests.faketelegram import FakeTelegram, wait_until

NAME = "2 live latency"
BATCH_TIMEOUT_MS: Final = 20
"""The monitor's batch timeout here: the longest a live event waits for company before its transaction."""
TARGET_P99_MS: Final = 250.0
TARGET_RATE: Final = 2_000
TICK: Final = 0.005
"""The poster wakes every 5 ms and posts what is due, so posts spread evenly over each second."""
DROP_FRACTION: Final = 0.01
"""Share of live updates the fake loses in the lossy window: gaps for the emitter's catch-up to close."""
DROP_SEED: Final = 5
"""The same updates are lost in every run."""


@dataclass(slots=True)
class _Window:
    p50: float
    p99: float
    seen: int
    posted: int
    batches: int
    drained: float
    """Records per second from the first post to the last record seen: what the live path sustained."""
    fake_share: float
    """Share of the window's wall time spent inside `fake.post` (the fake server's work, same loop)."""
    dropped: int = 0
    """Updates the fake lost on their way to the client."""
    gaps: int = 0
    too_long: int = 0
    """Catch-ups Telegram answered "too long" (a rescan and a sweep follow before later live changes)."""


def scenario(ctx: Context) -> list[Row]:
    """Each rate for `latency_seconds`, then the target rate with drops, `ctx.runs` times; medians of the windows."""
    seconds = ctx.sizes.latency_seconds
    results: dict[int, list[_Window]] = {rate: [] for rate in ctx.sizes.latency_rates}
    lossy: list[_Window] = []
    for i in range(ctx.runs):
        for rate in ctx.sizes.latency_rates:
            log(f"latency: run {i + 1}/{ctx.runs}, {rate:,} msgs/s for {seconds:g} s")
            results[rate].append(run(_window(ctx, rate, seconds)))
        log(f"latency: run {i + 1}/{ctx.runs}, {TARGET_RATE:,} msgs/s, {DROP_FRACTION:.0%} of updates dropped")
        lossy.append(run(_window(ctx, TARGET_RATE, seconds, drop=DROP_FRACTION)))
    _notes(ctx, seconds)
    rows = []
    for rate, windows in results.items():
        rows += _rate_rows(rate, windows)
    return rows + _lossy_rows(lossy, results.get(TARGET_RATE, []))


def _notes(ctx: Context, seconds: float) -> None:
    ctx.note(
        NAME,
        f"One supergroup followed live (TelegramSource, default sweep interval), Monitor batch_timeout "
        f"{BATCH_TIMEOUT_MS} ms, production batch size; a fresh emitter, world and topics per window. The poster "
        f"calls `fake.post` every {TICK * 1000:.0f} ms for what is due at the rate; the fake pushes each update "
        f"through bytes to Telethon's update loop.",
    )
    ctx.note(
        NAME,
        f"Latency = the time a read_committed AIOKafkaConsumer in a separate process (fetch_max_wait_ms "
        f"{FETCH_MAX_WAIT_MS}) receives the record minus the time `post` was called (stamped in the text, "
        f"CLOCK_MONOTONIC). p50/p99 per {seconds:g} s window, median over {ctx.runs} windows.",
    )
    ctx.note(
        NAME,
        f"Lost updates: in each run one more window at {TARGET_RATE:,} msgs/s in the same world, the fake dropping "
        f"{DROP_FRACTION:.0%} of live updates (`faults.drop_updates`, seed {DROP_SEED}). A lost update leaves a pts "
        "gap: Telethon or the emitter asks getChannelDifference, and nothing after the gap is published before "
        "it is filled (a group's NEW records stay in id order; there is no looser mode to compare with, see "
        "README, Change capture). lossy ÷ lossless is computed within each run; its median is reported.",
    )


def _rate_rows(rate: int, windows: list[_Window]) -> list[Row]:
    p50, p99 = median(w.p50 for w in windows), median(w.p99 for w in windows)
    seen, posted = sum(w.seen for w in windows), sum(w.posted for w in windows)
    per_txn = seen / max(1, sum(w.batches for w in windows))
    drained, fake_share = median(w.drained for w in windows), median(w.fake_share for w in windows)
    targeted = rate == TARGET_RATE
    return [
        Row(
            NAME,
            f"p50 at {rate:,} msgs/s (sustained {fmt(drained)}/s; {fake_share:.0%} of wall in fake.post)",
            f"{fmt(p50, 1)} ms",
        ),
        Row(
            NAME,
            f"p99 at {rate:,} msgs/s ({seen:,}/{posted:,} seen, {per_txn:.0f} records per txn)",
            f"{fmt(p99, 1)} ms",
            f"≤ {TARGET_P99_MS:.0f} ms" if targeted else "—",
            p99 / TARGET_P99_MS if targeted else None,
            verdict(p99 <= TARGET_P99_MS and seen == posted) if targeted else "info",
        ),
    ]


def _lossy_rows(lossy: list[_Window], lossless: list[_Window]) -> list[Row]:
    at = f"{TARGET_RATE:,} msgs/s, {DROP_FRACTION:.0%} of updates lost"
    seen, posted = sum(w.seen for w in lossy), sum(w.posted for w in lossy)
    dropped, gaps, too_long = (sum(getattr(w, k) for w in lossy) for k in ("dropped", "gaps", "too_long"))
    rows = [
        Row(
            NAME,
            f"p50, {at} (sustained {fmt(median(w.drained for w in lossy))}/s)",
            f"{fmt(median(w.p50 for w in lossy), 1)} ms",
        ),
        Row(
            NAME,
            f"p99, {at} ({seen:,}/{posted:,} seen; {dropped} lost, {gaps} gaps, {too_long} too long)",
            f"{fmt(median(w.p99 for w in lossy), 1)} ms",
            "all seen",
            None,
            verdict(seen == posted),
        ),
    ]
    if lossless:
        for cut in ("p50", "p99"):
            ratio = median(getattr(a, cut) / getattr(b, cut) for a, b in zip(lossy, lossless, strict=True))
            rows.append(Row(NAME, f"{cut} with {DROP_FRACTION:.0%} lost ÷ with none (same run)", f"{ratio:.2f}"))
    return rows


async def _window(ctx: Context, rate: int, seconds: float, *, drop: float = 0.0) -> _Window:
    fake = FakeTelegram(seed=11, rate_limits=None)  # latency of our code, not of Telegram's limits
    channel = fake.add_channel("Live", username="live", megagroup=True)
    fake.post_many(channel, 10)
    history = len(fake.message_ids(channel))
    settings = ctx.fresh_settings(batch_timeout_ms=BATCH_TIMEOUT_MS)
    source = TelegramSource(
        fake.client(**client_options()),
        ["@live"],
        own_client=True,
        gateway=RequestGateway(paced=False),
    )
    monitor = create_monitor(settings, source)
    task = asyncio.create_task(monitor.run())
    posted = round(rate * seconds)
    try:
        await wait_until(lambda: monitor.stats.published >= history or task.done(), within=60)
        if task.done():
            task.result()  # surfaces why the emitter stopped
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.probe",
            ctx.bootstrap,
            settings.kafka.topic,
            str(posted),
            str(seconds + 30),
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        ready = await asyncio.wait_for(proc.stdout.readline(), 60)
        if ready.strip() != b"ready":
            raise RuntimeError(f"the probe did not start: {ready!r}")
        batches = monitor.stats.batches
        fake.faults.drop_updates(drop, seed=DROP_SEED)  # after the start: the history arrives whole
        started = time.perf_counter()
        in_fake = await _post(fake, channel, rate, posted)
        posting = time.perf_counter() - started
        out, _ = await asyncio.wait_for(proc.communicate(), seconds + 60)
        batches = monitor.stats.batches - batches
    finally:
        monitor.request_stop()
        await asyncio.wait_for(task, 60)
    stamps = _parse(out)
    if len(stamps) < 2:
        raise RuntimeError(f"the probe saw {len(stamps)} of {posted} records")
    latencies = [(seen - sent) / 1e6 for sent, seen in stamps]
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    span = (max(seen for _, seen in stamps) - min(sent for sent, _ in stamps)) / 1e9
    return _Window(
        cuts[49],
        cuts[98],
        len(stamps),
        posted,
        batches,
        len(stamps) / span,
        in_fake / posting,
        fake.faults.dropped_updates,
        source.stats.live_gaps,
        source.stats.too_long,
    )


async def _post(fake: FakeTelegram, channel: Any, rate: int, count: int) -> float:
    """Post `count` live messages at `rate` per second, each stamped with its post time.

    Returns the seconds spent inside `fake.post`: the fake server's work (building the update, serialising
    it, parsing it back for the client) shares the emitter's loop, and the report says how much it took.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    inside = 0.0
    while sent < count:
        due = min(count, int((loop.time() - start) * rate) + 1)
        while sent < due:
            before = time.perf_counter()
            fake.post(channel, stamp_text(time.monotonic_ns()))
            inside += time.perf_counter() - before
            sent += 1
        await asyncio.sleep(TICK)
    return inside


def _parse(out: bytes) -> list[tuple[int, int]]:
    lines = out.decode().strip().splitlines()
    if not lines:
        raise RuntimeError("the probe printed nothing")
    return [(int(sent), int(seen)) for sent, seen in json.loads(lines[-1])["stamps"]]
