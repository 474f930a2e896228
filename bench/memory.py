"""Scenario 3: memory over a 1,000,000-message backfill: peak RSS and whether it stays flat.

Each measurement runs in a fresh child process (``python -m bench.memory KIND N BOOTSTRAP``), so the bench's
own heap and earlier scenarios do not count. Two sources:

- demo: `DemoSource` generates the history lazily, so the process holds nothing but the emitter (monitor,
  tracker, batcher, KafkaSink, aiokafka). This is the figure the 200 MB target is about.
- telegram: the real path (fake Telegram → Telethon → mapping). The fake keeps every TL message in memory,
  so its world is built first, measured as the baseline, and the emitter's growth above it is reported.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Final

from bench.common import DEFAULT_SIZES, MIB, Context, RssSampler, build_world, log, peak_rss_bytes, rss_bytes, run
from bench.report import Row, fmt, verdict
from emitter.app import create_monitor
from emitter.demo_source import DemoSource
from emitter.protocols import Batch
from emitter.telegram_client import client_options
from emitter.telegram_gateway import RequestGateway
from emitter.telegram_source import TelegramSource

NAME = "3 memory"
TARGET_PEAK_MB: Final = 200.0
FLAT_FLOOR_MB: Final = 16.0
FLAT_SHARE: Final = 0.10
MARKS: Final = (25, 50, 75)
EDITS_HISTORY: Final = 200_000
EDITS_PER_SECOND: Final = 200.0
CHART_LIMIT_MB: Final = 512.0
"""The chart's default memory limit (helm/telegram-emitter/values.yaml)."""


@dataclass(slots=True)
class _Measured:
    kind: str
    messages: int
    records: int
    seconds: float
    imported: float
    baseline: float
    peak: float
    hwm: float
    marks: dict[int, float]
    topics: list[str]
    edits: int = 0
    """Live edits made while the backfill ran (kind "edits")."""
    edits_lost: int = 0
    """Edited messages whose last published record is not their last version."""

    @property
    def growth(self) -> float:
        """Peak RSS above the baseline, MB."""
        return self.peak - self.baseline

    @property
    def drift(self) -> float:
        """RSS growth from the 25 % mark to the highest later mark, MB."""
        return max(self.marks[q] for q in (50, 75, 100)) - self.marks[25]

    @property
    def flat(self) -> bool:
        """Flat: the drift is within 16 MB or 10 % of the emitter's own memory at 25 %, whichever is larger."""
        return self.drift <= max(FLAT_FLOOR_MB, FLAT_SHARE * (self.marks[25] - self.baseline))


