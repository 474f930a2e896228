"""Live dispatch: Telethon's update handlers turned into per-group queues of events.

Live updates are fast but not a guarantee: Telegram drops them around reconnects, pushes none for
channels the account has not joined, and Telethon gives up on more than 100 missed channel updates. So a
handler never decides anything: it maps the update, queues it for its group and wakes the group's follow
loop; when in doubt (a service message, a changed channel, a handler error, a reconnect) it asks for a
sweep, which reads history and is the guarantee.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from telethon import TelegramClient, events, types
from telethon.utils import get_peer_id

from emitter.cursor import PeerRef
from emitter.records import EventType, Group, GroupType, MessageEvent, PeerKind, Source, marked_id
from emitter.telegram_mapping import map_deleted, map_message

log = logging.getLogger("emitter.telegram")

LIVE_QUEUE_LIMIT: Final = 50_000
_RECENT_BASIC_IDS: Final = 100_000


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


@dataclass
class Followed:
    """One group's live state: the queue handlers fill and the flags that wake its follow loop."""

    group: Group
    entity: Any
    peer: PeerRef | None = None
    queue: asyncio.Queue[MessageEvent] = field(default_factory=lambda: asyncio.Queue(LIVE_QUEUE_LIMIT))
    sweep_now: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by live handlers and sweep requests: one event to wait on instead of two futures."""
    failed: str | None = None
    unjoined: bool = False
    """A public channel the account is not a member of: Telegram pushes nothing for it."""

    def request_sweep(self) -> None:
        """Ask the group's follow loop for a sweep now."""
        self.sweep_now.set()
        self.wake.set()


class LiveDispatch:
    """Registers Telethon handlers on one client and routes what they see to the followed groups."""

    def __init__(self, client: TelegramClient, stats: LiveStats, clock: Callable[[], datetime]) -> None:
        self.client = client
        self.stats = stats
        self._clock = clock
        self.followed: dict[int, Followed] = {}
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

    def start(self) -> None:
        """Register the handlers and the reconnect hook (idempotent)."""
        if self._handlers:
            return
        self._handlers = [
            (self._on_new, events.NewMessage()),
            (self._on_edit, events.MessageEdited()),
            (self._on_delete, events.MessageDeleted()),
            (self._on_raw, events.Raw()),
        ]
        for callback, event in self._handlers:
            self.client.add_event_handler(callback, event)
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

    def _enqueue(self, state: Followed, event: MessageEvent) -> None:
        try:
            state.queue.put_nowait(event)
            state.wake.set()
            self.stats.live_events += 1
        except asyncio.QueueFull:
            # Lossless all the same for NEW events: the sweep reads them from history.
            self.stats.live_dropped += 1
            state.request_sweep()

    async def _on_new(self, event: Any) -> None:
        state = self.followed.get(event.chat_id)
        if state is None:
            return
        try:
            if state.group.type is GroupType.GROUP:
                self._remember_basic(event.message.id, state.group.id)
            self._enqueue(state, map_message(event.message, state.group, source=Source.LIVE, ingest_time=self._clock()))
        except Exception:
            self._handler_failed(state)

    async def _on_edit(self, event: Any) -> None:
        state = self.followed.get(event.chat_id)
        if state is None:
            return
        try:
            mapped = map_message(
                event.message, state.group, source=Source.LIVE, ingest_time=self._clock(), event_type=EventType.EDIT
            )
            self._enqueue(state, mapped)
        except Exception:
            self._handler_failed(state)

    async def _on_delete(self, event: Any) -> None:
        chat_id = event.chat_id
        for msg_id in event.deleted_ids:
            # Deletions in basic groups carry no chat id: their ids are account-wide, so a recent id finds it.
            gid = chat_id if chat_id is not None else self._recent_basic.get(msg_id)
            state = self.followed.get(gid) if gid is not None else None
            if state is not None:
                self._enqueue(state, map_deleted(state.group, msg_id, source=Source.LIVE, ingest_time=self._clock()))

    async def _on_raw(self, update: Any) -> None:
        # A changed channel (access lost, say) or one Telegram says we are too far behind in: sweep it now.
        if isinstance(update, types.UpdateChannel | types.UpdateChannelTooLong):
            state = self.followed.get(marked_id(update.channel_id, PeerKind.CHANNEL))
            if state is not None:
                state.request_sweep()
            return
        if isinstance(update, types.UpdatesTooLong):
            self.sweep_all()
            return
        # Service messages (a migration among them) never reach NewMessage: a sweep picks them up.
        message = getattr(update, "message", None)
        if isinstance(message, types.MessageService):
            state = self.followed.get(get_peer_id(message.peer_id))
            if state is not None:
                state.request_sweep()

    def _handler_failed(self, state: Followed) -> None:
        self.stats.handler_errors += 1
        log.exception("live handler failed in group %d: a sweep will fill the gap", state.group.id)
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
            log.info("reconnected to Telegram: sweeping every group")
            self.sweep_all()
            await previous()

        sender._auto_reconnect_callback = on_reconnect

        def unhook() -> None:
            sender._auto_reconnect_callback = previous

        self._unhook = unhook
