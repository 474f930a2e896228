"""Prometheus metrics of one emitter, in a registry of its own (so several can live in one process)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from emitter.account_health import AccountState
from emitter.protocols import Batch
from emitter.records import EventType, Source, utc_now

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class SourceStats(Protocol):
    """The counters a source keeps (the Telegram source's `SourceStats`)."""

    @property
    def flood_waits(self) -> int: ...
    @property
    def flood_wait_seconds(self) -> float: ...

    sweeps: int
    live_events: int
    live_dropped: int
    handler_errors: int
    reconnects: int


class _SourceCollector(Collector):
    """Reads a source's counters at scrape time, so the hot path only increments integers."""

    def __init__(self, stats: SourceStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        for name, doc, value in (
            ("emitter_flood_waits", "FloodWait errors answered by Telegram.", s.flood_waits),
            ("emitter_flood_wait_seconds", "Seconds waited because of FloodWait errors.", s.flood_wait_seconds),
            ("emitter_sweeps", "Gap-filling sweeps run.", s.sweeps),
            ("emitter_live_events", "Events delivered by live update handlers.", s.live_events),
            (
                "emitter_live_events_dropped",
                "Live events dropped by a full queue (a sweep fills them).",
                s.live_dropped,
            ),
            ("emitter_handler_errors", "Live handler failures (a sweep fills the gap).", s.handler_errors),
            ("emitter_reconnects", "Reconnects to Telegram.", s.reconnects),
            ("emitter_catch_ups", "Difference requests rounds (catch-ups) run.", getattr(s, "catch_ups", 0)),
            (
                "emitter_rescans",
                "Recent windows re-read and compared with what was published.",
                getattr(s, "rescans", 0),
            ),
            ("emitter_difference_too_long", "Catch-ups Telegram answered with too long.", getattr(s, "too_long", 0)),
            (
                "emitter_live_gaps",
                "Live updates that did not continue their group's position.",
                getattr(s, "live_gaps", 0),
            ),
            (
                "emitter_live_overflows",
                "Live updates the live buffer had no room for (a catch-up fetches them).",
                getattr(s, "live_overflows", 0),
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)


class _QuietCollector(Collector):
    """Seconds since each group's last committed event, computed at scrape time so a quiet group's value grows."""

    def __init__(self, last: dict[str, float]) -> None:
        self.last = last

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "emitter_seconds_since_last_event", "Seconds since the group's last committed event.", labels=["group"]
        )
        now = time.time()
        for group, at in sorted(self.last.items()):
            gauge.add_metric([group], max(0.0, now - at))
        yield gauge


class _TelegramCollector(Collector):
    """Reads a Telegram source's request gateway at scrape time: requests, waits, rates, queues, groups."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        gateway = self.source.gateway
        stats = gateway.stats
        for name, doc, counts in (
            ("emitter_telegram_requests", "Telegram requests sent, by method.", stats.requests),
            ("emitter_telegram_flood_waits", "FloodWaits Telegram answered, by method.", stats.flood_waits),
            ("emitter_telegram_retries", "Transient Telegram errors retried, by method.", stats.retries),
        ):
            family = CounterMetricFamily(name, doc, labels=["method"])
            for method, n in sorted(counts.items()):
                family.add_metric([method], n)
            yield family
        for name, doc, values in (
            ("emitter_telegram_request_rate", "Requests per second allowed now, by kind.", gateway.rates()),
            ("emitter_telegram_request_queue", "Requests waiting for their turn, by kind.", gateway.queue_depths()),
        ):
            gauge = GaugeMetricFamily(name, doc, labels=["kind"])
            for kind, value in sorted(values.items()):
                gauge.add_metric([kind], value)
            yield gauge
        yield CounterMetricFamily(
            "emitter_telegram_session_ended",
            "Times Telegram ended the session (log in again).",
            value=stats.account_gone,
        )
        unjoined = GaugeMetricFamily(
            "emitter_group_unjoined", "1 for a channel the account has not joined (no live updates).", labels=["group"]
        )
        for gid in sorted(self.source.unjoined):
            unjoined.add_metric([str(gid)], 1)
        yield unjoined
        health = gateway.account_health()
        state = GaugeMetricFamily(
            "emitter_account_state",
            "1 for the Telegram account's current state (ok, waiting, lost access, restricted, logged out, banned).",
            labels=["state"],
        )
        for name in AccountState:
            state.add_metric([name.value], 1 if health.state is name else 0)
        yield state
        yield GaugeMetricFamily(
            "emitter_account_lost_groups", "Groups the account lost access to.", len(health.lost_groups)
        )
        connected = 1 if self.source.connected else 0
        yield GaugeMetricFamily("emitter_telegram_connected", "1 while the connection to Telegram is up.", connected)


class _MediaCollector(Collector):
    """Reads a Telegram source's media stage and its store at scrape time; nothing while media are off.

    The stage exists from the source's start on (the store opens there), so a scrape before it sees none.
    """

    def __init__(self, source: Any) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        stage = getattr(self.source, "media", None)
        if stage is None:
            return
        stats, store = stage.stats, stage.store.stats
        for name, doc, value in (
            ("emitter_media_stored", "Media records whose object is in the store (uploaded or found).", stats.stored),
            ("emitter_media_bytes_downloaded", "Media bytes downloaded from Telegram.", stats.bytes_downloaded),
            ("emitter_media_uploads", "Objects uploaded to the store.", store.uploaded),
            ("emitter_media_upload_retries", "Store requests retried after a transient failure.", store.retries),
            (
                "emitter_media_aborted_uploads",
                "Incomplete multipart uploads (a crashed predecessor's) aborted at start.",
                store.aborted_incomplete,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        skipped = CounterMetricFamily(
            "emitter_media_skipped", "Media records published with metadata only, by reason.", labels=["reason"]
        )
        for reason, n in sorted(stats.skipped.items()):
            skipped.add_metric([reason], n)
        yield skipped


class Metrics:
    """What /metrics serves."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._last_event: dict[str, float] = {}
        r.register(_QuietCollector(self._last_event))
        group = ["group"]
        self.published = Counter(
            "emitter_messages_published", "Events committed to the sink.", ["group", "event_type", "source"], registry=r
        )
        self.duplicates = Counter("emitter_duplicates_dropped", "NEW events already published.", group, registry=r)
        self.gap_fills = Counter(
            "emitter_sweep_gap_fills", "Messages a sweep published that no live update had.", group, registry=r
        )
        self.transaction_seconds = Histogram(
            "emitter_transaction_duration_seconds",
            "Time to commit one batch (records and cursors).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.transaction_failures = Counter("emitter_transaction_failures", "Commits retried.", registry=r)
        self.cursor = Gauge("emitter_cursor_position", "Committed cursor (message id).", group, registry=r)
        self.lag = Gauge(
            "emitter_cursor_lag_seconds", "Age of the newest committed message when committed.", group, registry=r
        )
        self.backfill_done = Gauge(
            "emitter_backfill_messages_done", "Backfilled messages committed.", group, registry=r
        )
        self.backfill_total = Gauge(
            "emitter_backfill_messages_total", "Messages in the history when the backfill began.", group, registry=r
        )
        self.group_failed = Gauge(
            "emitter_group_failed", "1 while the group is stopped by an error.", group, registry=r
        )
        self.ready = Gauge("emitter_ready", "1 when cursors are restored and the sink commits.", registry=r)

    def bind_source(self, stats: Any) -> None:
        """Expose a source's counters (anything shaped like `SourceStats`)."""
        self.registry.register(_SourceCollector(stats))

    def bind_telegram(self, source: Any) -> None:
        """Expose a Telegram source's gateway and group states (anything with `gateway` and `unjoined`), and its
        media stage when media are on."""
        self.registry.register(_TelegramCollector(source))
        if getattr(source, "media_settings", None) is not None:
            self.registry.register(_MediaCollector(source))

    def observe_commit(self, batch: Batch, seconds: float) -> None:
        """Account one committed batch."""
        self.transaction_seconds.observe(seconds)
        # Per event only what is cheap (ids and enum members as they are); labels are strings once per key.
        counts: dict[tuple[int, EventType, Source], int] = {}
        newest: dict[int, float] = {}
        for e in batch.events:
            key = (e.group.id, e.event_type, e.source)
            counts[key] = counts.get(key, 0) + 1
            if e.event_type is EventType.NEW and e.date is not None:
                newest[key[0]] = max(newest.get(key[0], 0.0), e.date.timestamp())
        committed_at = time.time()
        for (gid, kind, source), n in counts.items():
            self.published.labels(str(gid), kind.value, source.value).inc(n)
            self._last_event[str(gid)] = committed_at
        now = utc_now().timestamp()
        for group, ts in newest.items():
            self.lag.labels(str(group)).set(max(0.0, now - ts))
        for gid, cursor in batch.cursors.items():
            if cursor.cursor > -(2**62):
                self.cursor.labels(str(gid)).set(cursor.cursor)
            self.group_failed.labels(str(gid)).set(1 if cursor.failed else 0)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
