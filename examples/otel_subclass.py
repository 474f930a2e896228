"""Add your own OpenTelemetry spans by subclassing TgData.

The emitter already traces each history page ("telegram history page", a CLIENT span); a subclass can wrap
whole calls in spans of its own, which then parent those page spans:

    python -m examples.otel_subclass @somechannel --limit 100     # spans printed to the console
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.trace import Tracer

from emitter.tgdata import Rows, TgData


class TracedTgData(TgData):
    """TgData whose `get_messages` and `get_message_count` each run in a span.

    Args:
        tracer: the tracer to use (default: the global provider's, named after this module).
        args, kwargs: as for `TgData`.
    """

    def __init__(self, *args: Any, tracer: Tracer | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tracer = tracer or trace.get_tracer(__name__)

    async def get_messages(self, group_id: int | str, *args: Any, **kwargs: Any) -> Rows:
        """`TgData.get_messages` in a ``telegram.get_messages`` span with the group, limit and row count."""
        with self.tracer.start_as_current_span("telegram.get_messages") as span:
            span.set_attribute("telegram.group", str(group_id))
            limit = kwargs.get("limit", args[0] if args else None)
            if limit is not None:
                span.set_attribute("telegram.limit", int(limit))
            rows = await super().get_messages(group_id, *args, **kwargs)
            span.set_attribute("telegram.message_count", len(rows))
            return rows

    async def get_message_count(self, group_id: int | str) -> int:
        """`TgData.get_message_count` in a ``telegram.get_message_count`` span."""
        with self.tracer.start_as_current_span("telegram.get_message_count") as span:
            span.set_attribute("telegram.group", str(group_id))
            count = await super().get_message_count(group_id)
            span.set_attribute("telegram.message_count", count)
            return count


async def fetch(group: int | str, limit: int, config_file: str | None = None) -> int:
    """Read the oldest `limit` messages of the group, traced; returns how many were read."""
    async with TracedTgData(config_file) as tg:
        return len(await tg.get_messages(group, limit=limit))


def main(argv: list[str] | None = None) -> int:
    """Trace one read, printing the spans."""
    parser = argparse.ArgumentParser(description="TgData with spans of your own")
    parser.add_argument("group")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--config", default=None)
    args = parser.parse_args(argv)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    group = int(args.group) if args.group.lstrip("-").isdigit() else args.group
    asyncio.run(fetch(group, args.limit, args.config))
    provider.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
