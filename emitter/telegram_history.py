"""Ascending history pages straight from `messages.getHistory`: the walk's one request, without Telethon's
per-message finishing.

`client.iter_messages(reverse=True)` builds the same requests, but then, for every message, runs
`Message._finish_init` (the client, the sender and chat entities, the input peers, a `Forward` object),
resolves entity pairs through the session cache and hands the message out through one async-iterator step
each. The emitter reads none of that: mapping wants the raw TL fields and the sender's entity, which the
answer itself carries in its `users` and `chats`. That finishing was about a fifth of the emitter's CPU per
backfilled record.

What stays Telethon's: the request goes through `client(...)` (so the request gateway, flood handling, the
takeout wrapper and the session's entity cache see it as before), and Telethon parses the wire format into its
own TL objects. The pagination below keeps `iter_messages`' rules for an ascending walk, which the NOTES
explain: `add_offset = -limit` from `offset_id = min_id + 1`, the next page from one above the last id (and its
date), an ascending id that does not grow ends the walk (Telegram has been seen repeating ids on bad
connections), a short page is not the end (some channels leave messages out of a page), and only an empty one
is.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from telethon import types
from telethon import utils as tl_utils
from telethon.tl.functions.messages import GetHistoryRequest

PAGE_LIMIT: Final = 100
"""The most messages getHistory returns at once."""


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One getHistory answer, its messages ascending by id."""

    messages: list[Any]
    """Message / MessageService objects (MessageEmpty left out), each id above the one before."""
    total: int
    """Telegram's count of messages in the chat (the answer's `count`, else the page's length)."""
    entities: Mapping[int, Any]
    """The users and chats the answer carries, by marked id: a message's sender is `entities[sender_id]`."""


async def history_pages(
    client: Any,
    entity: Any,
    *,
    min_id: int = 0,
    offset_date: datetime | None = None,
    limit: int | None = None,
) -> AsyncIterator[HistoryPage]:
    """The history of `entity` above `min_id` (or from `offset_date`), ascending, one page per request.

    Args:
        client: a connected TelegramClient (or a takeout client: its requests are wrapped as usual).
        entity: the chat; anything `client.get_input_entity` accepts.
        min_id: messages with ids above this one only.
        offset_date: without `min_id`, start at the first message sent at or after this date.
        limit: ask for no more than this many messages in all (None: to the end). A caller that stops early
            simply leaves the iteration; no request is made for what it did not ask for.
    """
    left = math.inf if limit is None else limit
    if left <= 0:
        return
    peer = await client.get_input_entity(entity)
    offset_id = min_id + 1 if min_id > 0 else (0 if offset_date else 1)
    last_id = 0
    while left > 0:
        size = int(min(left, PAGE_LIMIT))
        answer = await client(
            GetHistoryRequest(
                peer=peer,
                offset_id=offset_id,
                offset_date=offset_date,
                add_offset=-size,
                limit=size,
                max_id=0,
                min_id=0,
                hash=0,
            )
        )
        messages = []
        repeated = False
        for message in reversed(answer.messages):
            if isinstance(message, types.MessageEmpty):
                continue
            if message.id <= last_id:
                repeated = True
                break
            last_id = message.id
            messages.append(message)
        entities = {tl_utils.get_peer_id(x): x for x in itertools.chain(answer.users, answer.chats)}
        if messages:
            yield HistoryPage(messages, getattr(answer, "count", len(answer.messages)), entities)
        # A whole-chat answer (`messages.messages`, not a slice) has nothing after it.
        if repeated or not messages or isinstance(answer, types.messages.Messages):
            return
        left -= len(messages)
        offset_id, offset_date = messages[-1].id + 1, messages[-1].date
