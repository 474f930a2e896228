"""The Telegram source: Telethon backfill, then follow with live handlers and gap-filling sweeps.

Correctness lives in the cursor rules (see `emitter.cursor`): the backfill and every sweep walk history
ascending from the cursor (never newest-first with `min_id`, which yields the newest N and skips the rest);
live `NewMessage` events are fast but may be missed around reconnects and flood waits, so a sweep follows
on a timer, after every reconnect, after a flood wait and when a handler fails. In channels and supergroups
a sweep fetches only the holes below the highest live id (by id) and then the tail, so a quiet group's sweep
costs one request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from opentelemetry.trace import SpanKind, Tracer
from telethon import TelegramClient, errors, events, types
from telethon.sessions import StringSession

from emitter.errors import ConfigError, FatalError, SourceError
from emitter.lifecycle import Service
from emitter.protocols import CursorView, Page, Window
from emitter.records import EventType, Group, GroupType, MessageEvent, PeerKind, Source, marked_id, utc_now
from emitter.settings import TelegramSettings
from emitter.telegram_mapping import group_from_entity, map_deleted, map_message
from emitter.tracing import tracer as default_tracer

log = logging.getLogger("emitter.telegram")

PAGE_SIZE: Final = 100
"""Telegram returns at most 100 messages per history request; pages match requests one to one."""
MAX_HOLES: Final = 1000
"""Above this many holes a sweep walks history instead of fetching ids."""
LIVE_QUEUE_LIMIT: Final = 50_000
_IDS_PER_REQUEST: Final = 100
_RECENT_BASIC_IDS: Final = 100_000

_LOST_ACCESS = (
    errors.ChannelPrivateError,
    errors.ChatForbiddenError,
    errors.ChannelBannedError,
    errors.UserBannedInChannelError,
    errors.UserKickedError,
    errors.ChannelInvalidError,
    errors.ChatIdInvalidError,
    errors.ChatRestrictedError,
    errors.PeerIdInvalidError,  # what a basic group answers once the account was removed from it
)
_ACCOUNT_GONE = (
    errors.AuthKeyUnregisteredError,
    errors.AuthKeyDuplicatedError,
    errors.SessionRevokedError,
    errors.UserDeactivatedError,
    errors.UserDeactivatedBanError,
)
_LINK = re.compile(r"^(?:https?://)?(?:t|telegram)\.me/([A-Za-z][A-Za-z0-9_]{3,31})/?$")


@dataclass
class SourceStats:
    """Counters the metrics endpoint and tests read."""

    flood_waits: int = 0
    flood_wait_seconds: float = 0.0
    sweeps: int = 0
    live_events: int = 0
    live_dropped: int = 0
    handler_errors: int = 0
    reconnects: int = 0


@dataclass
class _Followed:
    """Per-group live state: the queue live handlers fill and the flag that asks for a sweep."""

    group: Group
    entity: Any
    queue: asyncio.Queue[MessageEvent] = field(default_factory=lambda: asyncio.Queue(LIVE_QUEUE_LIMIT))
    sweep_now: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by the live handlers and by sweep requests: one event to wait on instead of two futures."""

    def request_sweep(self) -> None:
        """Ask the group's follow loop for a sweep now."""
        self.sweep_now.set()
        self.wake.set()

    failed: str | None = None


