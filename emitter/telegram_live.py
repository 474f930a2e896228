"""Live dispatch: Telethon's update handlers turned into per-group queues of events, in update order.

Live updates are fast but not a guarantee: Telegram drops them around reconnects, pushes none for
channels the account has not joined, and Telethon gives up on more than 100 missed channel updates. So a
handler decides little: it maps the update, queues it for its group and wakes the group's follow loop.

Every change Telegram numbers carries its box's pts (the channel's, or the account's for basic groups and
private chats). A group's `pts` is the position every admitted change up to which is queued: an update
whose pts continues it is admitted; one that does not shows a gap, so it and everything after it is left
to a catch-up (Telegram's difference from `pts`, in order) instead of being published out of order. When in
doubt (a service message, a changed channel, a handler error, a reconnect) a handler asks for a sweep,
which reads history and is the guarantee for NEW messages.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

from telethon import TelegramClient, events, types
from telethon.utils import get_peer_id

from emitter.cursor import PeerRef
from emitter.digest import EMPTY, Digest
from emitter.records import EventType, Group, GroupType, MessageEvent, PeerKind, Source, marked_id
from emitter.telegram_mapping import map_deleted, map_message
from emitter.telegram_updates import coalesce_updates

log = logging.getLogger("emitter.telegram")

DEFAULT_LIVE_BUFFER_BYTES: Final = 64 * 2**20
"""Bytes of queued live events across all groups (the chart's default memory limit is 512 MiB)."""
_RECENT_BASIC_IDS: Final = 100_000
_EVENT_OVERHEAD: Final = 600
"""Bytes a queued event costs beyond its text (objects, entities, the mapping's strings), roughly."""


@dataclass
class LiveStats:
    """Counters the metrics endpoint and tests read."""

    sweeps: int = 0
    live_events: int = 0
    live_dropped: int = 0
    handler_errors: int = 0
    reconnects: int = 0
    transient_errors: int = 0
    """Errors a group's walk stopped on and resumed from its cursor after."""
    live_gaps: int = 0
    """Live updates that did not continue their group's position (left to a catch-up)."""
    live_overflows: int = 0
    """Live updates the byte budget had no room for (left to a catch-up)."""
    catch_ups: int = 0
    rescans: int = 0
    too_long: int = 0
    """Catch-ups Telegram answered with "too long" (followed by a rescan)."""


class LiveBudget:
    """Bytes of queued live events, shared by every group of a source: full, it admits nothing more."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> bool:
        """Reserve `size` bytes; False (and nothing reserved) when that would pass the limit."""
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        """Release bytes of drained events."""
        self.used = max(0, self.used - size)


@dataclass
class Followed:
    """One group's live state: the queue handlers fill and the flags that wake its follow loop."""

    group: Group
    entity: Any
    peer: PeerRef | None = None
    queue: deque[tuple[MessageEvent, int]] = field(default_factory=deque)
    """Admitted live events with their size in the byte budget."""
    sweep_now: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by live handlers and sweep requests: one event to wait on instead of two futures."""
    failed: str | None = None
    unjoined: bool = False
    """A public channel the account is not a member of: Telegram pushes nothing for it."""
    pts: int | None = None
    """Every change of the group's update box up to this pts is admitted (queued or already yielded)."""
    pts_date: int | None = None
    """The account box's date at `pts` (basic groups), for updates.getDifference."""
    catch_up: bool = False
    """A gap was seen (or the position is old): admit nothing live until a catch-up from `pts` ran."""
    rescan: bool = False
    """Re-read the recent window and compare it with the digest (reactions, or Telegram said "too long")."""
    reacted: set[int] = field(default_factory=set)
    """Ids whose reactions changed live: read again (in batches) to publish their current counts."""

    @property
    def is_basic(self) -> bool:
        """A basic group: its changes are numbered in the account's box, not a box of its own."""
        return self.group.type is GroupType.GROUP

    def request_sweep(self) -> None:
        """Ask the group's follow loop for a sweep now."""
        self.sweep_now.set()
        self.wake.set()

    def request_catch_up(self) -> None:
        """Admit nothing live until the follow loop asked Telegram for the difference from `pts`."""
        self.catch_up = True
        self.wake.set()

    def request_rescan(self) -> None:
        """Ask the follow loop to compare the recent window with what was published."""
        self.rescan = True
        self.wake.set()


class LiveDispatch:
    """Registers Telethon handlers on one client and routes what they see to the followed groups."""

    def __init__(
        self,
        client: TelegramClient,
        stats: LiveStats,
        clock: Callable[[], datetime],
        *,
        budget_bytes: int = DEFAULT_LIVE_BUFFER_BYTES,
    ) -> None:
        self.client = client
        self.stats = stats
        self._clock = clock
        self.budget = LiveBudget(budget_bytes)
        self.followed: dict[int, Followed] = {}
        self.digest_of: Callable[[int], Digest] = lambda _gid: EMPTY
        """The accepted digest of a group (the source points it at the tracker's cursors)."""
        self._recent_basic: OrderedDict[int, int] = OrderedDict()
        self._handlers: list[tuple[Callable[..., Awaitable[None]], Any]] = []
        self._unhook: Callable[[], None] | None = None

    def __iter__(self) -> Iterator[Followed]:
        return iter(list(self.followed.values()))

    def add(self, state: Followed) -> None:
        """Route live updates of `state.group` to it from now on."""
        self.followed[state.group.id] = state

    def sweep_all(self) -> None:
        """Ask every group for a sweep (after a reconnect or a session-wide gap)."""
        for state in self:
            state.request_sweep()

    def catch_up_all(self, *, rescan: bool = False) -> None:
        """Ask every group for a catch-up (and a sweep, and optionally a rescan) after a reconnect."""
        for state in self:
            if state.pts is not None:
                state.request_catch_up()
            if rescan:
                state.rescan = True
            state.request_sweep()

    def drain(self, state: Followed) -> list[MessageEvent]:
        """The group's queued events, releasing their bytes."""
        out: list[MessageEvent] = []
        queue = state.queue
        size = 0
        while queue:
            event, n = queue.popleft()
            out.append(event)
            size += n
        self.budget.give(size)
        return out

    def start(self) -> None:
        """Register the handlers and the reconnect hook (idempotent)."""
        if self._handlers:
            return
        # Raw first: Telethon runs handlers in the order they were added, and positions move before the
        # message handlers ask whether their update continued them.
        self._handlers = [
            (self._on_raw, events.Raw()),
            (self._on_new, _AccountBoxMessages()),
            (self._on_edit, events.MessageEdited()),
            (self._on_delete, events.MessageDeleted()),
        ]
        for callback, event in self._handlers:
            self.client.add_event_handler(callback, event)
        coalesce_updates(self.client)
        self._hook_reconnects()

    def stop(self) -> None:
        """Remove the handlers and the hook (idempotent)."""
        for callback, event in self._handlers:
            self.client.remove_event_handler(callback, event)
        self._handlers = []
        if self._unhook is not None:
            self._unhook()
            self._unhook = None

    # --- handlers -------------------------------------------------------------------------------------------

    def _offer(self, state: Followed, event: MessageEvent, update: Any) -> None:
        """Queue `event` if its update continues the group's position (and the budget has room)."""
        pts, count = _pts_of(update)
        if pts is not None:
            # `_on_raw` ran first and moved `state.pts` to this update if it continued the position.
            if state.catch_up or state.pts != pts:
                return
            if event.pts != pts:  # mapped without it (`dataclasses.replace` is three times a new event's cost)
                event = replace(event, pts=pts)
        size = _EVENT_OVERHEAD + len(event.text) * 2
        if not self.budget.take(size):
            self.stats.live_overflows += 1
            if pts is not None:
                state.pts = pts - count  # this change is not queued: the catch-up starts in front of it
                state.request_catch_up()
            else:
                state.request_sweep()
            return
        state.queue.append((event, size))
        state.wake.set()
        self.stats.live_events += 1

    async def _on_new(self, event: Any) -> None:
        state = self.followed.get(event.chat_id)
        if state is None:
            return
        try:
            if state.is_basic:
                self._remember_basic(event.message.id, state.group.id)
            mapped = map_message(event.message, state.group, source=Source.LIVE, ingest_time=self._clock())
            self._offer(state, mapped, event.original_update)
        except Exception:
            self._handler_failed(state, event.original_update)

    async def _on_edit(self, event: Any) -> None:
        state = self.followed.get(event.chat_id)
        if state is None:
            return
        try:
            mapped = map_message(
                event.message, state.group, source=Source.LIVE, ingest_time=self._clock(), event_type=EventType.EDIT
            )
            self._offer(state, mapped, event.original_update)
        except Exception:
            self._handler_failed(state, event.original_update)

    async def _on_delete(self, event: Any) -> None:
        chat_id = event.chat_id
        for msg_id in event.deleted_ids:
            # Deletions in basic groups carry no chat id: their ids are account-wide, so the group is the one
            # whose recent messages (seen live, or in the digest kept with its cursor) hold the id.
            gid = chat_id if chat_id is not None else self.owner_of(msg_id)
            state = self.followed.get(gid) if gid is not None else None
            if state is not None:
                deleted = map_deleted(state.group, msg_id, source=Source.LIVE, ingest_time=self._clock())
                self._offer(state, deleted, event.original_update)

    def owner_of(self, msg_id: int) -> int | None:
        """The followed basic group a message id belongs to, if a recent message of one has it."""
        gid = self._recent_basic.get(msg_id)
        if gid is not None:
            return gid
        for state in self:
            if state.is_basic and msg_id in self.digest_of(state.group.id):
                return state.group.id
        return None

    async def _on_raw(self, update: Any) -> None:
        self._move_positions(update)
        # A changed channel (access lost, say) or one Telegram says we are too far behind in: catch up now.
        if isinstance(update, types.UpdateChannel | types.UpdateChannelTooLong):
            state = self.followed.get(marked_id(update.channel_id, PeerKind.CHANNEL))
            if state is not None:
                if isinstance(update, types.UpdateChannelTooLong) and state.pts is not None:
                    state.request_catch_up()
                state.request_sweep()
            return
        if isinstance(update, types.UpdatesTooLong):
            self.catch_up_all()
            return
        if isinstance(update, types.UpdateMessageReactions):
            state = self.followed.get(get_peer_id(update.peer))
            if state is not None:
                state.reacted.add(update.msg_id)
                state.wake.set()
            return
        if isinstance(update, types.UpdateNewMessage | types.UpdateNewChannelMessage):
            self._on_new_update(update, update.message)

    def _on_new_update(self, update: Any, message: Any) -> None:
        """The messages published from the raw update: service messages anywhere, and channel messages."""
        if isinstance(message, types.MessageService):
            # Service messages never reach NewMessage: published from here, in their place in the pts order (a
            # sweep later would put them behind the messages that followed). A migration also wants the sweep.
            state = self.followed.get(get_peer_id(message.peer_id))
            if state is None:
                return
            try:
                message._finish_init(self.client, getattr(update, "_entities", {}), None)
                self._offer(
                    state, map_message(message, state.group, source=Source.LIVE, ingest_time=self._clock()), update
                )
            except Exception:
                self._handler_failed(state, update)
            if isinstance(message.action, types.MessageActionChatMigrateTo):
                state.request_sweep()
            return
        channel = _channel_of(update)
        if not isinstance(update, types.UpdateNewChannelMessage) or channel is None:
            return  # the account box's messages come through `_on_new` (short forms included)
        # Mapped from the update itself: building Telethon's NewMessage event and finishing its message for
        # every update was about a quarter of the live path's CPU.
        state = self.followed.get(channel)
        if state is None or not isinstance(message, types.Message):
            return
        try:
            mapped = map_message(
                message,
                state.group,
                source=Source.LIVE,
                ingest_time=self._clock(),
                entities=getattr(update, "_entities", None),
                pts=_pts_of(update)[0],
            )
            self._offer(state, mapped, update)
        except Exception:
            self._handler_failed(state, update)

    def _move_positions(self, update: Any) -> None:
        """Advance the position of the box `update` belongs to, or mark a gap in it."""
        pts, count = _pts_of(update)
        if pts is None:
            return
        channel = _channel_of(update)
        if channel is not None:
            state = self.followed.get(channel)
            if state is not None:
                self._step(state, pts, count)
            return
        for state in self:  # the account box: every basic group moves with it
            if state.is_basic:
                self._step(state, pts, count)

    def _step(self, state: Followed, pts: int, count: int) -> None:
        if state.catch_up or state.pts is None or pts <= state.pts:
            return  # waiting for a catch-up, not positioned yet, or seen already (Telethon's own gap fill)
        if pts - count == state.pts:
            state.pts = pts
            return
        self.stats.live_gaps += 1
        log.debug("group %d: update pts %d after %d: catching up", state.group.id, pts, state.pts)
        state.request_catch_up()

    def _handler_failed(self, state: Followed, update: Any) -> None:
        self.stats.handler_errors += 1
        log.exception("live handler failed in group %d: a catch-up and a sweep will fill the gap", state.group.id)
        pts, count = _pts_of(update)
        if pts is not None and state.pts == pts:
            state.pts = pts - count  # the change was not queued: catch up from in front of it
            state.request_catch_up()
        state.request_sweep()

    def _remember_basic(self, msg_id: int, group_id: int) -> None:
        self._recent_basic[msg_id] = group_id
        if len(self._recent_basic) > _RECENT_BASIC_IDS:
            self._recent_basic.popitem(last=False)

    def _hook_reconnects(self) -> None:
        """Sweep every group after Telethon reconnects: it does not catch up on what it missed.

        Telethon has no public reconnect event; its sender calls the client's `auto_reconnect_callback`
        after every successful reconnect, so we chain ours in front of it (Telethon is pinned).
        """
        sender = getattr(self.client, "_sender", None)
        previous = getattr(sender, "_auto_reconnect_callback", None)
        if sender is None or previous is None:
            log.warning("this Telethon version offers no reconnect hook: relying on timed sweeps")
            return

        async def on_reconnect() -> None:
            self.stats.reconnects += 1
            log.info("reconnected to Telegram: catching up, rescanning and sweeping every group")
            self.catch_up_all(rescan=True)
            await previous()

        sender._auto_reconnect_callback = on_reconnect

        def unhook() -> None:
            sender._auto_reconnect_callback = previous

        self._unhook = unhook


class _AccountBoxMessages(events.NewMessage):  # type: ignore[misc]  # Telethon is untyped
    """Telethon's NewMessage for the account box's updates only (basic groups and their short forms):
    channel messages are mapped from the raw update (`LiveDispatch._on_raw`)."""

    @classmethod
    def build(cls, update: Any, others: Any = None, self_id: Any = None) -> Any:
        if isinstance(update, types.UpdateNewChannelMessage):
            return None
        return super().build(update, others, self_id)


def _pts_of(update: Any) -> tuple[int | None, int]:
    """The pts and pts_count of an update that is a step of its box (None for one that is not)."""
    pts = getattr(update, "pts", None)
    count = getattr(update, "pts_count", None)
    if not isinstance(pts, int) or not isinstance(count, int) or isinstance(update, types.UpdateChannelTooLong):
        return None, 0
    return pts, count


def _channel_of(update: Any) -> int | None:
    """The marked id of the channel whose box `update` belongs to, or None for the account's box."""
    channel_id = getattr(update, "channel_id", None)
    if isinstance(channel_id, int):
        return marked_id(channel_id, PeerKind.CHANNEL)
    peer = getattr(getattr(update, "message", None), "peer_id", None)
    if isinstance(peer, types.PeerChannel):
        return marked_id(peer.channel_id, PeerKind.CHANNEL)
    return None
