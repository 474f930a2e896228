"""Forum topics and channel comments: which topic a record belongs to, and which channel post it comments on.

Both are facts about a message's place in its group that the message itself states only in part:

- **Topics.** In a forum supergroup a message in a topic replies to the topic (``reply_to.forum_topic``, the
  topic's id as ``reply_to_top_id``, or as ``reply_to_msg_id`` when it replies to nothing else); a message
  in the General topic has no reply header at all; a topic's creation message is the topic (its id is the
  topic's id). The title is nowhere in the message: it comes from ``messages.getForumTopics`` (the layer
  Telethon speaks moved it from ``channels``), fetched once per group and again for a topic not yet known,
  and from the topic's own create and edit service messages as they pass.
- **Comments.** A channel's posts are copied into its discussion group as forwards naming the post
  (``fwd_from.saved_from_peer`` / ``saved_from_msg_id``); comments reply to that copy (it is their
  ``reply_to_top_id``, or their ``reply_to_msg_id`` when they answer the post itself). Which post a comment
  belongs to is therefore what its thread's top message says: known from the copy when it passed, else read
  once by id.

The rules are pure functions over records (`topic_of`, `thread_top`, `post_of`); `Threads` keeps the per-group
caches and asks Telegram through the client (so through the account's request gateway) for what they lack.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from telethon import TelegramClient, errors, types
from telethon.tl.functions.channels import GetFullChannelRequest
from telethon.tl.functions.messages import GetForumTopicsRequest

from emitter.records import CommentOf, EventType, MessageEvent, Topic
from emitter.telegram_mapping import map_message

log = logging.getLogger("emitter.telegram")

GENERAL_TOPIC: Final = 1
"""The id of every forum's General topic, the topic of messages without a topic header."""
_TOPIC_ACTIONS: Final = frozenset({"topic_create", "topic_edit"})
_TOPICS_PAGE: Final = 100
"""Topics per getForumTopics request: Telegram's most."""
_MAX_TOPIC_PAGES: Final = 50
"""A bound on one refresh (5,000 topics), so a misbehaving answer cannot page for ever."""


def topic_of(event: MessageEvent) -> int:
    """The id of the forum topic a message of a forum supergroup belongs to."""
    if event.action is not None and event.action.type == "topic_create":
        return event.message_id
    reply = event.reply
    if reply is not None and reply.forum_topic:
        top = reply.to_top_id if reply.to_top_id is not None else reply.to_message_id
        if top is not None:
            return top
    return GENERAL_TOPIC


def post_of(event: MessageEvent, channel_id: int) -> CommentOf | None:
    """The post of channel `channel_id` (marked) that `event` is the discussion group's copy of, if it is one."""
    fwd = event.forward
    if fwd is None or fwd.saved_from_peer != channel_id or fwd.saved_from_msg_id is None:
        return None
    return CommentOf(channel_id=channel_id, post_id=fwd.saved_from_msg_id)


def thread_top(event: MessageEvent) -> int | None:
    """The id of the message at the top of the reply thread `event` is in (None if it replies to nothing)."""
    reply = event.reply
    if reply is None or reply.to_peer_id is not None:
        return None  # a reply to a message of another chat is in no thread of this one
    return reply.to_top_id if reply.to_top_id is not None else reply.to_message_id


@dataclass(slots=True)
class GroupThreads:
    """What one group's records need: whether it is a forum, and the channel it discusses."""

    forum: bool = False
    channel_id: int | None = None
    """Marked id of the channel whose discussion group this is (followed with telegram.follow_comments)."""
    titles: dict[int, str | None] = field(default_factory=dict)
    posts: dict[int, CommentOf | None] = field(default_factory=dict)
    """Thread top message id -> the post it copies (None: a thread of the group's own)."""


