"""The fake Telegram, driven by the real Telethon TelegramClient (no network).

These tests pin down both the fake's behaviour and the Telethon 1.45 behaviour the emitter relies on
(pagination cost, gap recovery, flood-wait handling), so a Telethon upgrade that changes either shows
up here first.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from telethon import TelegramClient, errors, events, functions, types

from tests.faketelegram import (
    SESSION_DEATH_CODES,
    TELEGRAM_LIKE,
    Bucket,
    FakeTelegram,
    RateLimits,
    UnsupportedRequestError,
    wait_until,
)
from tests.faketelegram.limits import RateLimiter

Connect = Callable[..., Awaitable[TelegramClient]]


class ScriptedClock:
    """The fake's monotonic clock in these tests: real time plus what a test adds; or frozen, only that."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._frozen_at: float | None = None

    def __call__(self) -> float:
        base = time.monotonic() if self._frozen_at is None else self._frozen_at
        return base + self._offset

    def advance(self, seconds: float) -> None:
        """Jump forward, as if `seconds` of Telegram's time had passed."""
        self._offset += seconds

    def freeze(self) -> None:
        """Stop real time from counting, so waits come out exactly."""
        self._frozen_at = time.monotonic()


@pytest.fixture
def clock() -> ScriptedClock:
    """The monotonic clock the world's rate limits and spells run on."""
    return ScriptedClock()


@pytest.fixture
def fake(clock: ScriptedClock) -> FakeTelegram:
    """A fresh world per test with Telegram's defaults, seeded so that random choices repeat."""
    return FakeTelegram(seed=7, monotonic=clock)


@pytest.fixture
async def connect(fake: FakeTelegram) -> AsyncIterator[Connect]:
    """Build and connect real clients on the fake; disconnect them all at the end."""
    clients: list[TelegramClient] = []

    async def _connect(**kwargs: Any) -> TelegramClient:
        kwargs.setdefault("retry_delay", 0)
        client = fake.client(**kwargs)
        await client.connect()
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        await client.disconnect()
    assert fake.unsupported_requests == [], "the client sent requests the fake does not answer"


def _collector(client: TelegramClient, event: Any) -> list[Any]:
    """Register a handler for `event` on `client` and return the list it appends events to."""
    seen: list[Any] = []

    async def handler(ev: Any) -> None:
        seen.append(ev)

    client.add_event_handler(handler, event)
    return seen


# Connecting and entities


async def test_connect_authorizes_and_get_me_returns_the_account(fake: FakeTelegram, connect: Connect) -> None:
    """connect() runs Telethon's handshake against the fake and get_me() returns the account's user."""
    client = await connect()

    assert await client.is_user_authorized()
    me = await client.get_me()
    assert me.id == fake.me.id
    assert me.is_self
    # Telethon's own connect sequence: config, self user, state and an initial difference.
    assert fake.count("help.GetConfigRequest") == 1
    assert fake.count("updates.GetStateRequest") == 1
    assert fake.count("updates.GetDifferenceRequest") == 1


async def test_get_entity_resolves_a_channel_username(fake: FakeTelegram, connect: Connect) -> None:
    """get_entity('@username') resolves through contacts.ResolveUsername to the channel."""
    channel = fake.add_channel("News", username="news")
    client = await connect()

    entity = await client.get_entity("@news")

    assert isinstance(entity, types.Channel)
    assert (entity.id, entity.access_hash, entity.title) == (channel.id, channel.access_hash, "News")
    assert fake.count("contacts.ResolveUsernameRequest") == 1


async def test_iter_dialogs_lists_channels_supergroups_and_basic_groups(fake: FakeTelegram, connect: Connect) -> None:
    """iter_dialogs lists every group the account is in, newest activity first."""
    fake.add_channel("Broadcast", username="bc")
    fake.add_channel("Super", megagroup=True)
    chat = fake.add_chat("Basic")
    fake.post(chat, "latest activity")
    client = await connect()

    dialogs = [d async for d in client.iter_dialogs()]

    assert dialogs[0].name == "Basic"
    assert {d.name for d in dialogs} == {"Broadcast", "Super", "Basic"}
    assert {type(d.entity) for d in dialogs} == {types.Channel, types.Chat}


async def test_iter_dialogs_pages_through_many_groups(fake: FakeTelegram, connect: Connect) -> None:
    """More than 100 dialogs come back as DialogsSlice pages, each group exactly once."""
    for i in range(130):
        fake.add_channel(f"Group {i}", megagroup=True)
    client = await connect()

    names = [d.name async for d in client.iter_dialogs()]

    assert sorted(names) == sorted(f"Group {i}" for i in range(130))
    assert fake.count("messages.GetDialogsRequest") == 2


# History pagination


async def test_reverse_walk_yields_surviving_ids_above_min_id_in_minimal_requests(
    fake: FakeTelegram, connect: Connect
) -> None:
    """iter_messages(reverse=True, min_id=X) walks up through deleted-id gaps, 100 per request.

    Telethon stops a reverse walk only on an empty page, so it costs ceil(n/100) + 1 requests.
    """
    channel = fake.add_channel("Big", username="big")
    fake.post_many(channel, 2_499)  # ids 2..2500 after the creation message (id 1)
    fake.delete(channel, range(300, 420))
    fake.delete(channel, range(1_000, 2_000, 7))
    fake.delete(channel, [701, 702, 2_500])
    client = await connect()
    fake.reset_counters()
    min_id = 700
    expected = [i for i in fake.message_ids(channel) if i > min_id]

    got = [m.id async for m in client.iter_messages(channel, reverse=True, min_id=min_id, wait_time=0)]

    assert got == expected
    assert fake.count("GetHistoryRequest") == math.ceil(len(expected) / 100) + 1
    assert all(call.limit <= 100 for call in fake.history_calls)
    assert fake.history_calls[-1].returned_ids == ()


async def test_newest_first_with_limit_returns_the_newest_messages(fake: FakeTelegram, connect: Connect) -> None:
    """iter_messages(limit=N) yields the N newest surviving messages, newest first."""
    channel = fake.add_channel("Feed")
    fake.post_many(channel, 999)
    fake.delete(channel, range(950, 960))
    client = await connect()
    fake.reset_counters()

    got = [m.id async for m in client.iter_messages(channel, limit=250)]

    assert got == sorted(fake.message_ids(channel), reverse=True)[:250]
    assert fake.count("GetHistoryRequest") == 3


async def test_min_id_without_reverse_yields_the_newest_above_it(fake: FakeTelegram, connect: Connect) -> None:
    """Without reverse=True, min_id filters client-side: the newest messages above it, descending."""
    channel = fake.add_channel("Feed")
    fake.post_many(channel, 300)
    client = await connect()

    got = [m.id async for m in client.iter_messages(channel, min_id=250, limit=10)]

    assert got == list(range(301, 291, -1))


async def test_basic_group_ids_come_from_the_account_wide_counter(fake: FakeTelegram, connect: Connect) -> None:
    """Basic groups and private chats share one id counter, so a group's ids have gaps; channels start at 1."""
    first = fake.add_chat("First")
    second = fake.add_chat("Second")
    for i in range(150):
        fake.post(first, f"a{i}")
        fake.post(second, f"b{i}")
        fake.post(fake.default_user, f"dm{i}")
    channel = fake.add_channel("Own counter")
    fake.post(channel, "hello")
    client = await connect()

    first_ids = [m.id async for m in client.iter_messages(first, reverse=True, wait_time=0)]

    assert first_ids == fake.message_ids(first)
    assert len(first_ids) == 151
    assert {b - a for a, b in itertools.pairwise(first_ids[1:])} == {3}
    assert fake.message_ids(channel) == [1, 2]


