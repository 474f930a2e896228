"""Scenario 2: live latency, from the fake Telegram pushing an update to a read_committed consumer seeing it.

The fake Telegram runs in a process of its own (`bench.remote_fake`), as Telegram is not in production's
process: the emitter follows one supergroup over MTProto on TCP with a real TelegramClient (production
options) and the production sweep interval, into KafkaSink; the child posts at a steady rate with the post
time stamped in the text; `bench.probe`, in a third process, reads the topic read_committed and computes
arrival minus post. At the target rate the window runs twice more: once with a CPU hog (a busy loop in a
process of its own, one core of the machine's) and once with the fake dropping a share of the updates (each
loss is a pts gap the emitter closes with a catch-up before it publishes what follows; the ratio to the window
without losses in the same run shows what that costs). Each record is also stamped inside the emitter (Telethon's
dispatch, the commit's start and end), which splits its latency into stages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final

from telethon import TelegramClient, events, types

from bench.common import Context, log, median, run
from bench.probe import FETCH_MAX_WAIT_MS, STAMP_PREFIX, start_probe
from bench.remote_fake import RemoteFake, aes_backend
from bench.report import Row, fmt, verdict
from emitter.app import create_monitor
from emitter.monitor import Monitor
from emitter.protocols import Batch
from emitter.telegram_gateway import RequestGateway
from emitter.telegram_source import TelegramSource
from tests.faketelegram import wait_until

NAME = "2 live latency"
BATCH_TIMEOUT_MS: Final = 20
"""The monitor's batch timeout here: the longest a live event waits for company before its transaction."""
TARGET_P99_MS: Final = 250.0
TARGET_RATE: Final = 2_000
DROP_FRACTION: Final = 0.01
"""Share of live updates the fake loses in the lossy window: gaps for the emitter's catch-up to close."""
DROP_SEED: Final = 5
"""The same updates are lost in every run."""
STAGES: Final = ("post → Telethon dispatch", "dispatch → commit start", "commit", "commit end → probe sees it")
"""Where a record's latency goes: the fake, socket and update loop; the emitter's queue and batch wait; the
transaction's round trips; and a read_committed consumer's fetch."""
PROCESSES: Final = ("emitter", "fake", "probe", "hog")


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
    """Share of the posting time spent inside `fake.post` (the fake server's work, in its own process)."""
    dropped: int = 0
    """Updates the fake lost on their way to the client."""
    gaps: int = 0
    too_long: int = 0
    """Catch-ups Telegram answered "too long" (a rescan and a sweep follow before later live changes)."""
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds per wall second of each process while posting and reading (1.0 = one core)."""
    waits: dict[str, float] = field(default_factory=dict)
    """Seconds per wall second each process waited on a run queue for a CPU (runnable, not running)."""
    stages: dict[str, list[float]] = field(default_factory=dict)
    """Milliseconds each record spent in each of `STAGES`."""
    cpu_us: float = 0.0
    """The emitter process's CPU per record seen, µs (Telethon's receiving included)."""


def scenario(ctx: Context) -> list[Row]:
    """Each rate, the target rate with a hog, and with drops, `ctx.runs` times; medians of the windows."""
    seconds = ctx.sizes.latency_seconds
    results: dict[int, list[_Window]] = {rate: [] for rate in ctx.sizes.latency_rates}
    hogged: list[_Window] = []
    lossy: list[_Window] = []
    bare: list[_Bare] = []
    for i in range(ctx.runs):
        log(f"latency: run {i + 1}/{ctx.runs}, a bare Telethon client at {TARGET_RATE:,} msgs/s")
        bare.append(run(_bare_window(TARGET_RATE, seconds)))
        for rate in ctx.sizes.latency_rates:
            log(f"latency: run {i + 1}/{ctx.runs}, {rate:,} msgs/s for {seconds:g} s")
            results[rate].append(run(_window(ctx, rate, seconds)))
        log(f"latency: run {i + 1}/{ctx.runs}, {TARGET_RATE:,} msgs/s with a CPU hog")
        hogged.append(run(_window(ctx, TARGET_RATE, seconds, hog=True)))
        log(f"latency: run {i + 1}/{ctx.runs}, {TARGET_RATE:,} msgs/s, {DROP_FRACTION:.0%} of updates dropped")
        lossy.append(run(_window(ctx, TARGET_RATE, seconds, drop=DROP_FRACTION)))
    _notes(ctx, seconds)
    rows = []
    for rate, windows in results.items():
        rows += _rate_rows(rate, windows)
    rows += _rate_rows(TARGET_RATE, hogged, hog=True)
    rows += _stage_rows(results.get(TARGET_RATE, []), hogged)
    rows += _bare_rows(bare, results.get(TARGET_RATE, []))
    return rows + _lossy_rows(lossy, results.get(TARGET_RATE, []))


def _notes(ctx: Context, seconds: float) -> None:
    ctx.note(
        NAME,
        f"The fake Telegram in its own process (`python -m bench.remote_fake latency`): one supergroup served over "
        f"MTProto 2.0 on TCP (`MTProtoListener`), the emitter's real TelegramClient with production options "
        f"(`client_options()`), Telethon's AES backend {aes_backend()}. TelegramSource (default sweep interval), "
        f"Monitor batch_timeout {BATCH_TIMEOUT_MS} ms, production batch size; a fresh fake, emitter and topics per "
        f"window. The child's poster posts every 5 ms what is due at the rate (its CPU, not the emitter's).",
    )
    ctx.note(
        NAME,
        f"Latency = the time a read_committed AIOKafkaConsumer in a separate process (fetch_max_wait_ms "
        f"{FETCH_MAX_WAIT_MS}) receives the record minus the time `post` was called (stamped in the text, "
        f"CLOCK_MONOTONIC, system-wide). p50/p99 per {seconds:g} s window, median over {ctx.runs} windows.",
    )
    ctx.note(
        NAME,
        "CPU hog: the bench starts `python -c 'while True: pass'` (one process: one of the machine's cores) "
        "before posting and kills it after the probe's read. CPU shares are CPU seconds per wall second of each "
        "process over that stretch, from /proc/PID/schedstat for the emitter, the fake and the hog, with the "
        "seconds each waited on a run queue while runnable after a + ('0.51+0.45w': ran half a core's worth and "
        "waited almost as long); the probe reports its own `time.process_time`.",
    )
    ctx.note(
        NAME,
        "Stages: the emitter's client gets one more handler (events.Raw) that stamps Telethon's dispatch of each "
        "stamped message, and the sink's commit is timed; with the post stamp and the probe's arrival that splits "
        "each record's latency into: " + ", ".join(STAGES) + ". Median and p99 of each, median over the windows.",
    )
    ctx.note(
        NAME,
        f"Lost updates: in each run one more window at {TARGET_RATE:,} msgs/s, the fake dropping "
        f"{DROP_FRACTION:.0%} of live updates (`faults.drop_updates`, seed {DROP_SEED}). A lost update leaves a pts "
        "gap: Telethon or the emitter asks getChannelDifference, and nothing after the gap is published before "
        "it is filled (a group's NEW records stay in id order; there is no looser mode to compare with, see "
        "README, Change capture). lossy ÷ lossless is computed within each run; its median is reported.",
    )


def _shares(windows: list[_Window]) -> str:
    """Each process's median CPU share, with its run-queue wait where measured: "emitter 0.61+0.20w"."""
    out = []
    for p in PROCESSES:
        cpu = [w.cpu[p] for w in windows if p in w.cpu]
        if not cpu:
            continue
        waits = [w.waits[p] for w in windows if p in w.waits]
        out.append(f"{p} {median(cpu):.2f}" + (f"+{median(waits):.2f}w" if waits else ""))
    return ", ".join(out)


