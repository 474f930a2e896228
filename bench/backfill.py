"""Scenario 1: backfill throughput end to end, beside the ceilings of a Python client and of the broker.

Per run, in this order and on the same machine state: the emitter (fake Telegram → Telethon → mapping → Avro →
monitor → transactional KafkaSink → broker); raw aiokafka sending the very values the emitter wrote, in
transactions of the very sizes it committed; Kafka's ProducerPerformance with records of the same mean size;
the emitter again with an SDK tracer; and the emitter on three channels. Ratios are taken within a run.
"""

from __future__ import annotations

import asyncio
import gc
import re
import subprocess
from dataclasses import dataclass

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bench.common import MB, Context, create_topic, delete_topics, log, median, run
from bench.common import telegram_backfill as backfill
from bench.raw_kafka import read_back_with_ceilings
from bench.remote_fake import RemoteFake, aes_backend
from bench.report import Row, fmt, kafka_classpath, verdict

NAME = "1 backfill"
TARGET_RATE = 25_000
TARGET_RATIO = 0.5
_PERF_LINE = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\)")


@dataclass(slots=True)
class _Run:
    """One run's figures (records/s and MB/s of values)."""

    emitter: float
    emitter_mbps: float
    cpu_share: float
    cpu_us: float
    """Process CPU per record, µs: on a CPU-bound loop this, not wall time, is what code changes move."""
    fake_cpu_us: float
    """The fake Telegram's CPU per record, µs (its own process): building, serialising, encrypting pages."""
    raw: float
    raw_mbps: float
    batched: float
    raw_cpu_us: float
    batched_cpu_us: float
    perf: float
    perf_mbps: float
    traced: float
    spans: int
    three: float
    record_size: float


def scenario(ctx: Context) -> list[Row]:
    """Run the backfill comparison `ctx.runs` times and report medians."""
    n, k = ctx.sizes.backfill, ctx.sizes.channels
    runs = run(_runs(ctx, n, k))
    gc.collect()
    _notes(ctx, runs, n, k)
    return _rows(runs, n, k)


async def _runs(ctx: Context, n: int, k: int) -> list[_Run]:
    """The runs, in one loop: the two fake Telegrams (child processes) serve every run."""
    log(f"backfill: building the fake worlds in their own processes ({n:,} messages in 1 channel, and in {k})")
    classpath = kafka_classpath()
    async with (
        RemoteFake("backfill", "1", str(n), "bench") as one,
        RemoteFake("backfill", str(k), str(n), "multi") as many,
    ):
        runs: list[_Run] = []
        for i in range(ctx.runs):
            log(f"backfill: run {i + 1}/{ctx.runs}")
            runs.append(await _one_run(ctx, one=one, many=many, cp=classpath))
        return runs


async def _one_run(ctx: Context, *, one: RemoteFake, many: RemoteFake, cp: str) -> _Run:
    settings = ctx.fresh_settings()
    before = await one.call("counters")
    result = await backfill(await one.client(), one.groups, settings)
    fake_cpu = (await one.call("counters"))["cpu"] - before["cpu"]
    raw = await read_back_with_ceilings(ctx, settings.kafka.topic, result.records, result.batch_sizes)
    total_bytes = raw.total_bytes
    size = total_bytes / result.records
    perf, perf_mbps = await _producer_performance(ctx, cp, result.records, round(size), settings.kafka.partitions)
    traced, spans = await _traced(ctx, one)
    three = await backfill(await many.client(), many.groups, ctx.fresh_settings())
    await delete_topics(ctx.bootstrap, ctx.topics)
    ctx.topics.clear()
    return _Run(
        emitter=result.rate,
        emitter_mbps=total_bytes / result.seconds / MB,
        cpu_share=result.cpu_seconds / result.seconds,
        cpu_us=result.cpu_seconds / result.records * 1e6,
        fake_cpu_us=fake_cpu / result.records * 1e6,
        raw_cpu_us=raw.send_cpu / result.records * 1e6,
        batched_cpu_us=raw.batched_cpu / result.records * 1e6,
        raw=result.records / raw.send_seconds,
        raw_mbps=total_bytes / raw.send_seconds / MB,
        batched=result.records / raw.batched_seconds,
        perf=perf,
        perf_mbps=perf_mbps,
        traced=traced,
        spans=spans,
        three=three.rate,
        record_size=size,
    )


async def _producer_performance(
    ctx: Context, classpath: str, n: int, size: int, partitions: int
) -> tuple[float, float]:
    """Kafka's own ProducerPerformance (acks=all, no throttle) on a fresh topic: records/s and MB/s."""
    topic = ctx.fresh_topic()
    await create_topic(ctx.bootstrap, topic, partitions)
    cmd = [
        "java", "-Xmx512m", "-cp", classpath, "org.apache.kafka.tools.ProducerPerformance",
        "--topic", topic, "--num-records", str(n), "--record-size", str(size), "--throughput", "-1",
        "--producer-props", f"bootstrap.servers={ctx.bootstrap}", "acks=all",
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 600)
    found = [m for m in _PERF_LINE.finditer(out.decode()) if int(m.group(1)) == n]
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"ProducerPerformance failed ({proc.returncode}): {err.decode()[-500:]}")
    last = found[-1]
    return float(last.group(2)), float(last.group(3))


