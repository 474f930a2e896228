"""Export the progress of a long read as Prometheus gauges, through `progress_callback`.

`get_messages` calls ``progress_callback(current, total, rate)`` after every page of 100 messages; this
callback sets four gauges labelled with the group, which Prometheus scrapes while the read runs:

    python -m examples.prometheus_progress @somechannel --port 9464   # then scrape :9464/metrics
"""

from __future__ import annotations

import argparse
import asyncio

from prometheus_client import REGISTRY, CollectorRegistry, Gauge, start_http_server

from emitter.progress import ProgressCallback
from emitter.tgdata import Rows, TgData


def progress_gauges(group: str, registry: CollectorRegistry = REGISTRY) -> ProgressCallback:
    """A progress callback that sets the ``telegram_fetch_*`` gauges of `group` in `registry`."""
    labels = ["group"]
    fetched = Gauge("telegram_fetch_messages", "Messages read so far", labels, registry=registry)
    total = Gauge(
        "telegram_fetch_total_messages", "Messages expected (the history or the limit)", labels, registry=registry
    )
    rate = Gauge("telegram_fetch_rate", "Messages read per second", labels, registry=registry)
    ratio = Gauge(
        "telegram_fetch_progress_ratio", "Share of the expected messages read, 0 to 1", labels, registry=registry
    )

    def callback(current: int, expected: int | None, per_second: float) -> None:
        fetched.labels(group).set(current)
        rate.labels(group).set(per_second)
        if expected:
            total.labels(group).set(expected)
            ratio.labels(group).set(min(1.0, current / expected))

    return callback


async def fetch_with_metrics(tg: TgData, group: int | str, registry: CollectorRegistry = REGISTRY) -> Rows:
    """Read the group's whole history, reporting progress to the gauges."""
    return await tg.get_messages(group, progress_callback=progress_gauges(str(group), registry))


async def _run(group: int | str, config_file: str | None) -> int:
    async with TgData(config_file) as tg:
        return len(await fetch_with_metrics(tg, group))


def main(argv: list[str] | None = None) -> int:
    """Serve /metrics and read one group."""
    parser = argparse.ArgumentParser(description="TgData progress as Prometheus gauges")
    parser.add_argument("group")
    parser.add_argument("--port", type=int, default=9464)
    parser.add_argument("--config", default=None)
    args = parser.parse_args(argv)
    start_http_server(args.port, addr="127.0.0.1")
    group = int(args.group) if args.group.lstrip("-").isdigit() else args.group
    print(asyncio.run(_run(group, args.config)), "messages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
