"""The coalescing update queue: the containers it merges, those it leaves alone, and Telethon's real update
loop taking a burst through it, with and without lost updates."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from telethon import TelegramClient, events, types

from emitter.clock import ScaledClock
from emitter.telegram_client import client_options
from emitter.telegram_updates import MAX_MERGED, CoalescingQueue, coalesce_updates
from tests.faketelegram import FakeTelegram, wait_until

DATE = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _new(channel_id: int, msg_id: int, pts: int) -> Any:
    message = types.Message(msg_id, types.PeerChannel(channel_id), DATE, f"m{msg_id}")
    return types.UpdateNewChannelMessage(message, pts=pts, pts_count=1)


def _container(*updates: Any, seq: int = 0, second: int = 0, chat: int = 1) -> types.Updates:
    chats = [types.Channel(chat, f"c{chat}", types.ChatPhotoEmpty(), DATE, access_hash=7)]
    return types.Updates(list(updates), users=[], chats=chats, date=DATE.replace(second=second), seq=seq)


def _drain(queue: asyncio.Queue[Any]) -> list[Any]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def test_containers_queued_behind_one_another_are_taken_as_one_in_their_order() -> None:
    queue = CoalescingQueue()
    queue.put_nowait(_container(_new(1, 10, 100), second=1))
    queue.put_nowait(_container(_new(2, 5, 40), chat=2, second=3))
    queue.put_nowait(_container(_new(1, 11, 101), _new(1, 12, 102), second=2))
    (merged,) = _drain(queue)
    assert [(u.message.peer_id.channel_id, u.pts) for u in merged.updates] == [(1, 100), (2, 40), (1, 101), (1, 102)]
    assert [c.id for c in merged.chats] == [2, 1]  # each chat once, where it was seen last
    assert merged.date == DATE.replace(second=3) and merged.seq == 0


@pytest.mark.parametrize(
    "other",
    [
        _container(_new(1, 11, 101), seq=5),  # the account's seq orders it: Telethon checks it per container
        types.UpdateShort(_new(1, 11, 101), DATE),
        _container(types.UpdateChannelTooLong(1, pts=101)),  # no pts step: Telethon must see it on its own
        _container(types.UpdateMessageReactions(types.PeerChannel(1), 10, types.MessageReactions([]))),
        types.UpdatesTooLong(),
    ],
    ids=["seq", "short", "too-long", "no-pts", "updates-too-long"],
)
def test_containers_telegram_orders_otherwise_stay_apart(other: Any) -> None:
    for first, second in ((_container(_new(1, 10, 100)), other), (other, _container(_new(1, 12, 102)))):
        queue = CoalescingQueue()
        queue.put_nowait(first)
        queue.put_nowait(second)
        assert _drain(queue) == [first, second]


def test_answers_to_the_accounts_own_requests_stay_apart() -> None:
    own = _container(_new(1, 11, 101))
    own._self_outgoing = True  # how Telethon marks what its sender queues from a request's result
    queue = CoalescingQueue()
    queue.put_nowait(_container(_new(1, 10, 100)))
    queue.put_nowait(own)
    assert len(_drain(queue)) == 2


def test_a_merged_container_holds_at_most_max_merged_updates() -> None:
    queue = CoalescingQueue()
    for i in range(MAX_MERGED * 2 + 1):
        queue.put_nowait(_container(_new(1, i + 1, i + 1)))
    sizes = [len(c.updates) for c in _drain(queue)]
    assert sizes == [MAX_MERGED, MAX_MERGED, 1]


async def test_the_client_queue_changes_in_place_keeping_what_is_queued() -> None:
    client = FakeTelegram(seed=1).client(**client_options())
    queue = client._updates_queue
    queue.put_nowait(_container(_new(1, 10, 100)))
    assert coalesce_updates(client) and coalesce_updates(client)
    assert client._updates_queue is queue is client._sender._updates_queue
    queue.put_nowait(_container(_new(1, 11, 101)))
    assert [u.pts for u in _drain(queue)[0].updates] == [100, 101]


@pytest.mark.parametrize(("drop", "n"), [(0.0, 500), (0.05, 80)])
async def test_a_burst_reaches_handlers_complete_in_order_in_fewer_turns(drop: float, n: int) -> None:
    """A burst pushed at once (one container a message): Telethon's update loop takes it in a few turns, and
    every message is dispatched once, in id order; with 5 % of the pushes lost, Telethon's own gap handling
    (its difference of the channel) fills the merged containers' gaps as it fills single ones."""
    clock = ScaledClock(50)
    fake = FakeTelegram(seed=9, monotonic=clock.monotonic)
    channel = fake.add_channel("Busy", username="busy", megagroup=True)
    fake.post_many(channel, 5)
    client: TelegramClient = fake.client(**client_options())
    seen: list[int] = []

    async def on_new(update: Any) -> None:
        seen.append(update.message.id)

    client.add_event_handler(on_new, events.Raw(types.UpdateNewChannelMessage))
    takes = 0
    await client.connect()
    try:
        assert coalesce_updates(client)
        queue = client._updates_queue
        get = queue.get

        async def counted_get() -> Any:
            nonlocal takes
            takes += 1
            return await get()

        queue.get = counted_get  # type: ignore[method-assign]
        await client.get_input_entity("busy")
        fake.post(channel, "first")  # Telethon learns the channel's pts from the first update it applies
        await wait_until(lambda: len(seen) == 1, within=10)
        fake.faults.drop_updates(drop, seed=4)
        takes = 0
        posted = [m.id for m in fake.burst(channel, n)]
        await wait_until(lambda: len(seen) >= n + 1, within=30)
    finally:
        await client.disconnect()
    assert seen[1:] == posted, "a message was lost, repeated or dispatched out of order"
    assert (fake.faults.dropped_updates > 0) == (drop > 0)
    assert takes <= len(posted) // 10, f"the update loop took {takes} turns for {len(posted)} containers"
    print(f"drop {drop:.0%}: {len(posted)} pushed, {fake.faults.dropped_updates} lost, taken in {takes} turns")


def test_entities_a_later_container_carries_again_are_kept_once_the_newest() -> None:
    ann = types.User(5, access_hash=1, first_name="Ann")
    ann_renamed = types.User(5, access_hash=1, first_name="Ann Lee")
    ann_min = types.User(5, min=True, first_name="Ann")
    bob = types.User(6, access_hash=2, first_name="Bob")
    queue = CoalescingQueue()
    for users in ([ann, bob], [ann_min], [ann_renamed]):
        queue.put_nowait(types.Updates([_new(1, 10, 100)], users=users, chats=[], date=DATE, seq=0))
    (merged,) = _drain(queue)
    assert merged.users == [bob, ann_min, ann_renamed]