class TelegramSource(Service):
    """Backfills and follows Telegram groups through one Telethon client (one account)."""

    name = "telegram"

    def __init__(
        self,
        client: TelegramClient,
        groups: Sequence[str | int],
        *,
        sweep_interval: float = 30.0,
        window: Window | None = None,
        follow: bool = True,
        own_client: bool = False,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], datetime] = utc_now,
        tracer: Tracer | None = None,
    ) -> None:
        self.client = client
        self.tracer = tracer or default_tracer()
        self.specs = list(groups)
        self.sweep_interval = sweep_interval
        self.window = window or Window()
        self.follow = follow
        self.stats = SourceStats()
        self.unresolved: dict[str, str] = {}
        """Group specs that could not be resolved at start, with the reason."""
        self._own_client = own_client
        self._sleep = sleep
        self._clock = clock
        self._followed: dict[int, _Followed] = {}
        self._recent_basic: OrderedDict[int, int] = OrderedDict()
        self._unhook: Callable[[], None] | None = None
        self._dialogs_loaded = False
        self._handlers: list[tuple[Callable[..., Awaitable[None]], Any]] = []

    def __repr__(self) -> str:
        return f"TelegramSource(groups={self.specs!r})"

    @property
    def connected(self) -> bool:
        """Whether the client is connected to Telegram (for readiness)."""
        return bool(self.client.is_connected())

    @classmethod
    def from_settings(cls, settings: TelegramSettings, **kwargs: Any) -> TelegramSource:
        """A source with its own client, logged in with the configured session (string or file)."""
        if not settings.groups:
            raise ConfigError(
                "telegram.groups is empty: expected at least one group (marked id, @username or t.me link); "
                "`emitter groups` lists the account's groups"
            )
        # A monitor outlives any outage: Telethon's default of 5 reconnect attempts (about 35 s) would leave
        # requests queued on a dead sender for good, so it retries for ever (readiness shows the outage).
        client = make_client(settings, connection_retries=-1)
        return cls(client, settings.groups, sweep_interval=settings.sweep_interval, own_client=True, **kwargs)

    # --- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (if needed), check the login, and register the live handlers."""
        if not self.client.is_connected():
            await self.client.connect()
        restrict_session_file(self.client)
        try:
            authorized = await self.client.is_user_authorized()
        except _ACCOUNT_GONE as e:
            raise FatalError(
                f"the Telegram session is no longer valid ({type(e).__name__}): run `emitter login`"
            ) from e
        if not authorized:
            raise FatalError("the Telegram session is not logged in: run `emitter login` once to create one")
        self._handlers = [
            (self._on_new, events.NewMessage()),
            (self._on_edit, events.MessageEdited()),
            (self._on_delete, events.MessageDeleted()),
            (self._on_raw, events.Raw()),
        ]
        for callback, event in self._handlers:
            self.client.add_event_handler(callback, event)
        self._hook_reconnects()

    async def stop(self) -> None:
        """Remove handlers; disconnect the client if this source created it (idempotent)."""
        for callback, event in self._handlers:
            self.client.remove_event_handler(callback, event)
        self._handlers = []
        if self._unhook is not None:
            self._unhook()
            self._unhook = None
        if self._own_client and self.client.is_connected():
            await self.client.disconnect()

    # --- groups ---------------------------------------------------------------------------------------------

    async def groups(self) -> Sequence[Group]:
        """Resolve every configured group; unresolvable ones are logged and reported in `unresolved`."""
        out: list[Group] = []
        for spec in self.specs:
            try:
                entity = await self._resolve(spec)
            except (ValueError, errors.RPCError) as e:
                reason = f"{type(e).__name__}: {e}"
                self.unresolved[str(spec)] = reason
                log.error("cannot resolve group %s: %s", spec, reason)  # noqa: TRY400 - a user mistake, no traceback
                continue
            group = group_from_entity(entity)
            self._followed[group.id] = _Followed(group, entity)
            out.append(group)
        if not out:
            raise FatalError(f"none of the configured groups could be resolved: {self.unresolved}")
        return out

    async def _resolve(self, spec: str | int) -> Any:
        text = str(spec).strip()
        link = _LINK.match(text)
        if link:
            text = "@" + link.group(1)
        if re.fullmatch(r"-?\d+", text):
            return await self._entity_by_id(int(text))
        if not text.startswith("@"):
            text = "@" + text
        return await self.client.get_entity(text)

    async def _entity_by_id(self, marked_id: int) -> Any:
        """An entity by marked id; a fresh StringSession has no cache, so the dialogs fill it once."""
        try:
            return await self.client.get_entity(marked_id)
        except ValueError:
            if self._dialogs_loaded:
                raise
        self._dialogs_loaded = True
        await self.client.get_dialogs(limit=None)
        return await self.client.get_entity(marked_id)

    # --- pages ----------------------------------------------------------------------------------------------

    async def pages(self, group: Group, cursor: CursorView) -> AsyncIterator[Page]:
        """Backfill `group` from its cursor, then (unless one-shot) follow it for ever."""
        state = self._followed[group.id]
        try:
            moved_to = cursor(group.id).moved_to
            if moved_to is not None:
                state = await self._switch_to(state, moved_to)
            window: Window | None = self.window
            while True:
                moved: Group | None = None
                async for page in self._walk(state, cursor, Source.BACKFILL, window):
                    yield page
                    moved = page.moved_to
                if moved is None:
                    break
                # The supergroup's own history starts again at id 1: walk all of it.
                state, window = await self._switch_to(state, moved.id), None
            if not self.follow:
                return
            async for page in self._follow(state, cursor):
                yield page
        except _LOST_ACCESS as e:
            state.failed = f"{type(e).__name__}: {e}"
            raise SourceError(state.group.id, state.failed) from e
        except _ACCOUNT_GONE as e:
            raise FatalError(f"Telegram ended the session ({type(e).__name__}): log in again") from e

    async def _switch_to(self, state: _Followed, new_id: int) -> _Followed:
        """Follow the supergroup a basic group migrated to, from here on."""
        entity = await self._entity_by_id(new_id)
        new = _Followed(group_from_entity(entity), entity)
        new.request_sweep()  # what arrived before we listened is in its history
        self._followed[new.group.id] = new
        log.info("group %d migrated to %d: following the supergroup", state.group.id, new.group.id)
        return new

    async def _walk(
        self, state: _Followed, cursor: CursorView, source: Source, window: Window | None = None
    ) -> AsyncIterator[Page]:
        """Walk history ascending from the cursor in pages of 100, resuming after flood waits.

        Each page's `walked_to` is its last id. A FloodWait raised between requests leaves every message
        already received in the buffer: it is yielded first, and the walk resumes after it, so no page is
        fetched twice.
        """
        window = window or Window()
        start = max(cursor(state.group.id).cursor, window.after_id or 0, 0)
        offset_date = window.start_date if cursor(state.group.id).cursor <= 0 else None
        remaining = window.limit
        page = _PageBuilder(self, state.group, source)
        while True:
            history = self.client.iter_messages(
                state.entity, min_id=start, reverse=True, wait_time=0, offset_date=offset_date
            )
            try:
                async for message in history:
                    if window.end_date is not None and message.date > window.end_date:
                        break
                    page.add(map_message(message, state.group, source=source, ingest_time=self._clock()), message.id)
                    page.total = history.total
                    moved = _migrated_to(message)
                    if moved is not None:
                        yield page.take(moved_to=await self._group_of(moved))
                        return
                    if remaining is not None:
                        remaining -= 1
                        if remaining <= 0:
                            break
                    if len(page) >= PAGE_SIZE:
                        yield page.take()
                break
            except errors.FloodWaitError as e:
                if len(page):
                    yield page.take()
                if page.last is not None:
                    start, offset_date = page.last, None
                page.flood_seconds += e.seconds
                await self._flood_wait(state.group, e.seconds)
        if len(page):
            yield page.take()

    async def _group_of(self, marked_id: int) -> Group:
        return group_from_entity(await self._entity_by_id(marked_id))

    async def _flood_wait(self, group: Group, seconds: float) -> None:
        self.stats.flood_waits += 1
        self.stats.flood_wait_seconds += seconds
        log.warning(
            "flood wait of %d s in group %d: resuming from the cursor afterwards",
            seconds,
            group.id,
            extra={"group_id": group.id},
        )
        await self._sleep(seconds)
        for other in self._followed.values():
            other.request_sweep()

    async def _follow(self, state: _Followed, cursor: CursorView) -> AsyncIterator[Page]:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self.sweep_interval
        while True:
            live = await self._next_live(state, max(0.0, next_sweep - loop.time()))
            if live:
                yield Page(state.group, live)
            if state.sweep_now.is_set() or loop.time() >= next_sweep:
                state.sweep_now.clear()
                async for page in self._sweep(state, cursor):
                    yield page
                    if page.moved_to is not None:
                        state = await self._switch_to(state, page.moved_to.id)
                next_sweep = loop.time() + self.sweep_interval

    async def _next_live(self, state: _Followed, max_wait: float) -> list[MessageEvent]:
        """Live events queued for the group, waiting up to `max_wait` s for the first (or a sweep request)."""
        if state.queue.empty() and not state.sweep_now.is_set():
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that arrives
            # as the event fires, and the feeder would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max_wait):
                    await state.wake.wait()
        state.wake.clear()  # before draining: whatever arrives next sets it again
        events: list[MessageEvent] = []
        while not state.queue.empty():
            events.append(state.queue.get_nowait())
        return events

    async def _sweep(self, state: _Followed, cursor: CursorView) -> AsyncIterator[Page]:
        """Publish what live handlers missed: holes by id (channels), then the tail of history."""
        self.stats.sweeps += 1
        current = cursor(state.group.id)
        if state.group.type in (GroupType.CHANNEL, GroupType.SUPERGROUP) and current.above:
            holes = current.holes(MAX_HOLES + 1)
            if len(holes) <= MAX_HOLES:
                found = await self._fetch_ids(state, holes)
                yield Page(state.group, found, walked_to=current.highest)
        async for page in self._walk(state, cursor, Source.SWEEP):
            yield page

    async def _fetch_ids(self, state: _Followed, ids: list[int]) -> list[MessageEvent]:
        """Messages by id, matched by id (Telegram may omit ids; deleted ones come back empty)."""
        found: list[MessageEvent] = []
        for i in range(0, len(ids), _IDS_PER_REQUEST):
            chunk = ids[i : i + _IDS_PER_REQUEST]
            while True:
                try:
                    messages = await self.client.get_messages(state.entity, ids=chunk)
                    break
                except errors.FloodWaitError as e:
                    await self._flood_wait(state.group, e.seconds)
            wanted = set(chunk)
            for message in messages or ():
                if message is None or isinstance(message, types.MessageEmpty) or message.id not in wanted:
                    continue
                found.append(map_message(message, state.group, source=Source.SWEEP, ingest_time=self._clock()))
        found.sort(key=lambda e: e.message_id)
        return found

    # --- live handlers --------------------------------------------------------------------------------------

    def _enqueue(self, state: _Followed, event: MessageEvent) -> None:
        try:
            state.queue.put_nowait(event)
            state.wake.set()
            self.stats.live_events += 1
        except asyncio.QueueFull:
            # Lossless all the same for NEW events: the sweep reads them from history.
            self.stats.live_dropped += 1
            state.request_sweep()

    async def _on_new(self, event: Any) -> None:
        state = self._followed.get(event.chat_id)
        if state is None:
            return
        try:
            if state.group.type is GroupType.GROUP:
                self._remember_basic(event.message.id, state.group.id)
            self._enqueue(state, map_message(event.message, state.group, source=Source.LIVE, ingest_time=self._clock()))
        except Exception:
            self._handler_failed(state)

    async def _on_edit(self, event: Any) -> None:
        state = self._followed.get(event.chat_id)
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
            state = self._followed.get(gid) if gid is not None else None
            if state is not None:
                self._enqueue(state, map_deleted(state.group, msg_id, source=Source.LIVE, ingest_time=self._clock()))

    async def _on_raw(self, update: Any) -> None:
        # A changed channel (access lost, say) shows on its next request: sweep it now.
        if isinstance(update, types.UpdateChannel):
            state = self._followed.get(marked_id(update.channel_id, PeerKind.CHANNEL))
            if state is not None:
                state.request_sweep()
            return
        # Service messages (a migration among them) never reach NewMessage: a sweep picks them up.
        message = getattr(update, "message", None)
        if isinstance(message, types.MessageService):
            from telethon.utils import get_peer_id  # noqa: PLC0415 - only on this rare path

            state = self._followed.get(get_peer_id(message.peer_id))
            if state is not None:
                state.request_sweep()

    def _handler_failed(self, state: _Followed) -> None:
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
            for state in self._followed.values():
                state.request_sweep()
            await previous()

        sender._auto_reconnect_callback = on_reconnect

        def unhook() -> None:
            sender._auto_reconnect_callback = previous

        self._unhook = unhook