def _rate_rows(rate: int, windows: list[_Window], *, hog: bool = False) -> list[Row]:
    p50, p99 = median(w.p50 for w in windows), median(w.p99 for w in windows)
    seen, posted = sum(w.seen for w in windows), sum(w.posted for w in windows)
    per_txn = seen / max(1, sum(w.batches for w in windows))
    drained = median(w.drained for w in windows)
    targeted = rate == TARGET_RATE
    at = f"{rate:,} msgs/s" + (", CPU hog on the other core" if hog else "")
    return [
        Row(
            NAME,
            f"p50 at {at} (sustained {fmt(drained)}/s; CPU cores: {_shares(windows)})",
            f"{fmt(p50, 1)} ms",
        ),
        Row(
            NAME,
            f"p99 at {at} ({seen:,}/{posted:,} seen, {per_txn:.0f} records per txn)",
            f"{fmt(p99, 1)} ms",
            f"≤ {TARGET_P99_MS:.0f} ms" if targeted else "—",
            p99 / TARGET_P99_MS if targeted else None,
            verdict(p99 <= TARGET_P99_MS and seen == posted) if targeted else "info",
        ),
    ]


def _stage_rows(idle: list[_Window], hogged: list[_Window]) -> list[Row]:
    def cut(windows: list[_Window], stage: str, q: int) -> float:
        values = []
        for w in windows:
            samples = w.stages.get(stage, [])
            if len(samples) >= 2:
                values.append(statistics.quantiles(samples, n=100, method="inclusive")[q - 1])
        return median(values)

    rows = []
    for stage in STAGES:
        idle_cut = f"{fmt(cut(idle, stage, 50), 1)} / {fmt(cut(idle, stage, 99), 1)} ms"
        hog_cut = f"{fmt(cut(hogged, stage, 50), 1)} / {fmt(cut(hogged, stage, 99), 1)} ms"
        rows.append(
            Row(NAME, f"stage at {TARGET_RATE:,} msgs/s, p50 / p99: {stage} (with the hog: {hog_cut})", idle_cut)
        )
    return rows


