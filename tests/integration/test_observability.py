"""Metrics, probes and secrets, against the real broker and the in-process Telegram."""

from __future__ import annotations

import asyncio
import logging
import urllib.error
import urllib.request
from collections import Counter

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from emitter.app import probe_routes
from emitter.demo_source import DemoSource
from emitter.http_server import HttpServer
from emitter.kafka_sink import KafkaSink
from emitter.metrics import Metrics
from emitter.monitor import Monitor
from emitter.settings import Settings, load_settings
from emitter.telegram_source import TelegramSource
from tests.faketelegram import FakeTelegram
from tests.integration.kafka_read import read_committed
from tests.integration.telegram_harness import wait_for_ids


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def test_metrics_count_exactly_what_was_published(settings: Settings, kafka: str) -> None:
    """/metrics, parsed with prometheus-client's parser, counts per group, type and source what Kafka holds."""
    monitor = Monitor(DemoSource(2, history=300, rate=1000, limit=330), KafkaSink(settings.kafka, "m"), batch_size=64)
    async with HttpServer(probe_routes(monitor)) as server:
        status, _ = await asyncio.to_thread(_get, server.port, "/readyz")
        assert status == 503, "not ready before the cursors are restored"
        await monitor.run()
        status, body = await asyncio.to_thread(_get, server.port, "/metrics")
        assert status == 200
        ready, readiness = await asyncio.to_thread(_get, server.port, "/readyz")
        health, _ = await asyncio.to_thread(_get, server.port, "/healthz")
    assert (ready, health) == (200, 200), readiness
    scraped: Counter[tuple[str, str, str]] = Counter()
    for family in text_string_to_metric_families(body):
        if family.name == "emitter_messages_published":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    labels = sample.labels
                    scraped[(labels["group"], labels["event_type"], labels["source"])] += int(sample.value)
    records = await read_committed(kafka, settings.kafka.topic)
    in_kafka = Counter((str(r["group"]["id"]), r["event_type"], r["source"]) for _, r in records)
    assert scraped == in_kafka
    assert sum(in_kafka.values()) == monitor.stats.published > 600


async def test_known_secrets_never_leak(
    settings: Settings, kafka: str, names: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A backfill and follow with known secrets: none in logs, metrics, span attributes or repr() of config."""
    api_hash = "feedfacecafebeef0123456789abcdef"
    sasl_password = "s3cret-sasl-password-value"  # noqa: S105 - a known secret the test hunts for
    fake = FakeTelegram()
    session = fake.new_session().save()
    config = load_settings(
        None,
        {
            "telegram": {"api_id": 777, "api_hash": api_hash, "session": session, "groups": ["@leaky"]},
            "kafka": {**settings.kafka.model_dump(exclude={"sasl_password"}), "sasl_password": sasl_password},
            "emitter": {"instance": names["instance"]},
        },
    )
    group = fake.add_channel("Leaky", username="leaky", megagroup=True)
    fake.post_many(group, 120)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with fake.patch_telethon():
        source = TelegramSource.from_settings(config.telegram, tracer=tracer)
    metrics = Metrics()
    metrics.bind_source(source.stats)
    monitor = Monitor(source, KafkaSink(config.kafka, names["instance"], tracer=tracer), metrics=metrics)
    with caplog.at_level(logging.DEBUG):
        task = asyncio.create_task(monitor.run())
        await wait_for_ids(settings, fake.peer_id(group), 121)
        for i in range(20):
            fake.post(group, f"live {i}")
        await wait_for_ids(settings, fake.peer_id(group), 141)
        monitor.request_stop()
        await task
    spans = exporter.get_finished_spans()
    assert any(s.name == f"send {settings.kafka.topic}" for s in spans)
    assert any(s.name == "telegram history page" for s in spans)
    haystacks = {
        "logs": "\n".join(f"{r.getMessage()} {r.args!r} {vars(r)!r}" for r in caplog.records),
        "metrics": metrics.render().decode(),
        "spans": "\n".join(f"{s.name} {dict(s.attributes or {})!r} {s.events!r}" for s in spans),
        "repr": " ".join(repr(x) + str(x) for x in (config, config.telegram, config.kafka, source, monitor.sink)),
    }
    for where, text in haystacks.items():
        assert text, where
        for secret in (api_hash, sasl_password, session):
            assert secret not in text, f"a secret leaked into {where}"
