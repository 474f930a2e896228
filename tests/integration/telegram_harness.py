"""Running the emitter's Telegram source against the in-process Telegram and the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from telethon import TelegramClient

from emitter.clock import Clock, ScaledClock
from emitter.kafka_sink import KafkaSink
from emitter.monitor import Monitor
from emitter.protocols import Window
from emitter.settings import Settings
from emitter.telegram_client import client_options
from emitter.telegram_gateway import RequestGateway
from emitter.telegram_source import TelegramSource
from tests.faketelegram import FakeTelegram, wait_until
from tests.integration.kafka_read import read_committed

SPEED = 50
"""Telegram seconds per real second in these tests: production paces at about one history request a
second, which would make a 25,000-message backfill take minutes of real time."""


@dataclass
class Running:
    """A running emitter: its monitor, its source and the task that runs them."""

    monitor: Monitor
    source: TelegramSource
    task: asyncio.Task[Any]


@asynccontextmanager
async def emitter(
    fake: FakeTelegram,
    settings: Settings,
    groups: list[str | int],
    *,
    client: TelegramClient | None = None,
    sweep_interval: float = 60.0,
    follow: bool = True,
    window: Window | None = None,
    timer: Clock | None = None,
    gateway: RequestGateway | None = None,
    **source_options: Any,
) -> AsyncIterator[Running]:
    """An emitter on `groups` of the fake world into the test's topics; stopped (drained) on exit.

    The client is built with production's options and every request passes a production gateway on
    `timer` (default: a `ScaledClock` at `SPEED`; share one with the fake to run Telegram's limits at the
    same speed); `sweep_interval` is in the timer's seconds.
    """
    client = client or fake.client(**client_options())
    timer = timer or ScaledClock(SPEED)
    source = TelegramSource(
        client,
        groups,
        sweep_interval=sweep_interval,
        follow=follow,
        window=window,
        own_client=True,
        timer=timer,
        gateway=gateway or RequestGateway(clock=timer),
        **source_options,
    )
    monitor = Monitor(source, KafkaSink(settings.kafka, settings.emitter.instance), batch_timeout=0.05)
    task = asyncio.create_task(monitor.run())
    try:
        yield Running(monitor, source, task)
    finally:
        monitor.request_stop()
        await asyncio.wait_for(task, 60)


def positioned(run: Running, gid: int) -> bool:
    """Whether the running source knows the group's update position and owes no catch-up: a live update
    that continues it is then admitted as LIVE (one that does not is left to a catch-up)."""
    state = run.source.live.followed.get(gid)
    return state is not None and state.pts is not None and not state.catch_up


async def published(settings: Settings) -> list[tuple[int, str, int, str]]:
    """(group id, event type, message id, source) of every committed record, in consumer order."""
    records = await read_committed(settings.kafka.bootstrap_servers[0], settings.kafka.topic)  # type: ignore[index]
    return [(r["group"]["id"], r["event_type"], r["message_id"], r["source"]) for _, r in records]


async def new_ids(settings: Settings, group_id: int) -> list[int]:
    """Ids of the group's NEW events as a consumer reads them."""
    return [m for g, kind, m, _ in await published(settings) if g == group_id and kind == "NEW"]


async def wait_for_ids(settings: Settings, group_id: int, count: int, *, within: float = 60.0) -> list[int]:
    """Poll Kafka until the group has at least `count` NEW events; return them."""
    found: list[int] = []

    async def enough() -> bool:
        nonlocal found
        found = await new_ids(settings, group_id)
        return len(found) >= count

    await wait_until(enough, within=within, interval=0.3, message=f"fewer than {count} messages of {group_id}")
    return found