def _bare_rows(bare: list[_Bare], emitter: list[_Window]) -> list[Row]:
    seen = sum(b.seen for b in bare)
    rows = [
        Row(
            NAME,
            f"bare Telethon client at {TARGET_RATE:,} msgs/s: CPU per update over TCP (p50 / p99 "
            f"{fmt(median(b.p50 for b in bare), 1)} / {fmt(median(b.p99 for b in bare), 1)} ms, {seen:,} received)",
            f"{fmt(median(b.cpu_us for b in bare))} µs",
        )
    ]
    if emitter:
        rows.append(
            Row(
                NAME,
                f"emitter at {TARGET_RATE:,} msgs/s: its process's CPU per record (Telethon's receiving included)",
                f"{fmt(median(w.cpu_us for w in emitter))} µs",
                "÷ bare Telethon client",
                median(w.cpu_us for w in emitter) / median(b.cpu_us for b in bare),
            )
        )
    return rows


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
        for name in ("p50", "p99"):
            ratio = median(getattr(a, name) / getattr(b, name) for a, b in zip(lossy, lossless, strict=True))
            rows.append(Row(NAME, f"{name} with {DROP_FRACTION:.0%} lost ÷ with none (same run)", f"{ratio:.2f}"))
    return rows


async def _window(ctx: Context, rate: int, seconds: float, *, drop: float = 0.0, hog: bool = False) -> _Window:
    async with RemoteFake("latency") as fake:
        settings = ctx.fresh_settings(batch_timeout_ms=BATCH_TIMEOUT_MS)
        client = await fake.client()
        source = TelegramSource(client, fake.groups, own_client=True, gateway=RequestGateway(paced=False))
        monitor = create_monitor(settings, source)
        stages = _Stages(client, monitor)
        task = asyncio.create_task(monitor.run())
        posted = round(rate * seconds)
        try:
            await wait_until(lambda: monitor.stats.published >= fake.messages or task.done(), within=60)
            if task.done():
                task.result()  # surfaces why the emitter stopped
            proc = await _probe(ctx, settings.kafka.topic, posted, seconds)
            batches = monitor.stats.batches
            await fake.call("drop", fraction=drop, seed=DROP_SEED)  # after the start: the history arrives whole
            async with _hog(hog) as hog_pid:
                pids = {"emitter": os.getpid(), "fake": fake.pid} | ({"hog": hog_pid} if hog_pid else {})
                sched = _Sched(pids)
                posting = await fake.post(posted, rate)
                out, _ = await asyncio.wait_for(proc.communicate(), seconds + 60)
                sched.stop()
            batches = monitor.stats.batches - batches
            counters = await fake.call("counters")
        finally:
            monitor.request_stop()
            await asyncio.wait_for(task, 60)
    stamps, probe_cpu = _parse(out)
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
        posting["inside"] / posting["seconds"],
        counters["dropped"],
        source.stats.live_gaps,
        source.stats.too_long,
        cpu=sched.shares(0) | {"probe": probe_cpu / sched.wall},
        waits=sched.shares(1),
        stages=stages.split(stamps),
        cpu_us=sched.cpu_seconds("emitter") / len(stamps) * 1e6,
    )


@dataclass(frozen=True, slots=True)
class _Bare:
    cpu_us: float
    """This process's CPU per update received, µs: Telethon's own receiving with nothing behind it."""
    p50: float
    p99: float
    seen: int


async def _bare_window(rate: int, seconds: float) -> _Bare:
    """A bare TelegramClient (production options, one Raw handler that only stamps) receiving the same posts."""
    async with RemoteFake("latency") as fake:
        client = await fake.client()
        delays: list[float] = []

        async def on_raw(update: Any) -> None:
            text = getattr(update.message, "message", None) or ""
            if text.startswith(STAMP_PREFIX):
                delays.append((time.monotonic_ns() - int(text[len(STAMP_PREFIX) :])) / 1e6)

        client.add_event_handler(on_raw, events.Raw(types.UpdateNewChannelMessage))
        await client.connect()
        try:
            await client.get_input_entity(fake.groups[0])
            posted = round(rate * seconds)
            cpu = time.process_time()
            await fake.post(posted, rate)
            with contextlib.suppress(TimeoutError):
                await wait_until(lambda: len(delays) >= posted, within=30)
            used = time.process_time() - cpu
        finally:
            await client.disconnect()
    cuts = statistics.quantiles(delays, n=100, method="inclusive")
    return _Bare(used / max(1, len(delays)) * 1e6, cuts[49], cuts[98], len(delays))