async def test_get_history_offset_arithmetic_matches_telegram(fake: FakeTelegram, connect: Connect) -> None:
    """Raw messages.GetHistory: offset_id exclusive, add_offset shifts towards newer, min/max_id exclusive."""
    channel = fake.add_channel("Feed")
    msgs = fake.post_many(channel, 999)  # ids 2..1000, dates one second apart
    client = await connect()

    async def history(**kw: Any) -> list[int]:
        args = {"offset_id": 0, "offset_date": None, "add_offset": 0, "limit": 100, "max_id": 0, "min_id": 0}
        args.update(kw)
        result = await client(functions.messages.GetHistoryRequest(peer=channel, hash=0, **args))
        assert isinstance(result, types.messages.ChannelMessages)
        assert result.count == 1000
        return [m.id for m in result.messages]

    assert await history(limit=3) == [1000, 999, 998]
    assert await history(offset_id=500, limit=3) == [499, 498, 497]
    assert await history(offset_id=500, add_offset=-10, limit=20) == list(range(509, 489, -1))
    assert await history(offset_id=3, add_offset=-100, limit=100) == list(range(102, 2, -1))
    assert await history(offset_id=1001, add_offset=-100, limit=100) == []
    assert await history(min_id=100, max_id=110) == list(range(109, 100, -1))
    assert await history(offset_date=msgs[10].date, limit=2) == [msgs[9].id, msgs[8].id]
    assert await history(limit=500) == list(range(1000, 900, -1))  # at most 100 per page


async def test_rich_message_fields_survive_the_trip_through_bytes(fake: FakeTelegram, connect: Connect) -> None:
    """Entities, media, replies, forwards, albums and counters reach Telethon intact, in history and live."""
    fake.omit_fraction = 0  # about field fidelity: random omission is tested on its own
    channel = fake.add_channel("Broadcast", username="bc")
    chat = fake.add_chat("Basic")
    bot = fake.add_user("Helper", username="helper_bot", bot=True)
    photo = types.Photo(
        id=42,
        access_hash=43,
        file_reference=b"ref",
        date=fake.messages(channel)[0].date,
        sizes=[types.PhotoSize(type="x", w=800, h=600, size=12_345)],
        dc_id=fake.dc_id,
    )
    fields: dict[str, Any] = {
        "entities": [types.MessageEntityBold(offset=0, length=4)],
        "media": types.MessageMediaPhoto(photo=photo),
        "fwd_from": types.MessageFwdHeader(date=photo.date, from_id=types.PeerUser(fake.default_user.id)),
        "grouped_id": 777,
        "via_bot_id": bot.id,
    }
    posted = fake.post(channel, "Bold caption", post_author="Editor", views=10, forwards=2, **fields)
    reply = fake.post(channel, "a reply", reply_to=posted.id)
    client = await connect()
    seen = _collector(client, events.NewMessage(chats=[chat.id]))

    got = await client.get_messages(channel, ids=[posted.id, reply.id])
    fake.post(chat, "Bold live", **fields)

    first, second = got
    assert (first.text, first.raw_text, first.post_author, first.views, first.forwards) == (
        "**Bold** caption",
        "Bold caption",
        "Editor",
        10,
        2,
    )
    assert first.photo.id == 42 and first.grouped_id == 777 and first.via_bot_id == bot.id
    assert first.fwd_from.from_id == types.PeerUser(fake.default_user.id)
    assert second.reply_to.reply_to_msg_id == posted.id
    await wait_until(lambda: len(seen) == 1)
    live = seen[0].message
    assert (live.photo.id, live.grouped_id, live.entities) == (42, 777, fields["entities"])


async def test_get_messages_by_ids_keeps_positions_for_deleted_ids(fake: FakeTelegram, connect: Connect) -> None:
    """channels.GetMessages answers MessageEmpty for deleted ids, which Telethon turns into None in place."""
    fake.omit_fraction = 0  # about deleted ids: random omission of existing ones is tested on its own
    channel = fake.add_channel("Feed")
    fake.post_many(channel, 10)
    fake.delete(channel, [5])
    client = await connect()

    got = await client.get_messages(channel, ids=[4, 5, 6])

    assert [m.id if m else None for m in got] == [4, None, 6]


async def test_omitted_missing_ids_shift_telethons_positional_pairing(fake: FakeTelegram, connect: Connect) -> None:
    """With omit_missing_messages, a deleted id is left out and Telethon returns a shorter list."""
    fake.omit_missing_messages = True
    fake.omit_fraction = 0  # about deleted ids: random omission of existing ones is tested on its own
    channel = fake.add_channel("Feed")
    fake.post_many(channel, 10)
    fake.delete(channel, [5])
    client = await connect()

    got = await client.get_messages(channel, ids=[4, 5, 6])

    assert [m.id for m in got] == [4, 6]


# Live updates


async def test_live_message_triggers_new_message_in_channel_and_basic_group(
    fake: FakeTelegram, connect: Connect
) -> None:
    """A posted message reaches events.NewMessage, for channels and for basic groups (updateShortChatMessage)."""
    channel = fake.add_channel("Super", megagroup=True)
    chat = fake.add_chat("Basic")
    client = await connect()
    seen = _collector(client, events.NewMessage())

    in_channel = fake.post(channel, "to the supergroup")
    in_chat = fake.post(chat, "to the basic group")

    await wait_until(lambda: len(seen) == 2)
    by_chat = {ev.chat_id: ev.message for ev in seen}
    assert by_chat[fake.peer_id(channel)].id == in_channel.id
    assert by_chat[fake.peer_id(chat)].id == in_chat.id
    assert by_chat[fake.peer_id(chat)].text == "to the basic group"
    assert by_chat[fake.peer_id(channel)].sender_id == fake.default_user.id


async def test_edit_triggers_message_edited(fake: FakeTelegram, connect: Connect) -> None:
    """edit() pushes an edit update that Telethon delivers as events.MessageEdited with the new text."""
    channel = fake.add_channel("Super", megagroup=True)
    msg = fake.post(channel, "before")
    client = await connect()
    seen = _collector(client, events.MessageEdited())

    fake.edit(channel, msg.id, "after")

    await wait_until(lambda: len(seen) == 1)
    assert seen[0].message.id == msg.id
    assert seen[0].message.text == "after"
    assert seen[0].message.edit_date is not None


async def test_delete_triggers_message_deleted(fake: FakeTelegram, connect: Connect) -> None:
    """delete() pushes deletions; channel deletions carry the chat id, basic-group ones do not."""
    channel = fake.add_channel("Super", megagroup=True)
    chat = fake.add_chat("Basic")
    kept = fake.post_many(channel, 3)
    in_chat = fake.post(chat, "soon gone")
    client = await connect()
    seen = _collector(client, events.MessageDeleted())

    fake.delete(channel, [kept[0].id, kept[2].id])
    fake.delete(chat, [in_chat.id])

    await wait_until(lambda: len(seen) == 2)
    assert seen[0].deleted_ids == [kept[0].id, kept[2].id]
    assert seen[0].chat_id == fake.peer_id(channel)
    assert seen[1].deleted_ids == [in_chat.id]
    assert seen[1].chat_id is None


# Gap recovery


async def test_dropped_channel_update_is_fetched_by_telethon_via_get_channel_difference(
    fake: FakeTelegram, connect: Connect
) -> None:
    """A lost channel update leaves a pts gap that Telethon fills itself with GetChannelDifference."""
    channel = fake.add_channel("Super", megagroup=True)
    client = await connect()
    seen = _collector(client, events.NewMessage())
    first = fake.post(channel, "seen live")  # Telethon learns the channel's pts from this one
    await wait_until(lambda: len(seen) == 1)

    lost = fake.post(channel, "never pushed", push=False)
    after = fake.post(channel, "reveals the gap")

    await wait_until(lambda: len(seen) == 3)
    assert [ev.message.id for ev in seen] == [first.id, lost.id, after.id]
    assert fake.count("updates.GetChannelDifferenceRequest") == 1