def scenario(ctx: Context) -> list[Row]:
    """One child per source (peak RSS is not timing noise: one run each, whatever --runs says)."""
    demo = _spawn(ctx, "demo", ctx.sizes.memory)
    telegram = _spawn(ctx, "telegram", ctx.sizes.memory_telegram)
    edits = _spawn(ctx, "edits", min(EDITS_HISTORY, ctx.sizes.memory_telegram))
    ctx.note(
        NAME,
        "Each source in a fresh child process; RSS sampled every 0.5 s on a thread (psutil, else /proc VmRSS), "
        "plus the RSS when the committed cursor passes 25/50/75 % of the history and after the last commit. "
        f"Flat = growth from the 25 % mark to any later mark ≤ max({FLAT_FLOOR_MB:.0f} MB, "
        f"{FLAT_SHARE:.0%} of the emitter's own RSS at 25 %). MB = MiB. One run each.",
    )
    ctx.note(
        NAME,
        f"demo: `DemoSource(history={demo.messages:,}, limit={demo.messages:,})` (every 7th message brings an "
        f"edit, every 13th a delete: {demo.records:,} records) → KafkaSink; baseline = RSS after imports. It "
        "measures the emitter alone, since the source holds nothing.",
    )
    ctx.note(
        NAME,
        f"telegram: the real path over a fake Telegram of {telegram.messages:,} messages. Building that world "
        f"costs {telegram.baseline - telegram.imported:,.0f} MB (the fake keeps every TL message); the baseline is "
        "the RSS after building it and a full GC, and the figure is the emitter's growth above it (it includes "
        "the fake's transient serialisation buffers; the fake's request logs are cleared at each commit).",
    )
    ctx.note(
        NAME,
        f"edits: the real path following (not one-shot) a {edits.messages:,}-message supergroup while "
        f"{EDITS_PER_SECOND:.0f} live edits a second of random messages arrive during the backfill ({edits.edits:,} "
        "edits); lost = edited messages whose last record a read_committed consumer sees is not their last "
        "version. The fake world's own memory is the baseline; the emitter's growth above it is compared with the "
        "chart's 512 MiB limit.",
    )
    rows = [
        Row(
            NAME,
            f"backfill of {edits.messages:,} with live edits: peak RSS growth above the fake world",
            f"{fmt(edits.growth)} MB (baseline with the world: {fmt(edits.baseline)} MB)",
            f"≤ {CHART_LIMIT_MB:.0f} MB",
            edits.growth / CHART_LIMIT_MB,
            verdict(edits.growth <= CHART_LIMIT_MB),
        ),
        Row(
            NAME,
            f"backfill of {edits.messages:,} with live edits: edits lost of {edits.edits:,}",
            f"{edits.edits_lost} lost",
            "0",
            None,
            verdict(edits.edits_lost == 0 and edits.edits > 0),
        ),
    ]
    for m in (demo, telegram):
        what = "emitter alone (DemoSource)" if m.kind == "demo" else "real path above the fake world's baseline"
        marks = "/".join(f"{m.marks[q] - m.baseline:.0f}" for q in (25, 50, 75, 100))
        rows += [
            Row(
                NAME,
                f"{what}: peak RSS{' growth' if m.kind == 'telegram' else ''}, {m.messages:,} msgs",
                f"{fmt(m.peak if m.kind == 'demo' else m.growth)} MB"
                + (f" (baseline with the world: {fmt(m.baseline)} MB)" if m.kind == "telegram" else ""),
                f"≤ {TARGET_PEAK_MB:.0f} MB",
                (m.peak if m.kind == "demo" else m.growth) / TARGET_PEAK_MB,
                verdict((m.peak if m.kind == "demo" else m.growth) <= TARGET_PEAK_MB),
            ),
            Row(
                NAME,
                f"{m.kind}: drift 25 %→end (above baseline at 25/50/75/100 %: {marks} MB)",
                f"{fmt(m.drift, 1)} MB",
                "flat",
                None,
                verdict(m.flat),
            ),
        ]
    return rows