async def _traced(ctx: Context, fake: RemoteFake) -> tuple[float, int]:
    """Records/s with a real SDK tracer (BatchSpanProcessor into memory) on the source and the sink."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    try:
        tracer = provider.get_tracer("bench")
        result = await backfill(await fake.client(), fake.groups, ctx.fresh_settings(), tracer=tracer)
    finally:
        await asyncio.to_thread(provider.shutdown)  # flushes: every span is counted
    return result.rate, len(exporter.get_finished_spans())


def _rows(runs: list[_Run], n: int, k: int) -> list[Row]:
    def m(attr: str) -> float:
        return median(getattr(r, attr) for r in runs)

    emitter, raw, perf = m("emitter"), m("raw"), m("perf")
    ratio_raw = median(r.emitter / r.raw for r in runs)
    ratio_perf = median(r.emitter / r.perf for r in runs)
    ratio_traced = median(r.traced / r.emitter for r in runs)
    ratio_three = median(r.three / r.emitter for r in runs)
    return [
        Row(
            NAME,
            f"emitter end to end, 1 channel x {n:,} msgs",
            f"{fmt(emitter)} rec/s, {fmt(m('emitter_mbps'), 2)} MB/s, {fmt(m('cpu_us'))} µs CPU/rec",
            f"≥ {TARGET_RATE:,} rec/s",
            emitter / TARGET_RATE,
            verdict(emitter >= TARGET_RATE),
        ),
        Row(
            NAME,
            "raw aiokafka, same values and transactions",
            f"{fmt(raw)} rec/s, {fmt(m('raw_mbps'), 2)} MB/s, {fmt(m('raw_cpu_us'))} µs CPU/rec",
        ),
        Row(
            NAME,
            "raw aiokafka with create_batch/send_batch (same values, txns)",
            f"{fmt(m('batched'))} rec/s, {fmt(m('batched_cpu_us'))} µs CPU/rec",
            "÷ raw aiokafka send(), CPU/rec",
            median(r.batched_cpu_us / r.raw_cpu_us for r in runs),
        ),
        Row(
            NAME,
            "emitter ÷ raw aiokafka (same run)",
            f"{ratio_raw:.2f}",
            f"≥ {TARGET_RATIO}",
            None,  # the value is the ratio already
            verdict(ratio_raw >= TARGET_RATIO),
        ),
        Row(
            NAME,
            f"Kafka ProducerPerformance, {m('record_size'):.0f} B records",
            f"{fmt(perf)} rec/s, {fmt(m('perf_mbps'), 2)} MB/s",
            "emitter ÷ broker ceiling",
            ratio_perf,
        ),
        Row(
            NAME, f"emitter, {k} channels x {-(-n // k):,} msgs", f"{fmt(m('three'))} rec/s", "÷ 1 channel", ratio_three
        ),
        Row(
            NAME,
            "emitter with SDK tracing (BatchSpanProcessor)",
            f"{fmt(m('traced'))} rec/s",
            "÷ no-op tracer",
            ratio_traced,
        ),
        Row(NAME, "emitter process CPU ÷ wall time (1.00 = CPU-bound)", f"{m('cpu_share'):.2f}"),
        Row(
            NAME,
            "fake Telegram's own CPU per record (its own process, not in the emitter's figure)",
            f"{fmt(m('fake_cpu_us'))} µs",
            "÷ emitter CPU/rec",
            median(r.fake_cpu_us / r.cpu_us for r in runs),
        ),
    ]


def _notes(ctx: Context, runs: list[_Run], n: int, k: int) -> None:
    ctx.note(
        NAME,
        f"Fake Telegram with {n:,} messages in one supergroup (texts of 3 to 40 words, about 130 characters) in a "
        "process of its own (`python -m bench.remote_fake backfill 1 N bench`), served over MTProto 2.0 on TCP to "
        f"the emitter's real TelegramClient with production options (Telethon's AES backend: {aes_backend()}); "
        "the emitter's own getHistory walk (`emitter.telegram_history`, one page asked ahead); "
        "TelegramSource(follow=False) → Monitor built by "
        "`emitter.app.create_monitor` (production batch size, timeout, in-flight bound) → KafkaSink → the local "
        "broker, fresh uuid topics (3 partitions) per measurement.",
    )
    ctx.note(
        NAME,
        "Timed from `Monitor.run()` (sink start and topic creation, producer init, cursor restore, Telegram "
        "connect) to the end of the last commit; the fake world is built before. The fake Telegram's own work "
        "(building, serialising and encrypting answers) runs in its own process: the emitter's CPU per record "
        "excludes it, and its own CPU per record is a row of its own. The profile (6) still runs the fake in process.",
    )
    ctx.note(
        NAME,
        "Raw aiokafka: the sink's own producer (`KafkaSink.start`, so identical settings) sends the values the "
        "emitter wrote (read back after the run), with the same keys and content-type header, in transactions "
        "of exactly the sizes the emitter committed. It does not write the one cursor record per transaction "
        "that the emitter adds. The batch-API variant groups each transaction's records by partition (partition "
        "computed once per key, as the default partitioner would) into `create_batch()` builders sent with "
        "`send_batch()`: one future per batch instead of per record.",
    )
    ctx.note(
        NAME,
        "Kafka ProducerPerformance (kafka-tools, same jars as the broker): `--num-records N --record-size S "
        "--throughput -1 --producer-props acks=all`, S = the mean value size the emitter wrote; its last summary "
        "line (JVM start excluded). Not transactional, random payloads, Java client: the broker's ceiling here.",
    )
    ctx.note(
        NAME,
        f"Tracing: an SDK `TracerProvider` with a `BatchSpanProcessor` into an in-memory exporter, passed as "
        f"`tracer=` to TelegramSource and KafkaSink (median {median(r.spans for r in runs):,.0f} spans per run); "
        f"the same backfill with the default no-op tracer is the baseline.",
    )
    ctx.note(NAME, f"{k} channels: the same {n:,} messages split evenly, one feeder per channel.")
