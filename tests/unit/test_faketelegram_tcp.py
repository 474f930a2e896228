"""The fake Telegram on TCP: an unpatched Telethon client talks MTProto 2.0 to it over a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from telethon import TelegramClient, events
from telethon.crypto import AuthKey
from telethon.errors import AuthKeyNotFound
from telethon.sessions import StringSession

from tests.faketelegram import FakeTelegram, wait_until
from tests.faketelegram.tcp import MTProtoListener

PORT = 21081
API_HASH = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def world() -> FakeTelegram:
    return FakeTelegram(seed=7, dc_address="127.0.0.1", dc_port=PORT)


@pytest.fixture
async def listener(world: FakeTelegram) -> AsyncIterator[MTProtoListener]:
    async with MTProtoListener(world, port=PORT) as server:
        yield server


def _client(session: StringSession) -> TelegramClient:
    # Not world.client(): that patches the sender; this one opens a socket to the session's DC address.
    return TelegramClient(session, 12345, API_HASH, connection_retries=2, retry_delay=0.2, receive_updates=True)


async def test_a_real_client_reads_history_and_gets_live_updates(
    world: FakeTelegram, listener: MTProtoListener
) -> None:
    """Over the socket: the salt is learnt from bad_server_salt, history reads whole, a post arrives live."""
    channel = world.add_channel("News", username="news")
    world.post_many(channel, 250)
    client = _client(world.new_session())
    live: list[int] = []
    client.add_event_handler(lambda e: live.append(e.message.id), events.NewMessage())
    await client.connect()
    try:
        assert (await client.get_me()).id == world.me.id
        ids = [m.id async for m in client.iter_messages("@news", reverse=True, wait_time=0)]
        assert ids == world.message_ids(channel)
        assert listener.bad_salts >= 1, "the first message should have been refused for its salt"
        (posted,) = [m.id for m in [world.post(channel, "live")]]
        await wait_until(lambda: posted in live, within=10, message="the live update over the socket")
    finally:
        await client.disconnect()
    assert [host for host, _ in listener.peers] == ["127.0.0.1"]
    assert world.init_connections, "the initConnection was not parsed from the socket"


async def test_an_unknown_key_gets_the_transport_error(world: FakeTelegram, listener: MTProtoListener) -> None:
    """A key the world does not know is answered with -404, which Telethon turns into AuthKeyNotFound."""
    session = StringSession()
    session.set_dc(world.dc_id, "127.0.0.1", PORT)
    session.auth_key = AuthKey(bytes(range(256)))
    client = _client(session)
    try:
        with pytest.raises(AuthKeyNotFound):
            await asyncio.wait_for(client.connect(), 10)  # its initConnection is the first message
        assert world.transport_errors == [-404]
        assert world.init_connections == [], "a request on an unknown key reached the world"
    finally:
        await client.disconnect()


async def test_a_cut_connection_is_reopened_by_telethon(world: FakeTelegram, listener: MTProtoListener) -> None:
    """world.disconnect() closes the socket; Telethon reconnects on its own and its requests work again."""
    client = _client(world.new_session())
    await client.connect()
    try:
        await client.get_me()
        assert world.disconnect() == 1
        await wait_until(lambda: len(listener.peers) == 2, within=10, message="Telethon's reconnect")
        assert (await asyncio.wait_for(client.get_me(), 10)).id == world.me.id
    finally:
        await client.disconnect()
