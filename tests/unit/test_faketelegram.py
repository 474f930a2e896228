"""The fake Telegram, driven by the real Telethon TelegramClient (no network).

These tests pin down both the fake's behaviour and the Telethon 1.45 behaviour the emitter relies on
(pagination cost, gap recovery, flood-wait handling), so a Telethon upgrade that changes either shows
up here first.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from telethon import TelegramClient, errors, events, functions, types

from tests.faketelegram import FakeTelegram, UnsupportedRequestError, wait_until

Connect = Callable[..., Awaitable[TelegramClient]]


@pytest.fixture
def fake() -> FakeTelegram:
    """A fresh world per test, seeded so that random choices repeat."""
    return FakeTelegram(seed=7)


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
