"""Change capture: what happened to a group's messages while nobody was listening.

Three ways to learn it, from cheapest to most thorough:
- **catch-up**: Telegram's own difference from the group's stored position (`updates.getChannelDifference`
  for channels and supergroups, `updates.getDifference` of the account box for basic groups), paged until
  final. Exact and ordered, but Telegram keeps a limited log: past it, it answers "too long".
- **rescan**: re-read the newest `window` messages and compare them with the digest of what was published
  (`emitter.digest`): changed ones become EDITs, vanished ones DELETEs. The only way to see reaction changes
  made while away (they are not in the difference) and what "too long" skipped. Costs window/100 requests.
- **reacted**: ids whose reactions changed live, read again by id (the update carries counts, not the
  message) so the record carries the whole message with its current counts.

Every request goes through the account's gateway (the client's `_call` is wrapped), so all of this is paced
and flood waits are held like any other request. The tracker drops what turns out to be published already.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

from telethon import TelegramClient, errors, types
from telethon import utils as tl_utils
from telethon.tl.functions.channels import GetFullChannelRequest
from telethon.tl.functions.channels import GetMessagesRequest as GetChannelMessagesRequest
from telethon.tl.functions.messages import GetMessagesRequest
from telethon.tl.functions.updates import GetChannelDifferenceRequest, GetDifferenceRequest, GetStateRequest

from emitter.cursor import GroupCursor
from emitter.protocols import Page
from emitter.records import EventType, MessageEvent, PeerKind, Source, marked_id
from emitter.sweep import chunks
from emitter.telegram_live import Followed, LiveStats
from emitter.telegram_mapping import map_deleted, map_message

log = logging.getLogger("emitter.telegram")

DIFFERENCE_LIMIT: Final = 100
"""Updates per getChannelDifference: what Telegram allows a user account."""
_MAX_DIFFERENCE_PAGES: Final = 1_000
"""A bound on one catch-up's pages, so a Telegram that never says final cannot hold a group for ever."""


