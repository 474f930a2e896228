"""Reactions in the fake Telegram, and the pts the fake reports in history and differences, via the real client.

Telegram pushes a reaction change as updateMessageReactions but gives it no pts and keeps it out of the
update log: these tests pin that down, since the emitter's change capture must re-read messages to see
reactions made while it was away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from telethon import TelegramClient, events, functions, types

from emitter.clock import ScaledClock
from tests.faketelegram import FakeTelegram, wait_until

Connect = Callable[[], Awaitable[TelegramClient]]

# Ten times real time: the handful of requests here never meet a flood wait either way.
SPEED = 10
EDIT_CLOCK = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def fake() -> FakeTelegram:
    """A world with Telegram's defaults on a scaled monotonic clock, seeded so that random choices repeat."""
    return FakeTelegram(seed=7, monotonic=ScaledClock(SPEED).monotonic)


@pytest.fixture
async def connect(fake: FakeTelegram) -> AsyncIterator[Connect]:
    """Build and connect real clients on the fake; disconnect them all at the end."""
    clients: list[TelegramClient] = []

    async def _connect() -> TelegramClient:
        client = fake.client(retry_delay=0)
        await client.connect()
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        await client.disconnect()
    assert fake.unsupported_requests == [], "the client sent requests the fake does not answer"


def _collect(client: TelegramClient, event: Any) -> list[Any]:
    """Register a handler for `event` on `client` and return the list it appends events to."""
    seen: list[Any] = []

    async def handler(ev: Any) -> None:
        seen.append(ev)

    client.add_event_handler(handler, event)
    return seen


def _reaction_updates(client: TelegramClient) -> list[Any]:
    """Collect every updateMessageReactions the client dispatches (Telethon has no high-level event for it)."""
    return _collect(client, events.Raw(types.UpdateMessageReactions))


def _counts(reactions: Any) -> dict[str, int]:
    """A TL MessageReactions as emoji -> count, in Telegram's order."""
    return {r.reaction.emoticon: r.count for r in reactions.results}


async def _channel_difference(client: TelegramClient, channel: Any, pts: int) -> Any:
    return await client(
        functions.updates.GetChannelDifferenceRequest(
            channel=channel, filter=types.ChannelMessagesFilterEmpty(), pts=pts, limit=100, force=True
        )
    )


async def _history(client: TelegramClient, peer: Any) -> Any:
    return await client(
        functions.messages.GetHistoryRequest(
            peer=peer, offset_id=0, offset_date=None, add_offset=0, limit=100, max_id=0, min_id=0, hash=0
        )
    )


# Reactions: the stored message


async def test_react_sets_counts_that_history_and_get_messages_return() -> None:
    """History, channels.GetMessages and messages.GetMessages return the current counts; 0 or absent removes."""
    fake = FakeTelegram(seed=7, monotonic=ScaledClock(SPEED).monotonic, omit_fraction=0.0)  # omission: own tests
    channel = fake.add_channel("News")
    chat = fake.add_chat("Basic")
    post = fake.post(channel, "a post")
    in_chat = fake.post(chat, "a group message")
    client = fake.client(retry_delay=0)
    await client.connect()
    try:
        fake.react(channel, post.id, {"👍": 3, "❤": 5})
        fake.react(chat, in_chat.id, {"🔥": 1})
        by_history = await client.get_messages(channel, limit=1)
        by_id = await client.get_messages(channel, ids=[post.id])
        in_group = await client.get_messages(chat, ids=[in_chat.id])
        fake.react(channel, post.id, {"👍": 0, "🎉": 2})
        after = await client.get_messages(channel, ids=[post.id])
        fake.react(channel, post.id, {})
        cleared = await client.get_messages(channel, ids=[post.id])
    finally:
        await client.disconnect()

    assert _counts(by_history[0].reactions) == {"❤": 5, "👍": 3}
    assert list(_counts(by_history[0].reactions)) == ["❤", "👍"]  # most first, as Telegram lists them
    assert _counts(by_id[0].reactions) == {"❤": 5, "👍": 3}
    assert _counts(in_group[0].reactions) == {"🔥": 1}
    assert _counts(after[0].reactions) == {"🎉": 2}
    assert cleared[0].reactions.results == []
    assert fake.reactions_of(channel, post.id) == {}
    assert fake.reactions_of(chat, in_chat.id) == {"🔥": 1}


def test_reactions_of_reads_the_stored_counts_and_every_reaction_kind(fake: FakeTelegram) -> None:
    """reactions_of names emoji by themselves, custom emoji custom:<id>, paid ones paid; none is {}."""
    channel = fake.add_channel("News")
    plain = fake.post(channel, "no reactions")
    rich = fake.post(
        channel,
        "posted with reactions",
        reactions=types.MessageReactions(
            results=[
                types.ReactionCount(reaction=types.ReactionEmoji(emoticon="👍"), count=2),
                types.ReactionCount(reaction=types.ReactionCustomEmoji(document_id=5368324170671202286), count=4),
                types.ReactionCount(reaction=types.ReactionPaid(), count=40),
            ]
        ),
    )

    assert fake.reactions_of(channel, plain.id) == {}
    assert fake.reactions_of(channel, rich.id) == {"👍": 2, "custom:5368324170671202286": 4, "paid": 40}
    fake.react(channel, rich.id, {"👍": 1})
    assert fake.reactions_of(channel, rich.id) == {"👍": 1}


