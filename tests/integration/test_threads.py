"""Albums, forum topics and channel comments end to end: real TelegramClient ↔ in-process Telegram, real Kafka."""

from __future__ import annotations

from typing import Any

import pytest
from telethon.tl.functions.messages import GetForumTopicsRequest

from emitter.clock import ScaledClock
from emitter.settings import Settings
from tests.faketelegram import FakeTelegram, wait_until
from tests.integration.kafka_read import read_committed
from tests.integration.telegram_harness import SPEED, emitter


@pytest.fixture
def fake() -> FakeTelegram:
    return FakeTelegram(seed=3, monotonic=ScaledClock(SPEED).monotonic)


async def records_of(settings: Settings, group_id: int) -> dict[int, dict[str, Any]]:
    """The group's NEW records as a read_committed consumer sees them, by message id."""
    records = await read_committed(settings.kafka.bootstrap_servers[0], settings.kafka.topic)  # type: ignore[index]
    return {r["message_id"]: r for _, r in records if r["group"]["id"] == group_id and r["event_type"] == "NEW"}


async def wait_for_records(settings: Settings, group_id: int, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Poll Kafka until the group's records include every id in `ids`."""
    found: dict[int, dict[str, Any]] = {}

    async def arrived() -> bool:
        nonlocal found
        found = await records_of(settings, group_id)
        return set(ids) <= set(found)

    await wait_until(arrived, within=60, interval=0.3, message=f"records {ids} of {group_id}")
    return found


async def test_an_album_arrives_as_records_sharing_grouped_id(fake: FakeTelegram, settings: Settings) -> None:
    """An album in the history and one posted live each arrive as records with one grouped_id per album,
    their media described, the caption on the first."""
    chat = fake.add_channel("Photos", username="photos", megagroup=True)
    old = fake.post_album(chat, [fake.add_file(b"a" * 100, photo=True) for _ in range(2)], caption="old")
    gid = fake.peer_id(chat)
    async with emitter(fake, settings, ["@photos"]):
        await wait_for_records(settings, gid, [m.id for m in old])
        new = fake.post_album(chat, [fake.add_file(b"b" * 100, photo=True) for _ in range(3)], caption="new")
        found = await wait_for_records(settings, gid, [m.id for m in new])
    for album in (old, new):
        records = [found[m.id] for m in album]
        assert {r["grouped_id"] for r in records} == {album[0].grouped_id}
        assert [r["media"]["type"] for r in records] == ["photo"] * len(album)
        assert [r["text"] for r in records] == [album[0].message] + [""] * (len(album) - 1)
    assert old[0].grouped_id != new[0].grouped_id


async def test_forum_records_carry_topic_titles_and_a_rename_reaches_later_records(
    fake: FakeTelegram, settings: Settings
) -> None:
    """In a forum, records carry their topic's id and title (General for messages without a topic header);
    after a rename the later records carry the new title; the titles cost one getForumTopics request."""
    forum = fake.add_channel("Forum", username="forum", megagroup=True, forum=True)
    bugs = fake.add_topic(forum, "Bugs")
    in_bugs = fake.post(forum, "crash on start", topic=bugs)
    in_general = fake.post(forum, "hello all", topic=1)
    gid = fake.peer_id(forum)
    fake.reset_counters()
    async with emitter(fake, settings, ["@forum"], sweep_interval=2) as run:
        found = await wait_for_records(settings, gid, [bugs, in_bugs.id, in_general.id])
        assert found[bugs]["topic"] == {"id": bugs, "title": "Bugs"}
        assert found[in_bugs.id]["topic"] == {"id": bugs, "title": "Bugs"}
        assert found[in_general.id]["topic"] == {"id": 1, "title": "General"}
        assert found[1]["topic"] == {"id": 1, "title": "General"}

        rename = fake.rename_topic(forum, bugs, "Known bugs")
        later = fake.post(forum, "still crashing", topic=bugs, reply_to=in_bugs.id)
        found = await wait_for_records(settings, gid, [rename.id, later.id])
        assert run.source.threads.topic_requests == 1
    assert found[rename.id]["topic"] == {"id": bugs, "title": "Known bugs"}
    assert found[later.id]["topic"] == {"id": bugs, "title": "Known bugs"}
    assert found[later.id]["reply"]["to_message_id"] == in_bugs.id
    assert found[in_bugs.id]["topic"]["title"] == "Bugs", "records already published keep the title they had"
    assert fake.count(GetForumTopicsRequest) == 1


async def test_with_follow_comments_a_comment_arrives_from_the_discussion_group_linked_to_its_post(
    fake: FakeTelegram, settings: Settings
) -> None:
    """Following only the channel, with follow_comments the discussion group is followed too: the post's copy
    there and its comments (in the history and live, replies to comments included) carry comment_of pointing
    at the post; a message of the group outside any post's thread carries none."""
    news = fake.add_channel("News", username="news")
    chat = fake.add_channel("News chat", username="newschat", megagroup=True)
    fake.link_discussion(news, chat)
    post = fake.post(news, "big news")
    first = fake.comment(news, post.id, "first!")
    own = fake.post(chat, "off topic")
    channel, group = fake.peer_id(news), fake.peer_id(chat)
    async with emitter(fake, settings, ["@news"], follow_comments=True):
        copy = fake.messages(chat)[-3]
        found = await wait_for_records(settings, group, [copy.id, first.id, own.id])
        second = fake.comment(news, post.id, "re: first", reply_to=first.id)
        later = fake.post(news, "more news")
        on_later = fake.comment(news, later.id, "and this?")
        found = await wait_for_records(settings, group, [second.id, on_later.id])
        posts = await records_of(settings, channel)
    link = {"channel_id": channel, "post_id": post.id}
    assert [found[i]["comment_of"] for i in (copy.id, first.id, second.id)] == [link] * 3
    assert found[on_later.id]["comment_of"] == {"channel_id": channel, "post_id": later.id}
    assert found[own.id]["comment_of"] is None
    assert found[copy.id]["forward"]["saved_from_msg_id"] == post.id
    assert {post.id, later.id} <= set(posts), "the channel itself is followed as before"
    assert all(r["comment_of"] is None for r in posts.values())


async def test_without_follow_comments_the_discussion_group_is_not_followed(
    fake: FakeTelegram, settings: Settings
) -> None:
    """By default only the configured channel is followed: nothing of its discussion group is published."""
    news = fake.add_channel("News", username="news")
    chat = fake.add_channel("News chat", username="newschat", megagroup=True)
    fake.link_discussion(news, chat)
    post = fake.post(news, "big news")
    fake.comment(news, post.id, "first!")
    async with emitter(fake, settings, ["@news"]) as run:
        await wait_for_records(settings, fake.peer_id(news), [post.id])
        assert list(run.source.live.followed) == [fake.peer_id(news)]
    assert await records_of(settings, fake.peer_id(chat)) == {}