async def test_dropped_account_update_is_fetched_by_telethon_via_get_difference(
    fake: FakeTelegram, connect: Connect
) -> None:
    """A lost basic-group update leaves an account pts gap that Telethon fills with GetDifference."""
    chat = fake.add_chat("Basic")
    client = await connect()
    seen = _collector(client, events.NewMessage())

    fake.faults.drop_next_updates(1)
    lost = fake.post(chat, "dropped on the way")
    after = fake.post(chat, "reveals the gap")

    await wait_until(lambda: len(seen) == 2)
    assert sorted(ev.message.id for ev in seen) == [lost.id, after.id]
    assert fake.count("updates.GetDifferenceRequest") == 2  # one at login, one for the gap


async def test_randomly_dropped_updates_in_a_burst_are_all_recovered(fake: FakeTelegram, connect: Connect) -> None:
    """With 40 % of live updates dropped, Telethon's gap recovery still delivers every message of a burst."""
    channel = fake.add_channel("Super", megagroup=True)
    client = await connect()
    seen = _collector(client, events.NewMessage())
    fake.post(channel, "pts anchor")
    await wait_until(lambda: len(seen) == 1)

    fake.faults.drop_updates(0.4, seed=3)
    burst = fake.burst(channel, 30)
    fake.faults.clear()
    closer = fake.post(channel, "last")  # a gap at the very end needs one more update to show

    await wait_until(lambda: {ev.message.id for ev in seen} >= {m.id for m in [*burst, closer]})
    assert fake.faults.dropped_updates > 0


async def test_edits_and_deletions_recovered_by_difference_are_not_dispatched(
    fake: FakeTelegram, connect: Connect
) -> None:
    """Lost edit/delete updates come back in ChannelDifference.other_updates, but Telethon drops them.

    Telethon 1.45 sets the channel pts to the difference's pts before processing other_updates, so
    every one of them looks already handled; only new messages reach the handlers.
    """
    channel = fake.add_channel("Super", megagroup=True)
    client = await connect()
    new = _collector(client, events.NewMessage())
    edited = _collector(client, events.MessageEdited())
    deleted = _collector(client, events.MessageDeleted())
    first, second = fake.post(channel, "one"), fake.post(channel, "two")
    await wait_until(lambda: len(new) == 2)

    fake.edit(channel, first.id, "one, edited", push=False)
    fake.delete(channel, [second.id], push=False)
    after = fake.post(channel, "reveals the gap")

    await wait_until(lambda: len(new) == 3)
    await wait_until(lambda: channel.id not in client._message_box.getting_diff_for)
    assert new[-1].message.id == after.id
    assert fake.response_log[-1] == ("updates.GetChannelDifferenceRequest", "ChannelDifference")
    assert (edited, deleted) == ([], [])


async def test_gap_larger_than_the_difference_limit_loses_the_messages_in_telethon(
    fake: FakeTelegram, connect: Connect
) -> None:
    """Over 100 missed channel updates: ChannelDifferenceTooLong, and Telethon delivers none of them.

    Telethon does not end the difference on TooLong, so it asks once more at once (and gets Empty).
    """
    channel = fake.add_channel("Super", megagroup=True)
    client = await connect()
    seen = _collector(client, events.NewMessage())
    fake.post(channel, "pts anchor")
    await wait_until(lambda: len(seen) == 1)

    fake.post_many(channel, 150)
    fake.post(channel, "reveals the gap")

    await wait_until(lambda: fake.count("updates.GetChannelDifferenceRequest") == 2)
    await wait_until(lambda: channel.id not in client._message_box.getting_diff_for)
    answers = [answer for key, answer in fake.response_log if key == "updates.GetChannelDifferenceRequest"]
    assert answers == ["ChannelDifferenceTooLong", "ChannelDifferenceEmpty"]
    assert client._message_box.map[channel.id].pts == fake.pts_of(channel)
    assert len(seen) == 1  # neither the 150 nor the message that revealed the gap arrive


async def test_reconnect_after_network_loss_then_gap_recovery(fake: FakeTelegram, connect: Connect) -> None:
    """After the network drops, Telethon reconnects by itself; missed posts arrive once a gap shows."""
    channel = fake.add_channel("Super", megagroup=True)
    client = await connect()
    seen = _collector(client, events.NewMessage())
    fake.post(channel, "before the outage")
    await wait_until(lambda: len(seen) == 1)

    fake.set_online(False)
    assert not fake.is_connected(client)
    missed = fake.post(channel, "while offline")  # nobody is connected: not pushed
    fake.set_online(True)
    await wait_until(lambda: fake.is_connected(client))
    after = fake.post(channel, "after the outage")

    await wait_until(lambda: len(seen) == 3)
    assert [ev.message.id for ev in seen[1:]] == [missed.id, after.id]
    assert client.is_connected()


async def test_after_reconnect_telethon_waits_for_catch_up_to_fetch_missed_posts(
    fake: FakeTelegram, connect: Connect
) -> None:
    """Telethon's auto-reconnect only calls get_me; client.catch_up() then fetches what was missed.

    catch_up asks updates.GetDifference, whose updateChannelTooLong makes Telethon ask the channel.
    """
    channel = fake.add_channel("Super", megagroup=True)
    client = await connect()
    seen = _collector(client, events.NewMessage())
    fake.post(channel, "before the outage")
    await wait_until(lambda: len(seen) == 1)
    get_users_before = fake.count("users.GetUsersRequest")

    fake.disconnect(client)
    missed = fake.post(channel, "while disconnected")
    await wait_until(lambda: fake.count("users.GetUsersRequest") > get_users_before)  # the reconnect hook
    assert len(seen) == 1

    await client.catch_up()

    await wait_until(lambda: len(seen) == 2)
    assert seen[1].message.id == missed.id
    assert fake.count("updates.GetChannelDifferenceRequest") == 1


async def test_refused_reconnects_end_with_a_disconnected_client(fake: FakeTelegram, connect: Connect) -> None:
    """When every reconnect attempt is refused, Telethon gives up and `disconnected` raises ConnectionError."""
    client = await connect(connection_retries=1)

    fake.disconnect(client, refuse=100)

    with pytest.raises(ConnectionError):
        await client.disconnected
    assert not client.is_connected()


# Faults on requests


async def test_flood_wait_below_threshold_is_slept_through_by_telethon(fake: FakeTelegram, connect: Connect) -> None:
    """FLOOD_WAIT_1 with flood_sleep_threshold=60: Telethon sleeps 1 s and retries by itself."""
    channel = fake.add_channel("Feed")
    fake.post_many(channel, 50)
    client = await connect(flood_sleep_threshold=60)
    fake.faults.flood_wait("messages.GetHistoryRequest", 1)

    started = time.monotonic()
    got = await client.get_messages(channel, limit=20)

    assert len(got) == 20
    assert time.monotonic() - started >= 0.9  # the event loop may wake a tick early
    assert fake.count("GetHistoryRequest") == 2
    assert [f.message for f in fake.faults.fired] == ["FLOOD_WAIT_1"]