class ChangeCapture:
    """Catch-ups, rescans and reaction reads of one account's groups."""

    def __init__(
        self,
        client: TelegramClient,
        stats: LiveStats,
        clock: Callable[[], datetime],
        *,
        window: int,
        owner_of: Callable[[int], int | None],
    ) -> None:
        self.client = client
        self.stats = stats
        self.window = window
        self._clock = clock
        self._owner_of = owner_of

    # --- positions ------------------------------------------------------------------------------------------

    async def position_now(self, state: Followed) -> None:
        """Learn the group's current position (a group with no stored one, before its first walk)."""
        if state.is_basic:
            st = await self.client(GetStateRequest())
            state.pts, state.pts_date = st.pts, _unix(st.date)
        else:
            full = await self.client(GetFullChannelRequest(tl_utils.get_input_channel(state.entity)))
            state.pts = full.full_chat.pts
        state.catch_up = False

    def restore(self, state: Followed, cursor: GroupCursor, *, rescan: bool) -> bool:
        """Start from the stored position: catch up from it (and rescan the window if asked). False if none."""
        if cursor.pts is None:
            return False
        state.pts, state.pts_date = cursor.pts, cursor.pts_date
        state.catch_up = True
        state.rescan = rescan and bool(cursor.digest)
        return True

    # --- catch-up -------------------------------------------------------------------------------------------

    async def catch_up(self, state: Followed) -> AsyncIterator[Page]:
        """Pages of what changed since `state.pts`; ends with the position moved to Telegram's."""
        self.stats.catch_ups += 1
        state.catch_up = False  # from here on a new gap asks for another round
        pages = self._account_difference(state) if state.is_basic else self._channel_difference(state)
        async for page in pages:
            yield page

    async def _channel_difference(self, state: Followed) -> AsyncIterator[Page]:
        channel = tl_utils.get_input_channel(state.entity)
        for _ in range(_MAX_DIFFERENCE_PAGES):
            assert state.pts is not None  # noqa: S101 - restore/position_now ran first
            try:
                diff = await self.client(
                    GetChannelDifferenceRequest(
                        channel, types.ChannelMessagesFilterEmpty(), state.pts, DIFFERENCE_LIMIT, force=True
                    )
                )
            except (errors.PersistentTimestampInvalidError, errors.PersistentTimestampEmptyError):
                # Telegram does not know the position (a channel recreated, a reset): start again from now.
                log.warning("group %d: Telegram does not know pts %s: rescanning", state.group.id, state.pts)
                await self.position_now(state)
                self._too_long(state)
                return
            if isinstance(diff, types.updates.ChannelDifferenceEmpty):
                state.pts = diff.pts
                yield Page(state.group, [], peer=state.peer, pts=state.pts)
                return
            if isinstance(diff, types.updates.ChannelDifferenceTooLong):
                state.pts = diff.dialog.pts
                self._too_long(state)
                yield Page(state.group, [], peer=state.peer, pts=state.pts)
                return
            events = self._events(state, diff.new_messages, diff.other_updates, diff.users, diff.chats)
            state.pts = diff.pts
            yield Page(state.group, events, peer=state.peer, pts=state.pts)
            if diff.final:
                return

    async def _account_difference(self, state: Followed) -> AsyncIterator[Page]:
        for _ in range(_MAX_DIFFERENCE_PAGES):
            assert state.pts is not None  # noqa: S101 - restore/position_now ran first
            date = datetime.fromtimestamp(state.pts_date or 0).astimezone()
            diff = await self.client(GetDifferenceRequest(pts=state.pts, date=date, qts=0))
            if isinstance(diff, types.updates.DifferenceEmpty):
                state.pts_date = _unix(diff.date)
                yield Page(state.group, [], peer=state.peer, pts=state.pts, pts_date=state.pts_date)
                return
            if isinstance(diff, types.updates.DifferenceTooLong):
                state.pts = diff.pts
                self._too_long(state)
                yield Page(state.group, [], peer=state.peer, pts=state.pts, pts_date=state.pts_date)
                return
            final = isinstance(diff, types.updates.Difference)
            st = diff.state if final else diff.intermediate_state
            events = self._events(state, diff.new_messages, diff.other_updates, diff.users, diff.chats)
            state.pts, state.pts_date = st.pts, _unix(st.date)
            yield Page(state.group, events, peer=state.peer, pts=state.pts, pts_date=state.pts_date)
            if final:
                return

    def _too_long(self, state: Followed) -> None:
        self.stats.too_long += 1
        log.info(
            "group %d: Telegram no longer has the difference: rescanning the newest %d messages and sweeping",
            state.group.id,
            self.window,
        )
        state.rescan = True
        # The sweep that fills the hole runs in the same pass of the group's loop, before any live event
        # admitted from the new position is yielded: NEW records stay in id order.
        state.request_sweep()

    def _events(
        self, state: Followed, new: Iterable[Any], others: Iterable[Any], users: list[Any], chats: list[Any]
    ) -> list[MessageEvent]:
        """The group's NEW, EDIT and DELETE events of a difference: new messages first, then the rest in pts order."""
        entities = {tl_utils.get_peer_id(x): x for x in itertools.chain(users, chats)}
        gid = state.group.id
        now = self._clock()
        out: list[MessageEvent] = []
        for message in new:
            if (
                isinstance(message, types.Message | types.MessageService)
                and tl_utils.get_peer_id(message.peer_id) == gid
            ):
                message._finish_init(self.client, entities, state.entity)
                out.append(map_message(message, state.group, source=Source.CATCHUP, ingest_time=now))
        out.sort(key=lambda e: e.message_id)
        for update in sorted(others, key=lambda u: getattr(u, "pts", 0)):
            out.extend(self._other(state, update, entities, now))
        return out

    def _other(self, state: Followed, update: Any, entities: dict[int, Any], now: datetime) -> list[MessageEvent]:
        gid = state.group.id
        pts = getattr(update, "pts", None)
        if isinstance(
            update,
            types.UpdateNewMessage
            | types.UpdateNewChannelMessage
            | types.UpdateEditMessage
            | types.UpdateEditChannelMessage,
        ):
            message = update.message
            if (
                not isinstance(message, types.Message | types.MessageService)
                or tl_utils.get_peer_id(message.peer_id) != gid
            ):
                return []
            message._finish_init(self.client, entities, state.entity)
            kind = (
                EventType.NEW
                if isinstance(update, types.UpdateNewMessage | types.UpdateNewChannelMessage)
                else EventType.EDIT
            )
            event = map_message(message, state.group, source=Source.CATCHUP, ingest_time=now, event_type=kind)
            return [event if pts is None else _with_pts(event, pts)]
        if isinstance(update, types.UpdateDeleteChannelMessages):
            if marked_id(update.channel_id, PeerKind.CHANNEL) != gid:
                return []
            ids = list(update.messages)
        elif isinstance(update, types.UpdateDeleteMessages):
            ids = [i for i in update.messages if self._owner_of(i) == gid]
        else:
            return []
        return [_with_pts(map_deleted(state.group, i, source=Source.CATCHUP, ingest_time=now), pts) for i in ids]

    # --- rescan ---------------------------------------------------------------------------------------------

    async def rescan(self, state: Followed, cursor: GroupCursor) -> Page:
        """The newest `window` messages compared with the digest: EDITs of changed ones, DELETEs of vanished ones.

        Messages the digest does not know are left to the sweep, which publishes NEWs in id order.
        """
        self.stats.rescans += 1
        state.rescan = False
        digest = cursor.digest
        now = self._clock()
        events: list[MessageEvent] = []
        seen: set[int] = set()
        lowest: int | None = None
        count = 0
        async for message in self.client.iter_messages(state.entity, limit=self.window, wait_time=0):
            count += 1
            seen.add(message.id)
            lowest = message.id
            if message.id in digest and isinstance(message, types.Message):
                events.append(
                    map_message(message, state.group, source=Source.RESCAN, ingest_time=now, event_type=EventType.EDIT)
                )
        whole = count < self.window  # fewer than asked: the whole history was read
        vanished = [i for i in digest if i not in seen and (whole or (lowest is not None and i > lowest))]
        events.extend(map_deleted(state.group, i, source=Source.RESCAN, ingest_time=now) for i in sorted(vanished))
        events.sort(key=lambda e: e.message_id)
        return Page(state.group, events, peer=state.peer)

    # --- reactions ------------------------------------------------------------------------------------------

    async def reacted(self, state: Followed) -> Page:
        """The messages whose reactions changed live, read again, as EDITs (the tracker labels the change)."""
        ids = sorted(state.reacted)[:DIFFERENCE_LIMIT]
        state.reacted.difference_update(ids)
        now = self._clock()
        events: list[MessageEvent] = []
        for chunk in chunks(ids):
            request: Any = (
                GetMessagesRequest([types.InputMessageID(i) for i in chunk])
                if state.is_basic
                else GetChannelMessagesRequest(
                    tl_utils.get_input_channel(state.entity), [types.InputMessageID(i) for i in chunk]
                )
            )
            answer = await self.client(request)
            entities = {tl_utils.get_peer_id(x): x for x in itertools.chain(answer.users, answer.chats)}
            wanted = set(chunk)
            got: set[int] = set()
            for message in answer.messages:
                if isinstance(message, types.Message) and message.id in wanted:
                    message._finish_init(self.client, entities, state.entity)
                    got.add(message.id)
                    events.append(
                        map_message(
                            message, state.group, source=Source.LIVE, ingest_time=now, event_type=EventType.EDIT
                        )
                    )
            # Telegram may leave ids out of a by-id answer: they are read again next round.
            state.reacted.update(wanted - got - {m.id for m in answer.messages if isinstance(m, types.MessageEmpty)})
        return Page(state.group, events, peer=state.peer)


def _with_pts(event: MessageEvent, pts: int | None) -> MessageEvent:
    return event if pts is None else replace(event, pts=pts)


def _unix(date: datetime | int | None) -> int:
    if date is None:
        return 0
    if isinstance(date, int):
        return date
    return int(date.timestamp())