async def _probe(ctx: Context, topic: str, expected: int, seconds: float) -> asyncio.subprocess.Process:
    """Start the probe and wait until it reads from the end of the topic."""
    return await start_probe(ctx.bootstrap, topic, expected, seconds + 30)


def _sched(pid: int) -> tuple[float, float]:
    """Seconds a process has run on a CPU, and seconds it has waited on a run queue (/proc/PID/schedstat)."""
    with open(f"/proc/{pid}/schedstat", encoding="ascii") as f:
        ran, waited = f.read().split()[:2]
    return int(ran) / 1e9, int(waited) / 1e9


class _Sched:
    """CPU and run-queue wait of a set of processes over a stretch of wall time (1.0 = one core's worth)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.started = time.perf_counter()
        self.before = {name: _sched(pid) for name, pid in pids.items()}
        self.after: dict[str, tuple[float, float]] = {}
        self.wall = 0.0

    def stop(self) -> None:
        """Take the second reading (call it while every process still runs)."""
        self.after = {name: _sched(pid) for name, pid in self.pids.items()}
        self.wall = time.perf_counter() - self.started

    def cpu_seconds(self, name: str) -> float:
        """CPU seconds the named process ran between the readings."""
        return self.after[name][0] - self.before[name][0]

    def shares(self, kind: int) -> dict[str, float]:
        """CPU (kind 0) or run-queue wait (kind 1) per wall second of each process."""
        return {n: (self.after[n][kind] - self.before[n][kind]) / self.wall for n in self.after}


@contextlib.asynccontextmanager
async def _hog(on: bool) -> AsyncIterator[int | None]:
    """A busy loop in a process of its own while the block runs (one process: one core of the machine)."""
    if not on:
        yield None
        return
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "while True: pass")
    try:
        yield proc.pid
    finally:
        proc.kill()
        await proc.wait()


class _Stages:
    """Stamps each live record inside the emitter: Telethon's dispatch of its update, its commit's start and end."""

    def __init__(self, client: TelegramClient, monitor: Monitor) -> None:
        self.dispatched: dict[int, int] = {}
        self.commits: dict[int, tuple[int, int]] = {}
        # Raw, not NewMessage: a second NewMessage handler would build a second event per update, and the
        # stopwatch should cost the emitter as little as it can.
        client.add_event_handler(self._on_raw, events.Raw(types.UpdateNewChannelMessage))
        sink = monitor.sink
        commit = sink.commit

        async def timed(batch: Batch) -> None:
            started = time.monotonic_ns()
            await commit(batch)
            ended = time.monotonic_ns()
            for event in batch.events:
                if event.text.startswith(STAMP_PREFIX):
                    self.commits[int(event.text[len(STAMP_PREFIX) :])] = (started, ended)

        sink.commit = timed  # type: ignore[method-assign]  # the bench's stopwatch around the real commit

    async def _on_raw(self, update: Any) -> None:
        text = getattr(update.message, "message", None) or ""
        if text.startswith(STAMP_PREFIX):
            self.dispatched.setdefault(int(text[len(STAMP_PREFIX) :]), time.monotonic_ns())

    def split(self, stamps: list[tuple[int, int]]) -> dict[str, list[float]]:
        """Milliseconds per stage for each record seen that every stamp reached."""
        out: dict[str, list[float]] = {stage: [] for stage in STAGES}
        for sent, seen in stamps:
            dispatched, commit = self.dispatched.get(sent), self.commits.get(sent)
            if dispatched is None or commit is None:
                continue
            edges = (sent, dispatched, commit[0], commit[1], seen)
            for stage, a, b in zip(STAGES, edges[:-1], edges[1:], strict=True):
                out[stage].append((b - a) / 1e6)
        return out


def _parse(out: bytes) -> tuple[list[tuple[int, int]], float]:
    lines = out.decode().strip().splitlines()
    if not lines:
        raise RuntimeError("the probe printed nothing")
    result = json.loads(lines[-1])
    return [(int(sent), int(seen)) for sent, seen in result["stamps"]], float(result["cpu"])