async def test_flood_wait_above_threshold_raises_and_is_remembered_client_side(
    fake: FakeTelegram, connect: Connect
) -> None:
    """FLOOD_WAIT_120 over the threshold raises FloodWaitError(seconds=120); Telethon then refuses retries locally."""
    channel = fake.add_channel("Feed")
    fake.post_many(channel, 50)
    client = await connect(flood_sleep_threshold=60)
    fake.faults.flood_wait(functions.messages.GetHistoryRequest, 120)

    with pytest.raises(errors.FloodWaitError) as raised:
        await client.get_messages(channel, limit=20)
    assert raised.value.seconds == 120

    # The retry never reaches Telegram: Telethon remembers the wait against the real clock.
    with pytest.raises(errors.FloodWaitError):
        await client.get_messages(channel, limit=20)
    assert fake.count("GetHistoryRequest") == 1

    FakeTelegram.forget_flood_waits(client)  # what a test with a fake clock does after "sleeping"
    assert len(await client.get_messages(channel, limit=20)) == 20


async def test_scripted_rpc_error_reaches_the_caller_as_telethons_exception(
    fake: FakeTelegram, connect: Connect
) -> None:
    """rpc_error() answers with an RPC error that Telethon maps to its own exception class."""
    channel = fake.add_channel("Feed")
    client = await connect()
    fake.faults.rpc_error("GetHistoryRequest", "CHANNEL_INVALID", when=lambda r: r.limit == 7)

    assert len(await client.get_messages(channel, limit=5)) == 1  # the predicate does not match
    with pytest.raises(errors.ChannelInvalidError):
        await client.get_messages(channel, limit=7)


async def test_channel_private_after_revoke_access(fake: FakeTelegram, connect: Connect) -> None:
    """After revoke_access, history requests raise ChannelPrivateError and the dialog disappears."""
    channel = fake.add_channel("Secret", username="secret")
    fake.post_many(channel, 5)
    client = await connect()
    entity = await client.get_entity("@secret")

    fake.revoke_access(channel)

    with pytest.raises(errors.ChannelPrivateError):
        await client.get_messages(entity, limit=10)
    assert [d.name async for d in client.iter_dialogs()] == []


async def test_migration_creates_service_messages_and_a_new_supergroup(fake: FakeTelegram, connect: Connect) -> None:
    """migrate() leaves MigrateTo in the basic group and starts the supergroup at id 1 with MigrateFrom."""
    chat = fake.add_chat("Growing")
    fake.post(chat, "old history")
    client = await connect()

    channel = fake.migrate(chat)

    old = await client.get_messages(chat, limit=1)
    assert isinstance(old[0].action, types.MessageActionChatMigrateTo)
    assert old[0].action.channel_id == channel.id
    new = [m async for m in client.iter_messages(channel, reverse=True, wait_time=0)]
    assert [m.id for m in new] == [1]
    assert isinstance(new[0].action, types.MessageActionChannelMigrateFrom)
    assert new[0].action.chat_id == chat.id
    full_chat = await client(functions.messages.GetFullChatRequest(chat.id))
    assert full_chat.chats[0].migrated_to.channel_id == channel.id
    full = await client(functions.channels.GetFullChannelRequest(channel))
    assert full.full_chat.migrated_from_chat_id == chat.id
    assert full.full_chat.migrated_from_max_id == old[0].id


async def test_unknown_request_fails_with_an_error_naming_it(fake: FakeTelegram, connect: Connect) -> None:
    """A request the fake does not implement raises UnsupportedRequestError with the request's name."""
    client = await connect()

    with pytest.raises(UnsupportedRequestError, match=r"messages\.GetAllStickersRequest"):
        await client(functions.messages.GetAllStickersRequest(hash=0))
    assert fake.unsupported_requests == ["messages.GetAllStickersRequest"]
    fake.unsupported_requests.clear()  # expected here; the fixture fails tests that leave any


# Sessions and several clients


async def test_a_restarted_client_resumes_the_saved_session(fake: FakeTelegram, connect: Connect) -> None:
    """A second client built from the first one's StringSession is logged in on the same world."""
    channel = fake.add_channel("Feed", username="feed")
    first = await connect()
    saved = first.session.save()
    await first.disconnect()

    fake.post(channel, "while the first client was down")
    second = fake.client(saved, retry_delay=0)
    await second.connect()
    try:
        assert (await second.get_me()).id == fake.me.id
        assert (await second.get_messages("@feed", limit=1))[0].text == "while the first client was down"
    finally:
        await second.disconnect()


async def test_every_connected_client_receives_live_updates(fake: FakeTelegram, connect: Connect) -> None:
    """All sessions of the account get the account's updates."""
    channel = fake.add_channel("Super", megagroup=True)
    seen_a = _collector(await connect(), events.NewMessage())
    seen_b = _collector(await connect(), events.NewMessage())

    fake.post(channel, "to everyone")

    await wait_until(lambda: len(seen_a) == len(seen_b) == 1)


async def test_duplicate_session_use_revokes_the_key(fake: FakeTelegram, connect: Connect) -> None:
    """With detect_duplicate_sessions, a second live connection on one key gets AUTH_KEY_DUPLICATED."""
    fake.detect_duplicate_sessions = True
    first = await connect()
    twin = fake.client(first.session.save(), retry_delay=0)

    with pytest.raises(errors.AuthKeyDuplicatedError):
        await twin.connect()
    await twin.disconnect()
    with pytest.raises(errors.AuthKeyDuplicatedError):
        await first.get_me()


async def test_without_roundtrip_clients_still_work() -> None:
    """roundtrip=False hands objects over without bytes; pagination and updates behave the same."""
    fake = FakeTelegram(roundtrip=False)
    channel = fake.add_channel("Feed")
    fake.post_many(channel, 150)
    client = fake.client()
    await client.connect()
    try:
        seen = _collector(client, events.NewMessage())
        ids = [m.id async for m in client.iter_messages(channel, reverse=True, wait_time=0)]
        assert ids == fake.message_ids(channel)
        fake.post(channel, "live")
        await wait_until(lambda: len(seen) == 1)
    finally:
        await client.disconnect()


async def test_duplicate_session_detection_is_on_by_default() -> None:
    """Without being asked, the world revokes a key that two live connections use (AUTH_KEY_DUPLICATED)."""
    fake = FakeTelegram()
    first = fake.client(retry_delay=0)
    await first.connect()
    twin = fake.client(first.session.save(), retry_delay=0)
    try:
        with pytest.raises(errors.AuthKeyDuplicatedError):
            await twin.connect()
        with pytest.raises(errors.AuthKeyDuplicatedError):
            await first.get_messages("me", limit=1)
    finally:
        await twin.disconnect()
        await first.disconnect()


def test_client_defaults_to_the_production_settings(fake: FakeTelegram) -> None:
    """fake.client() builds the client as production does; a keyword argument still wins."""
    client = fake.client()
    overridden = fake.client(retry_delay=0, connection_retries=3)

    assert (client.flood_sleep_threshold, client._no_updates) == (60, False)
    assert (client._connection_retries, client._retry_delay) == (-1, 2)
    assert (client._sender._retries, client._sender._delay) == (-1, 2)
    assert (overridden._connection_retries, overridden._retry_delay) == (3, 0)


# Flood limits


def test_rate_limiter_announces_waits_until_a_token_and_escalates_when_not_waited() -> None:
    """A drained bucket answers the seconds until the next token; sending during the wait doubles what is left."""
    limiter = RateLimiter(RateLimits({"contacts.ResolveUsername": Bucket(2, 1 / 60)}))
    key = "contacts.ResolveUsernameRequest"

    assert [limiter.admit(key, 0.0) for _ in range(2)] == [None, None]
    assert limiter.admit(key, 0.0) == 60
    assert limiter.admit(key, 10.0) == 100  # 50 s were left: doubled
    assert limiter.admit(key, 109.5) == 2  # 0.5 s were left: at least one second more, rounded up
    assert limiter.admit(key, 111.5) is None  # waited out; 1.86 tokens have come back over 111.5 s
    assert limiter.admit(key, 111.5) == 9  # 0.86 left: 8.5 s until the next whole token
    assert (limiter.flood_waits[key], limiter.sent_during_wait[key]) == (4, 2)
    assert limiter.admit("PingRequest", 0.0) is None


