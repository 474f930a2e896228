"""History pages straight from getHistory: the real TelegramClient against the in-process Telegram."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from telethon import TelegramClient

from emitter.clock import ScaledClock
from emitter.telegram_client import client_options
from emitter.telegram_gateway import RequestGateway
from emitter.telegram_history import history_pages
from tests.faketelegram import FakeTelegram, wait_until

FAST = 2000
"""Simulated seconds per real second: Telegram's own FloodWaits pass without the test waiting them out."""


@pytest.fixture
def clock() -> ScaledClock:
    return ScaledClock(FAST)


@pytest.fixture
def fake(clock: ScaledClock) -> FakeTelegram:
    # Telegram's own rate limits stay on, and the client goes through the production request gateway.
    world = FakeTelegram(seed=3, monotonic=clock.monotonic)
    channel = world.add_channel("Walk", username="walk", megagroup=True)
    world.post_many(channel, 450)
    world.delete(channel, range(5, 450, 17), push=False)
    return world


@pytest.fixture
async def client(fake: FakeTelegram, clock: ScaledClock) -> AsyncIterator[TelegramClient]:
    tg = fake.client(**client_options())
    gateway = RequestGateway(clock=clock)
    gateway.attach(tg)
    await tg.connect()
    yield tg
    await tg.disconnect()
    gateway.detach()


async def test_a_walk_returns_every_id_once_ascending_and_asks_the_next_page_ahead(
    fake: FakeTelegram, client: TelegramClient
) -> None:
    """Every id above min_id once, in order; the next page is already asked for while a page is handed out."""
    entity = await client.get_entity("@walk")
    peer = fake.peer_id(entity)
    expected = [i for i in fake.message_ids(peer) if i > 40]
    fake.history_calls.clear()
    seen: list[int] = []
    async with contextlib.aclosing(history_pages(client, entity, min_id=40)) as pages:
        async for page in pages:
            seen += [m.id for m in page.messages]
            if len(seen) == 100:  # the caller still holds the first page: the second is on its way already
                await wait_until(lambda: len(fake.history_calls) >= 2, within=5)
    assert seen == expected
    assert fake.history_calls[0].offset_id == 41


async def test_a_walk_with_an_end_date_asks_for_nothing_beyond_it(fake: FakeTelegram, client: TelegramClient) -> None:
    """The page that passes `until` is the last one asked for (a window's walk reads no more than it needs)."""
    entity = await client.get_entity("@walk")
    ids = fake.message_ids(fake.peer_id(entity))
    until = (await client.get_messages(entity, ids=ids[150])).date
    fake.history_calls.clear()
    async with contextlib.aclosing(history_pages(client, entity, until=until)) as pages:
        pages_seen = [page async for page in pages]
    assert len(fake.history_calls) == 2 == len(pages_seen)


async def test_stopping_early_cancels_the_page_asked_ahead(fake: FakeTelegram, client: TelegramClient) -> None:
    """Leaving after the first page: the request ahead is cancelled, and no further one is made."""
    entity = await client.get_entity("@walk")
    fake.history_calls.clear()
    async with contextlib.aclosing(history_pages(client, entity)) as pages:
        async for _page in pages:
            break
    assert len(fake.history_calls) <= 2
    calls = len(fake.history_calls)
    await client.get_messages(entity, limit=1)  # a round trip: anything still queued would have arrived
    assert len(fake.history_calls) == calls + 1


async def test_a_flood_wait_on_the_page_asked_ahead_is_waited_out_and_loses_no_page(
    fake: FakeTelegram, client: TelegramClient
) -> None:
    """Telegram answers the request that runs ahead with FLOOD_WAIT: the gateway holds it for the wait and
    asks again, and the walk still hands out every id once, in order, with the page after the wait."""
    entity = await client.get_entity("@walk")
    expected = fake.message_ids(fake.peer_id(entity))
    flood = fake.faults.flood_wait("messages.GetHistory", 30, when=lambda r: r.offset_id > 1)
    fake.history_calls.clear()
    async with contextlib.aclosing(history_pages(client, entity)) as pages:
        seen = [m.id async for page in pages for m in page.messages]
    assert flood.hits == 1
    assert seen == expected
    second_page = next(c for c in fake.history_calls if c.offset_id > 1)
    assert second_page.offset_id == expected[99] + 1  # asked again from where the walk stood, not skipped


async def test_the_page_ahead_has_reached_telegram_before_a_page_is_handed_out(
    fake: FakeTelegram, client: TelegramClient
) -> None:
    """A caller that maps and commits a page without giving the loop a turn still overlaps the next page's
    round trip: that request is on the wire, Telegram has it, before the page reaches the caller."""
    entity = await client.get_entity("@walk")
    fake.history_calls.clear()
    arrived: list[int] = []
    async with contextlib.aclosing(history_pages(client, entity)) as pages:
        async for _page in pages:
            arrived.append(len(fake.history_calls))  # read before this task awaits anything
    assert arrived[:4] == [2, 3, 4, 5]
