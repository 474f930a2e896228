"""Traces in a real Jaeger: the emitter's spans, and a consumer span continued from a record's traceparent."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from emitter.kafka_sink import KafkaSink
from emitter.monitor import Monitor
from emitter.settings import Settings
from emitter.telegram_source import TelegramSource
from emitter.tracing import continue_trace
from tests.faketelegram import FakeTelegram
from tests.integration.jaeger import OTLP_HTTP, ensure_jaeger, wait_for_spans


async def test_spans_land_in_jaeger_and_a_consumer_continues_the_trace(settings: Settings, kafka: str) -> None:
    """Page and transaction spans reach Jaeger with their attributes; the consumer's span joins the trace."""
    await asyncio.to_thread(ensure_jaeger)
    service = f"emitter-test-{uuid.uuid4().hex[:8]}"
    since = datetime.now(UTC) - timedelta(minutes=1)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{OTLP_HTTP}/v1/traces")))
    tracer = provider.get_tracer("emitter")

    fake = FakeTelegram()
    group = fake.add_channel("Traced", username="traced")
    fake.post_many(group, 249)
    source = TelegramSource(fake.client(), ["@traced"], follow=False, own_client=True, tracer=tracer)
    sink = KafkaSink(settings.kafka, settings.emitter.instance, tracer=tracer)
    await Monitor(source, sink, batch_size=1000).run()

    consumer = AIOKafkaConsumer(
        settings.kafka.topic, bootstrap_servers=kafka, isolation_level="read_committed", auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    assert any(k == "traceparent" for k, _ in record.headers)
    with continue_trace(record, tracer_=tracer) as consumer_span:
        consumer_trace = f"{consumer_span.get_span_context().trace_id:032x}"
    provider.force_flush()
    provider.shutdown()

    def complete(spans: list[dict[str, Any]]) -> bool:
        names = {s["name"] for s in spans}
        return {f"send {settings.kafka.topic}", "telegram history page", f"process {settings.kafka.topic}"} <= names

    spans = await asyncio.to_thread(wait_for_spans, service, since, complete, within=60.0)
    sends = [s for s in spans if s["name"] == f"send {settings.kafka.topic}"]
    pages = [s for s in spans if s["name"] == "telegram history page"]
    (process,) = [s for s in spans if s["name"] == f"process {settings.kafka.topic}"]
    assert len(pages) == 3  # 250 messages (the channel's creation included) in pages of 100
    assert {p["kind"] for p in pages} == {"CLIENT"}
    assert sorted(p["attributes"]["telegram.page.size"] for p in pages) == [50, 100, 100]
    assert all(p["attributes"]["telegram.group.id"] == fake.peer_id(group) for p in pages)
    send = next(s for s in sends if s["traceId"] == process["traceId"])
    assert send["kind"] == "PRODUCER"
    attrs = send["attributes"]
    assert attrs["messaging.system"] == "kafka"
    assert attrs["messaging.operation.name"] == "send"
    assert attrs["messaging.operation.type"] == "send"
    assert attrs["messaging.destination.name"] == settings.kafka.topic
    assert attrs["messaging.batch.message_count"] >= 1
    assert isinstance(attrs.get("messaging.destination.partition.id"), str)
    assert process["kind"] == "CONSUMER"
    assert process["traceId"] == consumer_trace
    assert process["parentSpanId"] == send["spanId"]