def test_react_refuses_unknown_ids_service_messages_and_bad_counts(fake: FakeTelegram) -> None:
    """Unknown or deleted ids and service messages raise KeyError, like edit; a negative count is a ValueError."""
    channel = fake.add_channel("News")
    post, gone = fake.post_many(channel, 2)
    fake.delete(channel, [gone.id])

    with pytest.raises(KeyError, match="no message 99"):
        fake.react(channel, 99, {"👍": 1})
    with pytest.raises(KeyError):
        fake.react(channel, gone.id, {"👍": 1})
    with pytest.raises(KeyError):
        fake.react(channel, 1, {"👍": 1})  # MessageActionChannelCreate
    with pytest.raises(ValueError, match="-1"):
        fake.react(channel, post.id, {"👍": -1})
    with pytest.raises(KeyError):
        fake.reactions_of(channel, gone.id)
    assert fake.reactions_of(channel, post.id) == {}


async def test_bump_edit_date_sets_a_hidden_edit_without_a_pts_step_or_an_edit_update() -> None:
    """bump_edit_date sets edit_date and edit_hide, as Telegram often does, but no pts and no MessageEdited."""
    fake = FakeTelegram(seed=7, monotonic=ScaledClock(SPEED).monotonic, clock=lambda: EDIT_CLOCK)
    channel = fake.add_channel("Super", megagroup=True)
    post = fake.post(channel, "react to me")
    client = fake.client(retry_delay=0)
    await client.connect()
    try:
        edited = _collect(client, events.MessageEdited())
        reactions = _reaction_updates(client)
        pts = fake.pts_of(channel)

        fake.react(channel, post.id, {"👍": 1}, bump_edit_date=True)

        await wait_until(lambda: len(reactions) == 1)
        [seen] = await client.get_messages(channel, limit=1)
    finally:
        await client.disconnect()
    assert (seen.id, seen.edit_date, seen.edit_hide) == (post.id, EDIT_CLOCK, True)
    assert fake.pts_of(channel) == pts
    assert edited == []


# Reactions: the live push


async def test_a_live_client_receives_update_message_reactions_with_peer_id_and_counts(
    fake: FakeTelegram, connect: Connect
) -> None:
    """A reaction in a channel reaches events.Raw as updateMessageReactions naming the channel, the id, the counts."""
    channel = fake.add_channel("News")
    post = fake.post(channel, "a post")
    client = await connect()
    seen = _reaction_updates(client)

    fake.react(channel, post.id, {"👍": 2, "❤": 7})
    fake.react(channel, post.id, {})

    await wait_until(lambda: len(seen) == 2)
    assert seen[0].peer == types.PeerChannel(channel.id)
    assert seen[0].msg_id == post.id
    assert _counts(seen[0].reactions) == {"❤": 7, "👍": 2}
    assert seen[1].reactions.results == []


async def test_a_basic_group_reaction_is_pushed_and_no_difference_reports_it(
    fake: FakeTelegram, connect: Connect
) -> None:
    """A basic-group reaction is pushed with the chat's PeerChat; the account pts stays and getDifference is empty."""
    chat = fake.add_chat("Basic")
    msg = fake.post(chat, "in the group")
    client = await connect()
    seen = _reaction_updates(client)
    pts = fake.pts_of(chat)
    state = await client(functions.updates.GetStateRequest())

    fake.react(chat, msg.id, {"😂": 4}, bump_edit_date=True)

    await wait_until(lambda: len(seen) == 1)
    difference = await client(functions.updates.GetDifferenceRequest(pts=pts, date=state.date, qts=0))
    assert (seen[0].peer, seen[0].msg_id, _counts(seen[0].reactions)) == (types.PeerChat(chat.id), msg.id, {"😂": 4})
    assert fake.pts_of(chat) == pts
    assert isinstance(difference, types.updates.DifferenceEmpty)


async def test_get_channel_difference_never_reports_a_reaction_change(fake: FakeTelegram, connect: Connect) -> None:
    """Reactions take no pts step: the difference from before them is empty, or holds only what did step."""
    channel = fake.add_channel("Super", megagroup=True)
    post = fake.post(channel, "react to me")
    client = await connect()
    pts = fake.pts_of(channel)

    fake.react(channel, post.id, {"👍": 1}, push=False)
    fake.react(channel, post.id, {"👍": 2, "❤": 1}, push=False, bump_edit_date=True)
    empty = await _channel_difference(client, channel, pts)
    later = fake.post(channel, "a new message")
    difference = await _channel_difference(client, channel, pts)

    assert isinstance(empty, types.updates.ChannelDifferenceEmpty)
    assert empty.pts == pts
    assert isinstance(difference, types.updates.ChannelDifference)
    assert [m.id for m in difference.new_messages] == [later.id]
    assert difference.other_updates == []
    assert fake.reactions_of(channel, post.id) == {"👍": 2, "❤": 1}  # only re-reading shows them