class _PageBuilder:
    """Collects one page of a walk and, when it is taken, records its span (a CLIENT span per page)."""

    def __init__(self, source: TelegramSource, group: Group, kind: Source) -> None:
        self.source, self.group, self.kind = source, group, kind
        self.events: list[MessageEvent] = []
        self.last: int | None = None
        self.total: int | None = None
        self.flood_seconds = 0.0
        self.started = time.time_ns()

    def __len__(self) -> int:
        return len(self.events)

    def add(self, event: MessageEvent, msg_id: int) -> None:
        if not self.events:
            self.started = time.time_ns()
        self.events.append(event)
        self.last = msg_id

    def take(self, moved_to: Group | None = None) -> Page:
        events, self.events = self.events, []
        span = self.source.tracer.start_span(
            "telegram history page",
            kind=SpanKind.CLIENT,
            start_time=self.started,
            attributes={
                "telegram.group.id": self.group.id,
                "telegram.page.size": len(events),
                "telegram.page.first_id": events[0].message_id if events else 0,
                "telegram.page.last_id": self.last or 0,
                "telegram.flood_wait.seconds": self.flood_seconds,
                "emitter.source": self.kind.value,
            },
        )
        span.end()
        self.flood_seconds = 0.0
        context = span.get_span_context()
        return Page(
            self.group,
            events,
            walked_to=self.last,
            moved_to=moved_to,
            total=self.total,
            span_context=context if context.is_valid else None,
        )