def test_escalation_stops_at_the_longest_wait() -> None:
    """A client that never waits is held at `max_wait`, not pushed towards infinity."""
    limiter = RateLimiter(RateLimits({"messages.GetHistory": Bucket(1, 1.0)}, max_wait=3_600))
    key = "messages.GetHistoryRequest"
    limiter.admit(key, 0.0)

    waits = [limiter.admit(key, i / 1000) for i in range(2_000)]

    assert waits[0] == 1
    assert max(w or 0 for w in waits) == waits[-1] == 3_600


def test_telegram_like_limits_name_the_strict_methods_and_never_pings() -> None:
    """TELEGRAM_LIKE limits the heavy methods hardest, everything else by a default, and never a ping."""
    assert TELEGRAM_LIKE.bucket_for("messages.GetHistoryRequest") == Bucket(20, 1.0)
    assert TELEGRAM_LIKE.bucket_for("messages.GetHistory") == Bucket(20, 1.0)
    assert TELEGRAM_LIKE.bucket_for("contacts.ResolveUsernameRequest") == Bucket(10, 1 / 60)
    assert TELEGRAM_LIKE.bucket_for("channels.JoinChannelRequest") == Bucket(5, 1 / 120)
    assert TELEGRAM_LIKE.bucket_for("help.GetConfigRequest") == Bucket(50, 10.0)
    assert TELEGRAM_LIKE.bucket_for("PingRequest") is None
    assert TELEGRAM_LIKE.bucket_for("PingDelayDisconnectRequest") is None


async def _history(client: TelegramClient, channel: Any) -> Any:
    return await client(
        functions.messages.GetHistoryRequest(
            peer=channel, offset_id=0, offset_date=None, add_offset=0, limit=1, max_id=0, min_id=0, hash=0
        )
    )


async def test_a_history_burst_over_the_bucket_gets_flood_wait_from_the_fake(
    fake: FakeTelegram, clock: ScriptedClock, connect: Connect
) -> None:
    """The 21st GetHistory at once raises FloodWaitError(seconds=1); Telethon remembers the wait in real time."""
    channel = fake.add_channel("Feed")
    client = await connect(flood_sleep_threshold=0)
    clock.freeze()

    for _ in range(20):
        await _history(client, channel)
    before = time.time()
    with pytest.raises(errors.FloodWaitError) as raised:
        await _history(client, channel)

    assert raised.value.seconds == 1
    assert fake.flood_waits == {"messages.GetHistoryRequest": 1}
    assert ("messages.GetHistoryRequest", "rpc_error 420 FLOOD_WAIT_1") in fake.response_log
    due = client._flood_waited_requests[functions.messages.GetHistoryRequest.CONSTRUCTOR_ID]
    assert before + 1 <= due <= time.time() + 1  # Telethon's memory is on time.time(), not the fake's clock
    assert fake.max_requests("messages.GetHistory", 1.0) == 21
    clock.advance(1)
    assert (await _history(client, channel)).count == 1  # Telethon lets waits under 3 s through at once


async def test_telethon_sleeps_a_short_bucket_wait_itself_with_the_production_threshold(
    fake: FakeTelegram, connect: Connect
) -> None:
    """With flood_sleep_threshold=60 the bucket's FLOOD_WAIT_1 is slept through and the call succeeds."""
    channel = fake.add_channel("Feed")
    client = await connect()

    started = time.monotonic()
    for _ in range(21):
        await _history(client, channel)

    assert time.monotonic() - started >= 0.9  # one real second of Telethon's own sleep
    assert fake.flood_waits["messages.GetHistoryRequest"] == 1
    assert fake.count("messages.GetHistory") == 22


async def test_resolve_username_is_the_strictest_and_waiting_less_makes_the_wait_longer(
    fake: FakeTelegram, clock: ScriptedClock, connect: Connect
) -> None:
    """The 11th ResolveUsername waits 60 s; asking again 10 s in doubles the 50 s left; waiting it out works."""
    fake.add_channel("News", username="news")
    client = await connect(flood_sleep_threshold=0)
    clock.freeze()
    resolve = functions.contacts.ResolveUsernameRequest("news")
    for _ in range(10):
        await client(resolve)

    with pytest.raises(errors.FloodWaitError) as first:
        await client(resolve)
    clock.advance(10)
    FakeTelegram.forget_flood_waits(client)  # else Telethon refuses locally: the point is the server's answer
    with pytest.raises(errors.FloodWaitError) as second:
        await client(resolve)
    clock.advance(100)
    FakeTelegram.forget_flood_waits(client)

    assert (first.value.seconds, second.value.seconds) == (60, 100)
    assert fake.sent_during_wait == {"contacts.ResolveUsernameRequest": 1}
    assert isinstance(await client(resolve), types.contacts.ResolvedPeer)


async def test_dialog_pages_wait_about_25_seconds_after_the_first_three(
    fake: FakeTelegram, clock: ScriptedClock, connect: Connect
) -> None:
    """messages.GetDialogs allows three pages at once, then one per 25 s."""
    for i in range(350):
        fake.add_channel(f"Group {i}", megagroup=True)
    client = await connect(flood_sleep_threshold=0)
    clock.freeze()

    with pytest.raises(errors.FloodWaitError) as raised:
        _ = [d async for d in client.iter_dialogs()]

    assert raised.value.seconds == 25
    assert fake.count("messages.GetDialogs") == 4


async def test_pings_are_never_limited_and_other_calls_share_the_default_bucket(
    fake: FakeTelegram, clock: ScriptedClock, connect: Connect
) -> None:
    """A hundred pings pass; the 51st help.GetConfig in an instant waits (default bucket 50, 10/s)."""
    client = await connect(flood_sleep_threshold=0)
    clock.freeze()
    fake.reset_counters()

    for i in range(100):
        await client(functions.PingRequest(ping_id=i))
    for _ in range(49):  # the connect already took one token
        await client(functions.help.GetConfigRequest())
    with pytest.raises(errors.FloodWaitError) as raised:
        await client(functions.help.GetConfigRequest())

    assert raised.value.seconds == 1
    assert fake.flood_waits == {"help.GetConfigRequest": 1}
    assert fake.max_requests("PingRequest", 0.001) == 100


async def test_scripted_faults_fire_before_the_limits(
    fake: FakeTelegram, clock: ScriptedClock, connect: Connect
) -> None:
    """A scripted error is answered even when the bucket is empty (it is not replaced by FLOOD_WAIT)."""
    channel = fake.add_channel("Feed")
    client = await connect(flood_sleep_threshold=0)
    clock.freeze()
    for _ in range(20):
        await _history(client, channel)
    fake.faults.rpc_error("messages.GetHistory", "CHANNEL_INVALID")

    with pytest.raises(errors.ChannelInvalidError):
        await _history(client, channel)
    with pytest.raises(errors.FloodWaitError):
        await _history(client, channel)


async def test_without_rate_limits_nothing_waits(clock: ScriptedClock) -> None:
    """rate_limits=None switches the buckets off: a hundred history calls at one instant all succeed."""
    fake = FakeTelegram(rate_limits=None, monotonic=clock)
    channel = fake.add_channel("Feed")
    clock.freeze()
    client = fake.client(flood_sleep_threshold=0)
    await client.connect()
    try:
        for _ in range(100):
            await _history(client, channel)
    finally:
        await client.disconnect()
    assert fake.flood_waits == {}
    assert fake.max_requests(functions.messages.GetHistoryRequest, 0.001) == 100


