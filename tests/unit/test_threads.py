"""Which forum topic a record is in, and which channel post a discussion-group record comments on."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from telethon.tl import types
from telethon.tl.functions.messages import GetForumTopicsRequest

from emitter.records import Action, CommentOf, Forward, Group, GroupType, Reply, Source
from emitter.telegram_mapping import map_message
from emitter.threads import GENERAL_TOPIC, Threads, post_of, thread_top, topic_of
from tests.factories import event
from tests.faketelegram import FakeTelegram

CHANNEL = -1000000000042
FORUM = Group(id=-1000000000077, title="Forum", type=GroupType.SUPERGROUP)
T = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "topic"),
    [
        ({}, GENERAL_TOPIC),  # General: no reply header at all
        ({"reply": Reply(to_message_id=9)}, GENERAL_TOPIC),  # a plain reply inside General
        ({"reply": Reply(to_message_id=5, forum_topic=True)}, 5),  # straight into topic 5
        ({"reply": Reply(to_message_id=8, to_top_id=5, forum_topic=True)}, 5),  # a reply inside topic 5
        ({"action": Action(type="topic_create", title="Bugs")}, 30),  # the creation message is the topic
        ({"action": Action(type="topic_edit", title="New"), "reply": Reply(to_message_id=5, forum_topic=True)}, 5),
    ],
)
def test_the_topic_of_a_forum_message(fields: dict[str, object], topic: int) -> None:
    """The topic comes from the forum reply header (top id, else replied id), the creation message's own
    id, or General."""
    assert topic_of(event(30, **fields)) == topic  # type: ignore[arg-type]


def test_the_topic_actions_are_named_as_topic_of_expects() -> None:
    """Telegram's MessageActionTopicCreate / TopicEdit map to the action types the topic rules read."""
    create = types.MessageService(
        id=4, peer_id=types.PeerChannel(77), date=T, action=types.MessageActionTopicCreate("Bugs", 0)
    )
    edit = types.MessageService(id=6, peer_id=types.PeerChannel(77), date=T, action=types.MessageActionTopicEdit("B"))
    mapped = [map_message(m, FORUM, source=Source.LIVE, ingest_time=T) for m in (create, edit)]
    assert [(e.action.type, e.action.title) for e in mapped if e.action] == [
        ("topic_create", "Bugs"),
        ("topic_edit", "B"),
    ]
    assert topic_of(mapped[0]) == 4


def test_the_copy_of_a_post_names_it_and_other_forwards_do_not() -> None:
    """A forward saved from the linked channel is that post's copy; one from elsewhere or without the
    saved message id is not."""
    copy = event(3, forward=Forward(from_id=CHANNEL, channel_post=17, saved_from_peer=CHANNEL, saved_from_msg_id=17))
    assert post_of(copy, CHANNEL) == CommentOf(channel_id=CHANNEL, post_id=17)
    elsewhere = event(4, forward=Forward(saved_from_peer=-1009, saved_from_msg_id=17))
    assert post_of(elsewhere, CHANNEL) is None
    assert post_of(event(5, forward=Forward(from_id=CHANNEL, channel_post=17)), CHANNEL) is None
    assert post_of(event(6), CHANNEL) is None


@pytest.mark.parametrize(
    ("reply", "top"),
    [
        (None, None),
        (Reply(to_message_id=3), 3),  # a comment on the post: it replies to the post's copy
        (Reply(to_message_id=8, to_top_id=3), 3),  # a reply to a comment: the copy is the top
        (Reply(to_message_id=3, to_peer_id=-1009), None),  # a reply to another chat's message
    ],
)
def test_the_thread_top_of_a_discussion_message(reply: Reply | None, top: int | None) -> None:
    """The top of a message's thread is its reply header's top id, else the message it replies to."""
    assert thread_top(event(10, reply=reply)) == top


async def test_a_group_that_stopped_being_a_forum_gets_no_topic_and_no_second_request() -> None:
    """getForumTopics answering CHANNEL_FORUM_MISSING (the forum was turned off) leaves the records without a
    topic instead of failing the page for ever, and is not asked again."""
    fake = FakeTelegram(seed=2)
    chat = fake.add_channel("Was a forum", username="wasforum", megagroup=True)
    client = fake.client(retry_delay=0)
    await client.connect()
    try:
        entity = await client.get_entity("@wasforum")
        threads = Threads(client)
        gid = fake.peer_id(chat)
        threads.add(gid, forum=True)
        group = Group(id=gid, type=GroupType.SUPERGROUP)
        first = await threads.enrich(entity, [event(2, group=group), event(3, group=group)])
        later = await threads.enrich(entity, [event(4, group=group)])
    finally:
        await client.disconnect()
    assert [e.topic for e in (*first, *later)] == [None, None, None]
    assert threads.topic_requests == 1
    assert fake.count(GetForumTopicsRequest) == 1


async def test_topic_titles_are_fetched_once_and_renames_apply_from_where_they_pass() -> None:
    """The first record of an unknown topic fetches every title (one request); a rename service message in
    the records changes the title of the records after it, not of those before; General needs nothing more."""
    fake = FakeTelegram(seed=2)
    forum = fake.add_channel("Forum", username="forum", megagroup=True, forum=True)
    bugs = fake.add_topic(forum, "Bugs")
    fake.rename_topic(forum, bugs, "Known bugs")
    client = fake.client(retry_delay=0)
    await client.connect()
    try:
        entity = await client.get_entity("@forum")
        threads = Threads(client)
        gid = fake.peer_id(forum)
        threads.add(gid, forum=True)
        group = Group(id=gid, type=GroupType.SUPERGROUP)
        in_topic = Reply(to_message_id=bugs, forum_topic=True)
        rename = Action(type="topic_edit", title="Fixed bugs")
        events = [event(10, group=group, reply=in_topic), event(11, group=group, action=rename, reply=in_topic)]
        events += [event(12, group=group, reply=in_topic), event(13, group=group)]
        out = await threads.enrich(entity, events)
    finally:
        await client.disconnect()
    assert [(e.topic.id, e.topic.title) for e in out if e.topic] == [
        (bugs, "Known bugs"), (bugs, "Fixed bugs"), (bugs, "Fixed bugs"), (1, "General"),
    ]  # fmt: skip
    assert threads.topic_requests == 1