def make_client(settings: TelegramSettings, *, connection_retries: int = 5) -> TelegramClient:
    """A Telethon client for the configured account: a StringSession if given, else the session file."""
    if settings.api_id is None or settings.api_hash is None:
        raise ConfigError(
            "telegram.api_id and telegram.api_hash are required: expected the values from my.telegram.org"
        )
    session: StringSession | str
    if settings.session is not None:
        session = StringSession(settings.session.get_secret_value())
    else:
        session = str(settings.session_file or Path("emitter.session"))
    # Telethon creates the session file (the account's auth key) in this constructor: under this umask it is
    # owner-only from its first byte, with no window before a chmod.
    umask = os.umask(0o077)
    try:
        return TelegramClient(
            session,
            settings.api_id,
            settings.api_hash.get_secret_value(),
            flood_sleep_threshold=settings.flood_sleep_threshold,
            receive_updates=True,
            connection_retries=connection_retries,
            retry_delay=2,
        )
    finally:
        os.umask(umask)


def _migrated_to(message: Any) -> int | None:
    """The marked id of the supergroup a basic group became, if this is its migration message."""
    action = getattr(message, "action", None)
    if isinstance(action, types.MessageActionChatMigrateTo):
        return marked_id(int(action.channel_id), PeerKind.CHANNEL)
    return None


def restrict_session_file(client: TelegramClient) -> None:
    """Session files hold the account's auth key: owner-only (new ones are created so; this fixes older ones)."""
    filename = getattr(client.session, "filename", None)
    if isinstance(filename, str) and os.path.exists(filename):
        os.chmod(filename, 0o600)