async def test_reset_counters_clears_the_limit_logs_but_not_the_buckets(
    fake: FakeTelegram, clock: ScriptedClock, connect: Connect
) -> None:
    """reset_counters forgets request times, flood-wait counts and omissions; an empty bucket stays empty."""
    channel = fake.add_channel("Feed")
    client = await connect(flood_sleep_threshold=0)
    clock.freeze()
    for _ in range(20):
        await _history(client, channel)
    with pytest.raises(errors.FloodWaitError):
        await _history(client, channel)

    fake.reset_counters()

    assert (fake.request_times, fake.flood_waits, fake.sent_during_wait, fake.omitted_ids) == ([], {}, {}, [])
    FakeTelegram.forget_flood_waits(client)
    with pytest.raises(errors.FloodWaitError):
        await _history(client, channel)
    assert fake.sent_during_wait == {"messages.GetHistoryRequest": 1}


def test_max_requests_counts_the_busiest_sliding_window(clock: ScriptedClock) -> None:
    """max_requests is the most requests of a kind in any window of the given length."""
    fake = FakeTelegram(monotonic=clock)
    fake.request_times = [(t, "messages.GetHistoryRequest") for t in (0.0, 0.5, 0.9, 1.0, 1.4, 5.0)]
    fake.request_times.append((0.6, "PingRequest"))
    fake.request_times.sort()

    assert fake.max_requests("messages.GetHistory", 1.0) == 4  # 0.5, 0.9, 1.0, 1.4
    assert fake.max_requests("messages.GetHistory", 0.01) == 1
    assert fake.max_requests(None, 1.0) == 5


# Omitted ids


async def test_get_messages_leaves_out_existing_ids_and_a_retry_may_get_them(
    fake: FakeTelegram, connect: Connect
) -> None:
    """channels.GetMessages omits existing messages at random: Telethon returns fewer, matched by id only."""
    fake.omit_fraction = 0.3
    channel = fake.add_channel("Feed")
    fake.post_many(channel, 60)
    client = await connect()
    asked = list(range(2, 52))

    first = await client.get_messages(channel, ids=asked)
    omitted = [i for peer, i in fake.omitted_ids if peer == fake.peer_id(channel)]
    second = await client.get_messages(channel, ids=omitted)

    got = [m.id for m in first if m is not None]
    assert 0 < len(omitted) < len(asked)
    assert sorted(got + omitted) == asked
    assert len(first) == len(asked) - len(omitted)  # one entry per message returned, not per id asked
    assert {m.id for m in second if m is not None} & set(omitted)


async def test_basic_group_get_messages_omits_too(fake: FakeTelegram, connect: Connect) -> None:
    """messages.GetMessages (basic groups, private chats) leaves out existing ids like channels do."""
    fake.omit_fraction = 0.5
    chat = fake.add_chat("Basic")
    posted = [fake.post(chat, f"m{i}", push=False).id for i in range(30)]
    client = await connect()

    got = await client.get_messages(chat, ids=posted)

    returned = [m.id for m in got if m is not None]
    assert sorted(returned + [i for _, i in fake.omitted_ids]) == posted
    assert fake.omitted_ids and all(peer == fake.peer_id(chat) for peer, _ in fake.omitted_ids)


# Spells of server errors


async def test_a_spell_longer_than_telethons_retries_raises_and_ends_on_the_fakes_clock(
    fake: FakeTelegram, clock: ScriptedClock, connect: Connect
) -> None:
    """A 20 s RPC_CALL_FAIL spell outlasts Telethon's 5 retries (2 s apart): ValueError; after it, success."""
    channel = fake.add_channel("Feed")
    fake.post_many(channel, 5)
    client = await connect()
    started = clock()
    fake.faults.spell(functions.messages.GetHistoryRequest, 20)

    with pytest.raises(ValueError, match=r"^Request was unsuccessful 6 time\(s\)$"):
        await client.get_messages(channel, limit=5)

    assert clock() - started < 20  # gave up inside the spell
    assert [f.message for f in fake.faults.fired] == ["RPC_CALL_FAIL"] * 6
    assert len(await client.get_messages(fake.me, limit=1)) == 0  # other requests are not in the spell
    clock.advance(20)
    assert len(await client.get_messages(channel, limit=5)) == 5


@pytest.mark.parametrize(
    ("message", "code", "raised"),
    [
        ("Timeout", -503, errors.TimedOutError),
        ("INTERNAL", 500, errors.ServerError),
        ("RPC_CALL_FAIL", 500, errors.RpcCallFailError),
    ],
)
async def test_spell_errors_map_to_telethons_server_errors(
    fake: FakeTelegram, connect: Connect, message: str, code: int, raised: type[Exception]
) -> None:
    """Each kind of spell reaches the caller as Telethon's own class once its retries are spent."""
    client = await connect(request_retries=0, raise_last_call_error=True)
    fake.faults.spell(None, 60, message=message, code=code)

    with pytest.raises(raised):
        await client.get_messages(fake.me, limit=1)
    await client(functions.PingRequest(ping_id=1))  # pings and the config stay out of an all-request spell
    await client(functions.help.GetConfigRequest())


# Too long


async def test_150_dropped_updates_then_one_delivered_lose_everything_in_telethon(
    fake: FakeTelegram, connect: Connect
) -> None:
    """Over the difference limit, getChannelDifference answers TooLong and Telethon returns none of the missed."""
    channel = fake.add_channel("Super", megagroup=True)
    client = await connect()
    seen = _collector(client, events.NewMessage())
    fake.post(channel, "pts anchor")
    await wait_until(lambda: len(seen) == 1)

    fake.faults.drop_next_updates(150)
    fake.burst(channel, 150)
    fake.post(channel, "delivered, reveals the gap")

    await wait_until(lambda: fake.count("updates.GetChannelDifference") >= 1)
    await wait_until(lambda: channel.id not in client._message_box.getting_diff_for)
    answers = [answer for key, answer in fake.response_log if key == "updates.GetChannelDifferenceRequest"]
    assert answers[0] == "ChannelDifferenceTooLong"
    assert fake.faults.dropped_updates == 150
    assert len(seen) == 1


async def test_channel_too_long_makes_telethon_ask_and_a_small_limit_makes_it_too_long(
    clock: ScriptedClock,
) -> None:
    """updateChannelTooLong makes Telethon ask: under channel_difference_limit it gets messages, past it TooLong."""
    fake = FakeTelegram(monotonic=clock, channel_difference_limit=5)
    channel = fake.add_channel("Super", megagroup=True)
    client = fake.client(retry_delay=0)
    await client.connect()
    try:
        seen = _collector(client, events.NewMessage())
        fake.post(channel, "pts anchor")
        await wait_until(lambda: len(seen) == 1)

        quiet = [fake.post(channel, f"quiet {i}", push=False) for i in range(3)]
        fake.push_channel_too_long(channel)
        await wait_until(lambda: len(seen) == 4)
        fake.post_many(channel, 6)
        fake.push_channel_too_long(channel)
        await wait_until(lambda: fake.count("updates.GetChannelDifference") >= 2)
        await wait_until(lambda: channel.id not in client._message_box.getting_diff_for)
    finally:
        await client.disconnect()
    answers = [answer for key, answer in fake.response_log if key == "updates.GetChannelDifferenceRequest"]
    assert [ev.message.id for ev in seen[1:]] == [m.id for m in quiet]
    assert answers[:2] == ["ChannelDifference", "ChannelDifferenceTooLong"]
    assert len(seen) == 4


