"""OpenTelemetry tracing: set-up, producer spans with `traceparent` headers, and the consumer's side.

The emitter writes one PRODUCER span per Kafka transaction (``send telegram-messages``, current messaging
semantic conventions) linked to the history-page spans whose messages it carries, and puts that span's
W3C `traceparent` on every record. A consumer continues the trace in one call::

    from emitter.tracing import continue_trace

    async for record in consumer:
        with continue_trace(record):
            handle(record)
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Tracer

from emitter.settings import TelemetrySettings

TRACER_NAME: Final = "emitter"
PROPAGATION_HEADERS: Final = ("traceparent", "tracestate", "baggage")

Headers = Sequence[tuple[str, bytes]]
"""Kafka record headers as aiokafka gives and takes them."""


def tracer() -> Tracer:
    """The emitter's tracer from the global provider (a no-op until `setup_tracing` installs one)."""
    return trace.get_tracer(TRACER_NAME)


def setup_tracing(settings: TelemetrySettings) -> TracerProvider | None:
    """Install an OTLP/HTTP exporting provider if an endpoint is configured (settings or OTEL_* variables).

    Returns the provider (shut it down to flush), or None when tracing stays off: then spans are no-ops
    and records carry no `traceparent`, which keeps the hot path at its plain cost.
    """
    env_endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if settings.otlp_endpoint is None and not env_endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

    service = os.environ.get("OTEL_SERVICE_NAME") or settings.service_name
    sampler = None if settings.sampling_ratio is None else ParentBased(TraceIdRatioBased(settings.sampling_ratio))
    provider = TracerProvider(resource=Resource.create({"service.name": service}), sampler=sampler)
    endpoint = None if settings.otlp_endpoint is None else settings.otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    return provider


def inject_headers() -> list[tuple[str, bytes]]:
    """The current span's propagation headers (empty when there is no recording span)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(k, v.encode()) for k, v in carrier.items()]


def extract_context(headers: Headers | None) -> Any:
    """The OpenTelemetry context carried by record headers."""
    carrier = {k: v.decode("latin-1") for k, v in headers or () if k in PROPAGATION_HEADERS and v is not None}
    return propagate.extract(carrier)


@contextmanager
def continue_trace(
    record: Any,
    *,
    name: str | None = None,
    tracer_: Tracer | None = None,
) -> Iterator[Span]:
    """A CONSUMER span that continues the producer's trace from a Kafka record's `traceparent`.

    Args:
        record: an aiokafka `ConsumerRecord` (or anything with `headers`, `topic`, `partition`, `offset`),
            or a plain list of headers.
        name: the span name; default ``process <topic>``.
        tracer_: the tracer to use; default the global provider's.
    """
    headers = getattr(record, "headers", record)
    topic = getattr(record, "topic", None)
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
    }
    if topic is not None:
        attributes["messaging.destination.name"] = topic
    if getattr(record, "partition", None) is not None:
        attributes["messaging.destination.partition.id"] = str(record.partition)
    if getattr(record, "offset", None) is not None:
        attributes["messaging.kafka.offset"] = record.offset
    with (tracer_ or tracer()).start_as_current_span(
        name or f"process {topic or 'telegram-messages'}",
        context=extract_context(headers),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    ) as span:
        yield span
