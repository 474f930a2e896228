"""Assembly: settings in, a running monitor out. The CLI and the library both start here."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from emitter.http_server import HttpServer, Response, Route
from emitter.metrics import CONTENT_TYPE
from emitter.monitor import Monitor, RunStats
from emitter.progress import ProgressBoard
from emitter.protocols import MessageSource, Sink, Window
from emitter.settings import Settings
from emitter.tracing import setup_tracing

log = logging.getLogger("emitter")


def create_source(settings: Settings, window: Window | None = None) -> MessageSource:
    """The source the settings ask for (auto resolved: telegram, export or demo).

    With a `window` the source is one-shot: it backfills the window and ends (`emitter backfill`).
    """
    kind = settings.source_kind
    e = settings.emitter
    if kind == "export":
        from emitter.export_source import ExportSource  # noqa: PLC0415 - only the chosen source is imported

        assert e.export_path is not None  # noqa: S101 - guaranteed by Settings validation
        return ExportSource(Path(e.export_path))
    if kind == "telegram":
        from emitter.telegram_source import TelegramSource  # noqa: PLC0415 - imports Telethon only when used

        following: dict[str, Any] = {"heartbeat_interval": e.heartbeat_interval, "media": settings.media}
        if window is None:
            return TelegramSource.from_settings(settings.telegram, **following)
        return TelegramSource.from_settings(settings.telegram, window=window, follow=False, **following)
    from emitter.demo_source import DemoSource  # noqa: PLC0415 - same

    limit = e.demo_limit if window is None else min(e.demo_history, window.limit or e.demo_history)
    return DemoSource(e.demo_groups, history=e.demo_history, rate=e.demo_rate, limit=limit)


def create_sink(settings: Settings) -> Sink:
    """The Kafka sink when brokers are configured, else the embedded file sink."""
    if settings.sink_kind == "kafka":
        from emitter.kafka_sink import KafkaSink  # noqa: PLC0415 - aiokafka only when used

        return KafkaSink(settings.kafka, settings.emitter.instance)
    from emitter.file_sink import FileSink  # noqa: PLC0415 - same

    e = settings.emitter
    return FileSink(Path(e.data_dir), e.instance, rotate_bytes=e.file_rotate_bytes)


async def backfill(
    settings: Settings, window: Window, *, view: Callable[[ProgressBoard], AbstractContextManager[Any]] | None = None
) -> RunStats:
    """Backfill the window once (no following) and return; `view` draws the monitor's progress board."""
    monitor = create_monitor(settings, create_source(settings, window))
    if view is None:
        return await run(settings, monitor)
    with view(monitor.progress):
        return await run(settings, monitor)


def create_monitor(settings: Settings, source: MessageSource | None = None, sink: Sink | None = None) -> Monitor:
    """A monitor wired as configured; pass `source` or `sink` to bring your own."""
    e = settings.emitter
    return Monitor(
        source or create_source(settings),
        sink or create_sink(settings),
        batch_size=e.batch_size,
        batch_timeout=e.batch_timeout_ms / 1000,
        max_in_flight=e.max_in_flight,
        drain_timeout=e.drain_timeout,
    )


def quiet_fenced_futures(loop: asyncio.AbstractEventLoop) -> None:
    """Drop aiokafka's orphaned ProducerFenced futures: fencing was already reported, once and clearly."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if exc is not None and type(exc).__name__ in {"ProducerFenced", "InvalidProducerEpoch"}:
            log.debug("ignoring orphaned %s future", type(exc).__name__)
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def probe_routes(monitor: Monitor) -> dict[str, Route]:
    """/healthz (the loop answers), /readyz (cursors restored, sink and source connected), /metrics."""

    def healthz() -> Response:
        return 200, "text/plain", b"ok\n"

    def readyz() -> Response:
        status = monitor.status()
        body = json.dumps(status, default=str).encode() + b"\n"
        # Not `source_connected`: a reconnect of a second is no reason to leave the load balancer; the
        # source says itself when Telegram has been unreachable for longer than its bound.
        return (200 if status["ready"] else 503), "application/json", body

    def metrics() -> Response:
        return 200, CONTENT_TYPE, monitor.metrics.render()

    return {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}


async def run(settings: Settings, monitor: Monitor | None = None) -> RunStats:
    """Run the emitter until its sources end or SIGTERM/SIGINT; commits what was accepted before returning.

    Traces go to OTLP when an endpoint is configured; /metrics and the probes are served when
    `telemetry.http_port` is set.
    """
    provider = setup_tracing(settings.telemetry)
    monitor = monitor or create_monitor(settings)
    stats = getattr(monitor.source, "stats", None)
    if stats is not None:
        monitor.metrics.bind_source(stats)
    if getattr(monitor.source, "gateway", None) is not None:
        monitor.metrics.bind_telegram(monitor.source)
    t = settings.telemetry
    server = HttpServer(probe_routes(monitor), host=t.http_host, port=t.http_port) if t.http_port is not None else None
    loop = asyncio.get_running_loop()
    quiet_fenced_futures(loop)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, monitor.request_stop)
    try:
        log.info(
            "starting: source=%s sink=%s instance=%s",
            monitor.source.name,  # not settings.source_kind: a caller may bring its own source
            settings.sink_kind,
            settings.emitter.instance,
        )
        async with contextlib.AsyncExitStack() as stack:
            if server is not None:
                await stack.enter_async_context(server)
            return await monitor.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if provider is not None:
            await asyncio.to_thread(provider.shutdown)