# Channels the account has not joined


async def test_an_unjoined_public_channel_is_readable_but_sends_no_updates(
    fake: FakeTelegram, connect: Connect
) -> None:
    """joined=False: the Channel is left, not a dialog, its history reads, and its posts are not pushed."""
    public = fake.add_channel("Public", username="public", joined=False)
    joined = fake.add_channel("Joined", megagroup=True)
    fake.post_many(public, 5)
    client = await connect()
    seen = _collector(client, events.NewMessage())

    entity = await client.get_entity("@public")
    history = [m.id async for m in client.iter_messages(entity, reverse=True, wait_time=0)]
    fake.post(public, "not pushed")
    marker = fake.post(joined, "pushed")

    await wait_until(lambda: len(seen) == 1)
    assert seen[0].message.id == marker.id
    assert entity.left
    assert history == list(range(1, 7))
    assert [d.name async for d in client.iter_dialogs()] == ["Joined"]
    assert not fake.is_joined(public)


async def test_an_unjoined_private_channel_answers_channel_private(fake: FakeTelegram, connect: Connect) -> None:
    """Without a username an unjoined channel cannot be read or joined: CHANNEL_PRIVATE."""
    private = fake.add_channel("Private", joined=False)
    client = await connect()

    with pytest.raises(errors.ChannelPrivateError):
        await client.get_messages(private, limit=1)
    with pytest.raises(errors.ChannelPrivateError):
        await client(functions.channels.JoinChannelRequest(private))
    assert not fake.is_joined(private)


async def test_get_file_serves_parts_with_telegrams_alignment_rules(fake: FakeTelegram, connect: Connect) -> None:
    """upload.getFile returns the file's bytes part by part and refuses misaligned parts and stale references."""
    data = bytes(range(256)) * 40
    media = fake.add_file(data, mime_type="text/plain", file_name="a.txt")
    doc = media.document
    client = await connect()

    def location(reference: bytes = doc.file_reference) -> Any:
        return types.InputDocumentFileLocation(doc.id, doc.access_hash, reference, thumb_size="")

    first = await client(functions.upload.GetFileRequest(location(), offset=0, limit=4096))
    rest = await client(functions.upload.GetFileRequest(location(), offset=4096, limit=8192))
    assert first.bytes + rest.bytes == data
    assert await client.download_media(media, file=bytes) == data
    bad = [
        (location(b"old"), 0, 4096, errors.FileReferenceExpiredError),
        (location(), 100, 4096, errors.OffsetInvalidError),
        (location(), 0, 5000, errors.LimitInvalidError),
        (location(), (1 << 20) - 4096, 8192, errors.LimitInvalidError),  # crosses a 1 MB boundary
        (types.InputDocumentFileLocation(doc.id + 1, 0, b"", ""), 0, 4096, errors.LocationInvalidError),
    ]
    for loc, offset, limit, error in bad:
        with pytest.raises(error):
            await client(functions.upload.GetFileRequest(loc, offset=offset, limit=limit))


async def test_invite_links_preview_and_join(fake: FakeTelegram, connect: Connect) -> None:
    """checkChatInvite previews a group the account is not in and shows it once joined by importChatInvite."""
    family = fake.add_chat("Family")
    secret = fake.add_channel("Secret", joined=False)
    client = await connect()
    invite = fake.invite_link(secret).rsplit("+", 1)[1]
    preview = await client(functions.messages.CheckChatInviteRequest(invite))
    assert isinstance(preview, types.ChatInvite)
    assert (preview.title, preview.channel, preview.broadcast, preview.public) == ("Secret", True, True, False)
    assert not fake.is_joined(secret)
    joined = await client(functions.messages.ImportChatInviteRequest(invite))
    assert isinstance(joined, types.Updates) and fake.is_joined(secret)
    already = await client(functions.messages.CheckChatInviteRequest(invite))
    assert isinstance(already, types.ChatInviteAlready) and already.chat.id == secret.id
    with pytest.raises(errors.UserAlreadyParticipantError):
        await client(functions.messages.ImportChatInviteRequest(invite))
    family_invite = fake.invite_link(family).rsplit("+", 1)[1]
    assert isinstance(await client(functions.messages.CheckChatInviteRequest(family_invite)), types.ChatInviteAlready)
    with pytest.raises(errors.InviteHashInvalidError):
        await client(functions.messages.CheckChatInviteRequest("nothing"))


async def test_join_channel_with_approval_files_a_request(fake: FakeTelegram, connect: Connect) -> None:
    """A channel with join requests answers INVITE_REQUEST_SENT and keeps the account out until approved."""
    club = fake.add_channel("Club", username="club", megagroup=True, joined=False, join_request=True)
    client = await connect()
    entity = await client.get_entity("@club")
    assert entity.join_request and entity.left
    with pytest.raises(errors.InviteRequestSentError):
        await client(functions.channels.JoinChannelRequest(entity))
    assert not fake.is_joined(club)
    fake.approve_join(club)
    assert fake.is_joined(club)
    with pytest.raises(errors.UserAlreadyParticipantError):
        await client(functions.channels.JoinChannelRequest(entity))


async def test_full_channel_names_the_linked_discussion_group_both_ways(fake: FakeTelegram, connect: Connect) -> None:
    """After link_discussion each side's getFullChannel has the other's id, its entity and the description."""
    news = fake.add_channel("News", username="news", about="All the news")
    chat = fake.add_channel("News chat", username="newschat", megagroup=True)
    fake.link_discussion(news, chat)
    client = await connect()
    full = await client(functions.channels.GetFullChannelRequest(await client.get_input_entity("@news")))
    back = await client(functions.channels.GetFullChannelRequest(await client.get_input_entity("@newschat")))
    assert (full.full_chat.linked_chat_id, full.full_chat.about) == (chat.id, "All the news")
    assert back.full_chat.linked_chat_id == news.id
    assert chat.id in [c.id for c in full.chats] and all(c.has_link for c in full.chats)
    with pytest.raises(TypeError):
        fake.link_discussion(chat, news)


async def test_join_channel_joins_and_updates_start(fake: FakeTelegram, connect: Connect) -> None:
    """channels.JoinChannel answers Updates with the joined channel; live posts then arrive; twice is an error."""
    public = fake.add_channel("Public", username="public", joined=False)
    client = await connect()
    seen = _collector(client, events.NewMessage())
    entity = await client.get_entity("@public")

    result = await client(functions.channels.JoinChannelRequest(entity))
    posted = fake.post(public, "now pushed")

    assert isinstance(result, types.Updates)
    assert [type(u) for u in result.updates] == [types.UpdateChannel]
    assert not result.chats[0].left
    assert fake.is_joined(public)
    await wait_until(lambda: len(seen) == 1)
    assert seen[0].message.id == posted.id
    assert [d.name async for d in client.iter_dialogs()] == ["Public"]
    with pytest.raises(errors.UserAlreadyParticipantError):
        await client(functions.channels.JoinChannelRequest(entity))


async def test_joining_is_rate_limited(fake: FakeTelegram, clock: ScriptedClock, connect: Connect) -> None:
    """The sixth join in a row waits two minutes (5 at once, one per 120 s)."""
    channels = [fake.add_channel(f"Public {i}", username=f"public{i}", joined=False) for i in range(6)]
    client = await connect(flood_sleep_threshold=0)
    clock.freeze()

    for channel in channels[:5]:
        await client(functions.channels.JoinChannelRequest(channel))
    with pytest.raises(errors.FloodWaitError) as raised:
        await client(functions.channels.JoinChannelRequest(channels[5]))

    assert raised.value.seconds == 120
    assert not fake.is_joined(channels[5])


# Session death