async def test_a_reaction_on_a_channel_the_account_has_not_joined_pushes_nothing(
    fake: FakeTelegram, connect: Connect
) -> None:
    """Unjoined or revoked channels push no reaction updates; a joined one's push arrives after them."""
    public = fake.add_channel("Public", username="public", joined=False)
    revoked = fake.add_channel("Revoked", megagroup=True)
    joined = fake.add_channel("Joined", megagroup=True)
    posts = [fake.post(ch, "a post") for ch in (public, revoked, joined)]
    fake.revoke_access(revoked)
    client = await connect()
    seen = _reaction_updates(client)

    fake.react(public, posts[0].id, {"👍": 1})
    fake.react(revoked, posts[1].id, {"👍": 1})
    fake.react(joined, posts[2].id, {"👍": 1})

    await wait_until(lambda: len(seen) >= 1)
    [readable] = await client.get_messages(await client.get_entity("@public"), limit=1)
    assert [(u.peer, u.msg_id) for u in seen] == [(types.PeerChannel(joined.id), posts[2].id)]
    assert _counts(readable.reactions) == {"👍": 1}


async def test_dropped_update_faults_lose_reaction_pushes_too(fake: FakeTelegram, connect: Connect) -> None:
    """Reactions travel the common delivery path: drop_next_updates loses one, and nothing recovers it."""
    channel = fake.add_channel("News")
    post = fake.post(channel, "a post")
    client = await connect()
    seen = _reaction_updates(client)

    fake.faults.drop_next_updates(1)
    fake.react(channel, post.id, {"👍": 1})
    fake.react(channel, post.id, {"👍": 2})

    await wait_until(lambda: len(seen) == 1)
    assert _counts(seen[0].reactions) == {"👍": 2}
    assert fake.faults.dropped_updates == 1


# pts in history answers and differences


async def test_channel_history_answers_carry_the_channels_current_pts(fake: FakeTelegram, connect: Connect) -> None:
    """messages.ChannelMessages from GetHistory carries the channel's pts, the one Telethon tracks live."""
    channel = fake.add_channel("Super", megagroup=True)
    client = await connect()
    live = _collect(client, events.NewMessage())
    first, second = fake.post_many(channel, 2)
    fake.edit(channel, first.id, "edited", push=False)
    fake.delete(channel, [second.id], push=False)
    pts_before = fake.pts_of(channel)
    before = await _history(client, channel)
    fake.post(channel, "live")
    await wait_until(lambda: len(live) == 1)
    await wait_until(lambda: channel.id not in client._message_box.getting_diff_for)

    after = await _history(client, channel)

    assert isinstance(before, types.messages.ChannelMessages)
    assert before.pts == pts_before
    assert after.pts == fake.pts_of(channel) == client._message_box.map[channel.id].pts


async def test_channel_difference_too_long_carries_the_channels_pts_in_its_dialog(
    fake: FakeTelegram, connect: Connect
) -> None:
    """ChannelDifferenceTooLong's dialog holds the channel's current pts, where a client resumes from."""
    channel = fake.add_channel("Super", megagroup=True)
    client = await connect()
    pts = fake.pts_of(channel)
    fake.post_many(channel, fake.channel_difference_limit + 20)

    answer = await _channel_difference(client, channel, pts)

    assert isinstance(answer, types.updates.ChannelDifferenceTooLong)
    assert answer.dialog.pts == fake.pts_of(channel)
    assert answer.dialog.pts > pts + fake.channel_difference_limit


async def test_get_difference_reports_basic_group_deletions_as_update_delete_messages(
    fake: FakeTelegram, connect: Connect
) -> None:
    """Account-box deletions come back from getDifference as updateDeleteMessages: ids and pts, no chat."""
    chat = fake.add_chat("Basic")
    kept, gone = fake.post(chat, "kept"), fake.post(chat, "gone")
    client = await connect()
    state = await client(functions.updates.GetStateRequest())

    fake.delete(chat, [gone.id], push=False)
    difference = await client(functions.updates.GetDifferenceRequest(pts=state.pts, date=state.date, qts=0))

    assert isinstance(difference, types.updates.Difference)
    assert difference.new_messages == []
    [update] = difference.other_updates
    assert type(update) is types.UpdateDeleteMessages  # Telegram's account-box form names no chat
    assert (update.messages, update.pts, update.pts_count) == ([gone.id], fake.pts_of(chat), 1)
    assert fake.message_ids(chat)[-1] == kept.id