class Threads:
    """Adds `topic` and `comment_of` to the records of the groups that have them, caching per group."""

    def __init__(self, client: TelegramClient) -> None:
        self.client = client
        self.groups: dict[int, GroupThreads] = {}
        self.topic_requests = 0
        """getForumTopics requests sent (tests and the status page read it)."""

    def add(self, group_id: int, *, forum: bool, channel_id: int | None = None) -> None:
        """Register a group: a forum, or a channel's discussion group (`channel_id`, marked), or neither."""
        if forum or channel_id is not None:
            self.groups[group_id] = GroupThreads(forum=forum, channel_id=channel_id)

    def wanted(self, group_id: int) -> bool:
        """Whether the group's records get anything from here."""
        return group_id in self.groups

    async def enrich(self, entity: Any, events: Sequence[MessageEvent]) -> list[MessageEvent]:
        """The events with their topic (forums) and the post they comment on (discussion groups), in order:
        a topic's rename applies to the records after it."""
        if not events:
            return list(events)
        state = self.groups.get(events[0].group_id)
        if state is None:
            return list(events)
        out = []
        for original in events:
            event = original
            if event.event_type is not EventType.DELETE:
                if state.forum:
                    event = await self._with_topic(state, entity, event)
                if state.channel_id is not None:
                    event = await self._with_post(state, entity, event)
            out.append(event)
        return out

    async def _with_topic(self, state: GroupThreads, entity: Any, event: MessageEvent) -> MessageEvent:
        topic = topic_of(event)
        action = event.action
        if action is not None and action.type in _TOPIC_ACTIONS and action.title is not None:
            state.titles[topic] = action.title  # the service message is the rename: no request needed
        if topic not in state.titles:
            try:
                fetched = await self._titles(entity)
            except errors.ChannelForumMissingError:
                # The group stopped being a forum: its messages have no topic any more (asking again would
                # fail again, and stall the group behind a "transient" error).
                log.info("group %d is no longer a forum: its records carry no topic", event.group_id)
                state.forum = False
                return event
            # Titles seen in the stream win: in a backfill they are the title at that point of the history,
            # where the answer has today's.
            state.titles = {**fetched, **state.titles}
            state.titles.setdefault(topic, None)  # deleted, or beyond what one refresh reads: not asked again
        return replace(event, topic=Topic(id=topic, title=state.titles[topic]))

    async def _titles(self, entity: Any) -> dict[int, str]:
        """Every topic's title, from messages.getForumTopics, paging by the last topic of each page."""
        titles: dict[int, str] = {}
        offset = 0
        for _ in range(_MAX_TOPIC_PAGES):
            self.topic_requests += 1
            answer = await self.client(GetForumTopicsRequest(entity, None, 0, offset, _TOPICS_PAGE))
            topics = [t for t in answer.topics if hasattr(t, "title")]  # forumTopicDeleted has none
            titles.update((int(t.id), str(t.title)) for t in topics)
            if len(answer.topics) < _TOPICS_PAGE or len(titles) >= answer.count:
                break
            offset = int(answer.topics[-1].id)
        return titles

    async def _with_post(self, state: GroupThreads, entity: Any, event: MessageEvent) -> MessageEvent:
        assert state.channel_id is not None  # noqa: S101 - the caller checked
        copy = post_of(event, state.channel_id)
        if copy is not None:
            state.posts[event.message_id] = copy
            return replace(event, comment_of=copy)
        top = thread_top(event)
        if top is None:
            return event
        if top not in state.posts:
            message = await self.client.get_messages(entity, ids=top)
            if message is None:
                return event  # Telegram may leave an id out: unknown, not "no post"; asked again next time
            found = map_message(message, event.group, source=event.source, ingest_time=event.ingest_time)
            state.posts[top] = post_of(found, state.channel_id)
        post = state.posts[top]
        return event if post is None else replace(event, comment_of=post)


async def discussion_group(client: TelegramClient, channel: Any) -> Any | None:
    """The entity of a broadcast channel's linked discussion supergroup (channels.getFullChannel's
    `linked_chat_id`, the entity among its chats), or None when it has none or it is out of reach."""
    if not (isinstance(channel, types.Channel) and channel.broadcast):
        return None
    full = await client(GetFullChannelRequest(channel))
    linked = getattr(full.full_chat, "linked_chat_id", None)
    if linked is None:
        return None
    found = next((c for c in full.chats if isinstance(c, types.Channel) and c.id == linked), None)
    if found is None:
        log.warning("channel %d names discussion group %d but Telegram sent no entity for it", channel.id, linked)
    return found