@pytest.mark.parametrize(
    ("message", "raised"),
    [
        ("SESSION_REVOKED", errors.SessionRevokedError),
        ("AUTH_KEY_UNREGISTERED", errors.AuthKeyUnregisteredError),
        ("USER_DEACTIVATED_BAN", errors.UserDeactivatedBanError),
        ("AUTH_KEY_DUPLICATED", errors.AuthKeyDuplicatedError),
    ],
)
async def test_a_session_killed_by_rpc_reconnects_and_every_request_fails(
    fake: FakeTelegram, connect: Connect, message: str, raised: type[Exception]
) -> None:
    """kill_session(how='rpc') cuts the connection; Telethon reconnects for ever, then each request raises."""
    channel = fake.add_channel("Feed")
    client = await connect()  # connection_retries=-1, as in production
    get_users = fake.count("users.GetUsers")

    assert fake.kill_session(client, "rpc", message) == 1
    await wait_until(lambda: fake.count("users.GetUsers") > get_users)  # Telethon's reconnect hook: get_me

    code = SESSION_DEATH_CODES[message]
    assert ("users.GetUsersRequest", f"rpc_error {code} {message}") in fake.response_log
    with pytest.raises(raised):
        await client.get_messages(channel, limit=1)
    assert client.is_connected()  # Telethon still "wants" to be connected
    assert fake.is_connected(client)


def test_kill_session_refuses_unknown_errors_and_modes(fake: FakeTelegram) -> None:
    """An error Telegram does not kill sessions with, or an unknown mode, is a ValueError naming it."""
    session = fake.new_session()
    with pytest.raises(ValueError, match="FLOOD_WAIT_5"):
        fake.kill_session(session, "rpc", "FLOOD_WAIT_5")
    with pytest.raises(ValueError, match="'tcp'"):
        fake.kill_session(session, "tcp")


async def test_a_session_killed_at_the_transport_ends_the_client_with_auth_key_not_found(
    fake: FakeTelegram, connect: Connect
) -> None:
    """kill_session(how='transport'): Telethon reconnects, gets -404, disconnects for good with AuthKeyNotFound."""
    channel = fake.add_channel("Feed")
    client = await connect()  # connection_retries=-1, as in production

    assert fake.kill_session(client, "transport") == 1

    with pytest.raises(errors.AuthKeyNotFound):
        await asyncio.wait_for(client.disconnected, 5)
    assert fake.transport_errors == [-404]
    assert not client.is_connected()
    assert not fake.is_connected(client)
    with pytest.raises(ConnectionError):
        await client.get_messages(channel, limit=1)


async def test_a_restart_on_a_forgotten_key_fails_to_connect(fake: FakeTelegram, connect: Connect) -> None:
    """A new client on a key the server forgot gets -404 on its first message: connect raises AuthKeyNotFound."""
    first = await connect()
    saved = first.session.save()
    await first.disconnect()
    fake.kill_session(first, "transport")
    again = fake.client(saved, retry_delay=0)

    try:
        with pytest.raises(errors.AuthKeyNotFound):
            await again.connect()
        with pytest.raises(errors.AuthKeyNotFound):
            await again.disconnected  # the sender ended for good, with the same error
        assert not again.is_connected()
    finally:
        await again.disconnect()


async def test_channel_too_long_for_a_channel_telethon_holds_no_state_for_is_dropped(
    fake: FakeTelegram, connect: Connect
) -> None:
    """updateChannelTooLong for a channel Telethon has seen no update of asks nothing: the news is lost."""
    silent = fake.add_channel("Silent", megagroup=True)
    loud = fake.add_channel("Loud", megagroup=True)
    client = await connect()
    seen = _collector(client, events.NewMessage())
    missed = fake.post(silent, "never pushed", push=False)

    fake.push_channel_too_long(silent)
    marker = fake.post(loud, "after the too-long")

    await wait_until(lambda: len(seen) == 1)
    assert seen[0].message.id == marker.id
    assert missed.id not in [ev.message.id for ev in seen if ev.chat_id == fake.peer_id(silent)]
    assert fake.count("updates.GetChannelDifference") == 0


# Albums, forum topics, channel comments


async def test_an_album_is_consecutive_messages_sharing_grouped_id_in_one_update(
    fake: FakeTelegram, connect: Connect
) -> None:
    """post_album gives consecutive ids, one grouped_id, the caption on the first; Telethon's Album event sees
    all members together (they came in one Updates)."""
    chat = fake.add_channel("Chat", username="chat", megagroup=True)
    client = await connect()
    seen = _collector(client, events.Album())
    await client.get_messages("@chat", limit=1)  # the channel is known, so its updates are applied
    album = fake.post_album(chat, [fake.add_file(b"x" * 10, photo=True) for _ in range(3)], caption="c")
    assert [m.id for m in album] == list(range(album[0].id, album[0].id + 3))
    assert {m.grouped_id for m in album} == {album[0].grouped_id}
    assert [m.message for m in album] == ["c", "", ""]
    await wait_until(lambda: len(seen) == 1)
    assert [m.id for m in seen[0].messages] == [m.id for m in album]


async def test_forum_topics_come_from_get_forum_topics_newest_activity_first(
    fake: FakeTelegram, connect: Connect
) -> None:
    """A forum answers messages.getForumTopics with General and its topics (renamed titles current), the
    topic with the latest message first, at most `limit`; a group that is no forum: CHANNEL_FORUM_MISSING."""
    forum = fake.add_channel("Forum", username="forum", megagroup=True, forum=True)
    plain = fake.add_channel("Plain", username="plain", megagroup=True)
    bugs = fake.add_topic(forum, "Bugs")
    ideas = fake.add_topic(forum, "Ideas")
    fake.post(forum, "in bugs", topic=bugs)
    fake.rename_topic(forum, ideas, "Wishes")
    in_general = fake.post(forum, "general chat", topic=1)
    assert in_general.reply_to is None
    client = await connect()
    peer = await client.get_input_entity("@forum")
    answer = await client(functions.messages.GetForumTopicsRequest(peer, None, 0, 0, 100))
    assert [(t.id, t.title) for t in answer.topics] == [(1, "General"), (ideas, "Wishes"), (bugs, "Bugs")]
    assert answer.count == 3
    one = await client(functions.messages.GetForumTopicsRequest(peer, None, 0, 0, 1))
    assert len(one.topics) == 1
    with pytest.raises(errors.ChannelForumMissingError):
        await client(functions.messages.GetForumTopicsRequest(await client.get_input_entity("@plain"), None, 0, 0, 9))
    assert plain.forum is None


async def test_channel_posts_are_forwarded_into_the_discussion_group_and_comments_thread_under_them(
    fake: FakeTelegram,
) -> None:
    """A post of a channel with a discussion group appears there as a forward naming the post; comments reply
    to that forward (a reply to a comment has the forward as its top)."""
    news = fake.add_channel("News", username="news")
    chat = fake.add_channel("News chat", username="newschat", megagroup=True)
    fake.link_discussion(news, chat)
    post = fake.post(news, "big news")
    forward = fake.messages(chat)[-1]
    assert (forward.fwd_from.saved_from_peer.channel_id, forward.fwd_from.saved_from_msg_id) == (news.id, post.id)
    assert post.replies.comments and post.replies.channel_id == chat.id
    first = fake.comment(news, post.id, "first!")
    second = fake.comment(news, post.id, "re: first", reply_to=first.id)
    assert (first.reply_to.reply_to_msg_id, first.reply_to.reply_to_top_id) == (forward.id, None)
    assert (second.reply_to.reply_to_msg_id, second.reply_to.reply_to_top_id) == (first.id, forward.id)
    assert post.replies.replies == 2