def _spawn(ctx: Context, kind: str, messages: int) -> _Measured:
    log(f"memory: {kind} source, {messages:,} messages, in a child process")
    out = subprocess.run(  # noqa: S603 - this interpreter running our own module
        [sys.executable, "-m", "bench.memory", kind, str(messages), ctx.bootstrap],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory child ({kind}) failed: {out.stderr[-800:]}")
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    ctx.topics += doc["topics"]
    doc["marks"] = {int(k): v for k, v in doc["marks"].items()}
    return _Measured(**doc)


# --- the child ------------------------------------------------------------------------------------------------


def child(kind: str, messages: int, bootstrap: str) -> dict[str, Any]:
    """Measure one backfill in this process; returns what `_Measured` holds."""
    gc.collect()
    imported = rss_bytes() / MIB
    fake = None
    if kind == "edits":
        return _with_edits(messages, bootstrap, imported)
    if kind == "telegram":
        fake, groups = build_world(1, messages, prefix="mem")
        last_id = fake.message_ids(groups[0])[-1]
    else:
        last_id = messages
    gc.collect()
    baseline = rss_bytes() / MIB
    ctx = Context(bootstrap, 1, DEFAULT_SIZES)
    settings = ctx.fresh_settings()
    marks: dict[int, float] = {}

    def committed(batch: Batch) -> None:
        if fake is not None:  # the fake's request logs grow with every request: not the emitter's memory
            fake.history_calls.clear()
            fake.request_log.clear()
            fake.response_log.clear()
        done = max((c.cursor for c in batch.cursors.values()), default=0)
        for q in MARKS:
            if q not in marks and done >= last_id * q / 100:
                marks[q] = rss_bytes() / MIB

    if fake is not None:
        source: Any = TelegramSource(
            fake.client(**client_options()),
            groups,
            follow=False,
            own_client=True,
            gateway=RequestGateway(paced=False),
        )
    else:
        source = DemoSource(1, history=messages, rate=1.0, limit=messages)
    monitor = create_monitor(settings, source)
    monitor.on_commit = committed
    started = time.perf_counter()
    with RssSampler(0.5) as sampler:
        stats = run(monitor.run())
        marks[100] = rss_bytes() / MIB
    for q in MARKS:  # a tiny run may cross several marks in one commit
        marks.setdefault(q, marks[100])
    return {
        "kind": kind,
        "messages": messages,
        "records": stats.published,
        "seconds": time.perf_counter() - started,
        "imported": imported,
        "baseline": baseline,
        "peak": sampler.peak / MIB,
        "hwm": peak_rss_bytes() / MIB,
        "marks": marks,
        "topics": ctx.topics,
    }


def _with_edits(messages: int, bootstrap: str, imported: float) -> dict[str, Any]:
    """A following emitter backfilling `messages` while live edits flow; which edits' last version arrived."""
    import asyncio  # noqa: PLC0415 - the child only
    import random  # noqa: PLC0415

    from tests.faketelegram import wait_until  # noqa: PLC0415
    from tests.integration.kafka_read import read_committed  # noqa: PLC0415

    fake, groups = build_world(1, messages, prefix="edits")
    channel = groups[0].lstrip("@")
    ids = fake.message_ids(channel)
    gc.collect()
    baseline = rss_bytes() / MIB
    ctx = Context(bootstrap, 1, DEFAULT_SIZES)
    settings = ctx.fresh_settings()
    source = TelegramSource(
        fake.client(**client_options()), groups, own_client=True, gateway=RequestGateway(paced=False)
    )
    monitor = create_monitor(settings, source)
    monitor.on_commit = lambda _batch: (fake.history_calls.clear(), fake.request_log.clear(), fake.response_log.clear())
    last: dict[int, str] = {}
    rng = random.Random(7)

    async def go() -> None:
        task = asyncio.create_task(monitor.run())
        gid = fake.peer_id(channel)
        await wait_until(lambda: gid in source.live.followed and source.live.followed[gid].pts is not None, within=60)
        n = 0
        while monitor.tracker.cursor(gid).cursor < ids[-1]:  # edits for as long as the backfill runs
            msg_id = ids[rng.randrange(len(ids))]
            text = f"edit {n}"
            fake.edit(channel, msg_id, text)
            last[msg_id] = text
            n += 1
            await asyncio.sleep(1 / EDITS_PER_SECOND)

        def settled() -> bool:
            state = source.live.followed[gid]
            return not state.queue and not state.catch_up and len(monitor._batcher) == 0

        await wait_until(settled, within=120, interval=0.2)
        monitor.request_stop()
        await task

    started = time.perf_counter()
    with RssSampler(0.5) as sampler:
        asyncio.run(go())
    seconds = time.perf_counter() - started
    final: dict[int, str] = {}
    for _, record in asyncio.run(read_committed(bootstrap, settings.kafka.topic)):
        if record["message_id"] in last:
            final[record["message_id"]] = record["text"]
    lost = sum(1 for msg_id, text in last.items() if final.get(msg_id) != text)
    return {
        "kind": "edits",
        "messages": messages,
        "records": monitor.stats.published,
        "seconds": seconds,
        "imported": imported,
        "baseline": baseline,
        "peak": sampler.peak / MIB,
        "hwm": peak_rss_bytes() / MIB,
        "marks": dict.fromkeys((*MARKS, 100), baseline),
        "topics": ctx.topics,
        "edits": len(last),
        "edits_lost": lost,
    }


if __name__ == "__main__":
    _kind, _n, _bootstrap = sys.argv[1:]
    print(json.dumps(child(_kind, int(_n), _bootstrap)), flush=True)
