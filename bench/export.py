"""Scenario 10: backfill from a Telegram Desktop export, end to end, beside raw aiokafka on the same values.

A generated export of one supergroup (`tests.exports.write_large_export`: texts of 3 to 40 words, rich text
with entities, media, polls, replies, forwards, edits, service messages) is read by `ExportSource` and
published through a monitor from `emitter.app.create_monitor` (production settings) into a KafkaSink and the
local broker, fresh topics per run. The file is generated once and cached under
`$EMITTER_CACHE/bench/` by its parameters, so a warm run reads it without building it again.

Per run, on the same machine state: the emitter, then a bare transactional producer sending the very values
the emitter wrote, in transactions of the very sizes it committed, with `send()` and with `send_batch()`.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.common import (
    MB,
    MIB,
    Context,
    RssSampler,
    log,
    median,
    message_text,
    rss_bytes,
    run,
    timed_backfill,
)
from bench.raw_kafka import read_back_with_ceilings
from bench.report import Row, fmt, verdict
from emitter.export_source import ExportSource
from tests.exports import write_large_export

NAME = "10 export backfill"
TARGET_RATE: Final = 60_000
CHAT_ID: Final = 1_234_567
SEED: Final = 17
GENERATOR: Final = 1
"""Bumped whenever `write_large_export` writes different files: it is part of the cache key."""
CACHE: Final = Path(os.environ.get("EMITTER_CACHE", Path.home() / ".cache" / "telegram-emitter")) / "bench"


class _TimedExport(ExportSource):
    """`ExportSource` as `emitter.app.create_source` builds it, noting how long the file load took."""

    load_seconds = float("nan")
    load_cpu = float("nan")

    async def start(self) -> None:
        started, cpu = time.perf_counter(), time.process_time()
        await super().start()
        self.load_seconds, self.load_cpu = time.perf_counter() - started, time.process_time() - cpu


@dataclass(slots=True)
class _Run:
    records: int
    rate: float
    mbps: float
    cpu_us: float
    cpu_share: float
    load_seconds: float
    load_cpu_us: float
    """Process CPU of the file load per record, µs (reading, scanning and indexing the file)."""
    peak_rss: int
    raw: float
    raw_cpu_us: float
    batched: float
    batched_cpu_us: float
    transactions: int


def export_file(n: int) -> tuple[Path, float]:
    """The cached export of `n` messages, generated first if missing; and the seconds generating took (0 if not)."""
    path = CACHE / f"export-g{GENERATOR}-n{n}-s{SEED}" / "result.json"
    if path.exists():
        return path, 0.0
    log(f"export: generating an export of {n:,} messages into {path.parent}")
    started = time.perf_counter()
    write_large_export(path, chat_id=CHAT_ID, n_messages=n, seed=SEED, text=message_text)
    return path, time.perf_counter() - started


def scenario(ctx: Context) -> list[Row]:
    """Run the export backfill `ctx.runs` times and report medians."""
    n = ctx.sizes.export
    path, generated = export_file(n)
    runs: list[_Run] = []
    for i in range(ctx.runs):
        log(f"export: run {i + 1}/{ctx.runs} ({n:,} messages, {path.stat().st_size / MB:,.0f} MB)")
        gc.collect()
        runs.append(run(_one_run(ctx, path)))
    _notes(ctx, runs, n, path, generated)
    return _rows(runs, n)


async def _one_run(ctx: Context, path: Path) -> _Run:
    settings = ctx.fresh_settings()
    source = _TimedExport(path)
    base = rss_bytes()
    with RssSampler(0.2) as rss:
        result = await timed_backfill(source, settings)
    raw = await read_back_with_ceilings(ctx, settings.kafka.topic, result.records, result.batch_sizes)
    total_bytes = raw.total_bytes
    return _Run(
        records=result.records,
        rate=result.rate,
        mbps=total_bytes / result.seconds / MB,
        cpu_us=result.cpu_seconds / result.records * 1e6,
        cpu_share=result.cpu_seconds / result.seconds,
        load_seconds=source.load_seconds,
        load_cpu_us=source.load_cpu / result.records * 1e6,
        peak_rss=rss.peak - base,
        raw=result.records / raw.send_seconds,
        raw_cpu_us=raw.send_cpu / result.records * 1e6,
        batched=result.records / raw.batched_seconds,
        batched_cpu_us=raw.batched_cpu / result.records * 1e6,
        transactions=len(result.batch_sizes),
    )


def _rows(runs: list[_Run], n: int) -> list[Row]:
    def m(attr: str) -> float:
        return median(getattr(r, attr) for r in runs)

    rate = m("rate")
    return [
        Row(
            NAME,
            f"emitter end to end, export of 1 supergroup x {n:,} msgs",
            f"{fmt(rate)} rec/s, {fmt(m('mbps'), 2)} MB/s, {fmt(m('cpu_us'), 1)} µs CPU/rec",
            f"≥ {TARGET_RATE:,} rec/s",
            rate / TARGET_RATE,
            verdict(rate >= TARGET_RATE),
        ),
        Row(
            NAME,
            "of which the file load (read, scan, index), wall / CPU per record",
            f"{m('load_seconds'):.2f} s / {fmt(m('load_cpu_us'), 1)} µs CPU/rec",
            "÷ the whole run's wall time",
            median(r.load_seconds * r.rate / r.records for r in runs),
        ),
        Row(
            NAME,
            "raw aiokafka send(), same values and transactions",
            f"{fmt(m('raw'))} rec/s, {fmt(m('raw_cpu_us'), 1)} µs CPU/rec",
            "emitter CPU/rec ÷ raw",
            median(r.cpu_us / r.raw_cpu_us for r in runs),
        ),
        Row(
            NAME,
            "raw aiokafka create_batch/send_batch, same values and transactions",
            f"{fmt(m('batched'))} rec/s, {fmt(m('batched_cpu_us'), 1)} µs CPU/rec",
            "emitter CPU/rec ÷ raw",
            median(r.cpu_us / r.batched_cpu_us for r in runs),
        ),
        Row(
            NAME,
            "emitter ÷ raw aiokafka send_batch() (same run)",
            f"{median(r.rate / r.batched for r in runs):.2f}",
        ),
        Row(NAME, "emitter process CPU ÷ wall time (1.00 = CPU-bound)", f"{m('cpu_share'):.2f}"),
        Row(NAME, "emitter peak RSS growth during the run", f"{m('peak_rss') / MIB:,.0f} MB"),
    ]


def _notes(ctx: Context, runs: list[_Run], n: int, path: Path, generated: float) -> None:
    size = path.stat().st_size / MB
    built = f"generated in {generated:.0f} s by this run" if generated else "generated by an earlier run"
    ctx.note(
        NAME,
        f"A Telegram Desktop export of one public supergroup, {n:,} messages, {size:,.0f} MB of indented JSON "
        f"(`tests.exports.write_large_export`, seed {SEED}: texts of 3 to 40 words as in scenario 1, 30% rich "
        "text with entities, a quarter with media or polls, replies, forwards, edits, 8% service messages), "
        f"cached as `{path.relative_to(CACHE.parent)}` under $EMITTER_CACHE ({built}).",
    )
    ctx.note(
        NAME,
        "ExportSource (as `emitter.app.create_source` builds it) → Monitor built by `emitter.app.create_monitor` "
        "(production batch size, timeout, in-flight bound) → KafkaSink → the local broker, fresh uuid topics "
        "(3 partitions; one group, so one key and one partition) per run. Timed from `Monitor.run()` (sink start "
        "and topic creation, producer init, cursor restore, the file load in the source's start) to the end of "
        f"the last commit. The file load took {median(r.load_seconds for r in runs):.2f} s of it (median; "
        f"{', '.join(f'{r.load_seconds:.2f}' for r in runs)} s per run); "
        f"{median(r.transactions for r in runs):,.0f} transactions per run.",
    )
    ctx.note(
        NAME,
        "Raw aiokafka: scenario 1's code (`bench.raw_kafka`), on the values this run's emitter wrote, read back "
        "after the timed part: the sink's own producer, same keys and content-type header, transactions of the "
        "sizes the emitter committed, without the cursor record per transaction the emitter adds; once with "
        "one `send()` per record, once with per-partition `create_batch()`/`send_batch()`. CPU per record is "
        "this process's CPU time (all threads) over the records.",
    )
