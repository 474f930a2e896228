"""Jaeger for integration tests: start it (dev/jaeger, idempotently) and read spans back through its v3 query API."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

QUERY = "http://127.0.0.1:16686"
OTLP_HTTP = "http://127.0.0.1:4318"

DEV_JAEGER = Path(__file__).resolve().parents[2] / "dev" / "jaeger"
START_TIMEOUT = 1200.0  # the first start builds Jaeger from source: about 5 minutes on 2 cores, more on a cold cache
NUM_TRACES = 1000  # query.num_traces: the memory store refuses a search without one (0 < n <= its max_traces)

Span = dict[str, Any]

# OTLP's SpanKind numbers (not the Python SDK's, which start at INTERNAL = 0).
_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def query_answers() -> bool:
    """Whether Jaeger's query service answers on QUERY."""
    try:
        with urllib.request.urlopen(f"{QUERY}/api/services", timeout=2) as response:  # noqa: S310 (fixed http URL)
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def ensure_jaeger() -> None:
    """Make sure Jaeger answers on QUERY, starting (and on first use building) it with dev/jaeger if not."""
    if not query_answers():
        subprocess.run([str(DEV_JAEGER), "start"], check=True, timeout=START_TIMEOUT)
    assert query_answers(), f"Jaeger does not answer on {QUERY} (dev/jaeger start failed)"


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"a timezone-aware datetime is needed, not {moment!r}")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _hex_id(value: str | None) -> str:
    """OTLP JSON ids are hex; protobuf's own JSON mapping writes bytes as base64. Accept both, return hex."""
    if not value:
        return ""
    try:
        bytes.fromhex(value)
    except ValueError:
        return base64.b64decode(value).hex()
    return value.lower()


def _value(any_value: dict[str, Any]) -> Any:
    """An OTLP JSON AnyValue as a Python value."""
    for key, convert in (
        ("stringValue", str),
        ("boolValue", bool),
        ("intValue", int),  # int64 travels as a JSON string
        ("doubleValue", float),
    ):
        if key in any_value:
            return convert(any_value[key])
    if "arrayValue" in any_value:
        return [_value(v) for v in any_value["arrayValue"].get("values", [])]
    if "kvlistValue" in any_value:
        return _attributes(any_value["kvlistValue"].get("values", []))
    if "bytesValue" in any_value:
        return base64.b64decode(any_value["bytesValue"])
    return None


def _attributes(key_values: list[dict[str, Any]]) -> dict[str, Any]:
    return {kv["key"]: _value(kv.get("value", {})) for kv in key_values}


def _kind(kind: int | str | None) -> str:
    if isinstance(kind, str):
        return kind.removeprefix("SPAN_KIND_")
    return _KINDS.get(kind or 0, str(kind))


def _flatten(result: dict[str, Any]) -> list[Span]:
    spans: list[Span] = []
    for resource_spans in result.get("resourceSpans", []):
        resource = _attributes(resource_spans.get("resource", {}).get("attributes", []))
        for scope_spans in resource_spans.get("scopeSpans", []):
            scope = scope_spans.get("scope", {}).get("name", "")
            for raw in scope_spans.get("spans", []):
                span = dict(raw)
                span.update(
                    traceId=_hex_id(raw.get("traceId")),
                    spanId=_hex_id(raw.get("spanId")),
                    parentSpanId=_hex_id(raw.get("parentSpanId")),
                    name=raw.get("name", ""),
                    kind=_kind(raw.get("kind")),
                    attributes=_attributes(raw.get("attributes", [])),
                    events=[
                        {**event, "attributes": _attributes(event.get("attributes", []))}
                        for event in raw.get("events", [])
                    ],
                    startTimeUnixNano=int(raw.get("startTimeUnixNano", 0)),
                    endTimeUnixNano=int(raw.get("endTimeUnixNano", 0)),
                    service=resource.get("service.name", ""),
                    resource=resource,
                    scope=scope,
                )
                spans.append(span)
    return spans


def find_traces(service: str, *, since: datetime, until: datetime | None = None) -> list[Span]:
    """Every span of the traces of `service` that started in [since, until] (until: a minute from now).

    A flat list of OTLP JSON spans, each with hex `traceId`/`spanId`/`parentSpanId` ("" for a root span), `name`,
    `kind` as a name ("INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"), `attributes` as {key: value},
    int `startTimeUnixNano`/`endTimeUnixNano`, plus the resource's `service` and attributes (`resource`) and
    the instrumentation `scope` name. A trace holds spans of other services too. No traces found is [].
    """
    params = {
        "query.service_name": service,
        "query.start_time_min": _rfc3339(since),
        "query.start_time_max": _rfc3339(until or datetime.now(UTC) + timedelta(minutes=1)),
        "query.num_traces": str(NUM_TRACES),
    }
    url = f"{QUERY}/api/v3/traces?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (fixed http URL)
            body = json.load(response)
    except urllib.error.HTTPError as error:
        if error.code == 404:  # "No traces found"
            return []
        detail = error.read().decode(errors="replace")
        raise AssertionError(f"Jaeger query failed: HTTP {error.code}: {detail}") from error
    return _flatten(body.get("result") or {})


def wait_for_spans(
    service: str,
    since: datetime,
    predicate: Callable[[list[Span]], bool],
    within: float = 30.0,
    *,
    interval: float = 0.2,
) -> list[Span]:
    """Poll find_traces until predicate(spans) holds, and return those spans; AssertionError after `within` s."""
    deadline = time.monotonic() + within
    while True:
        spans = find_traces(service, since=since)
        if predicate(spans):
            return spans
        if time.monotonic() >= deadline:
            names = sorted({f"{s['service']}:{s['name']}" for s in spans})
            raise AssertionError(f"no spans of {service!r} satisfied the predicate within {within}s; got {names}")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
