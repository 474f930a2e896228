"""The Telegram source: backfill each group through the account's gateway, then follow it.

Correctness lives in the cursor rules (`emitter.cursor`), the sweep planner (`emitter.sweep`) and the
tracker's change rules (`emitter.tracker`): the backfill and every sweep walk history ascending from the
cursor; live events (`emitter.telegram_live`) are fast but may be missed, so a sweep follows on a jittered
timer, after every reconnect and whenever a handler or Telegram hints at a gap; edits, deletions and
reactions made while nobody listened come from catch-ups and rescans (`emitter.telegram_changes`), from the
update position each cursor stores. Every request passes the account's `RequestGateway`, which paces,
holds flood waits and retries transient errors; what reaches this module is a group's own trouble (lost
access: marked failed and re-checked) or the account's (session gone: stop and ask for a login).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.trace import SpanKind, Tracer
from telethon import TelegramClient, errors, types
from telethon import utils as tl_utils
from telethon.tl.functions.channels import GetMessagesRequest as GetChannelMessagesRequest
from telethon.tl.functions.channels import JoinChannelRequest

from emitter.account_health import AccountState
from emitter.clock import SYSTEM_CLOCK, Clock
from emitter.cursor import GroupCursor
from emitter.digest import DEFAULT_LIMIT
from emitter.errors import ConfigError, FatalError
from emitter.lifecycle import Service
from emitter.protocols import CursorView, Page, Window
from emitter.read_budget import ReadBudget, Spending
from emitter.records import Group, GroupType, MessageEvent, PeerKind, Source, marked_id, utc_now
from emitter.settings import MediaSettings, TelegramSettings
from emitter.sweep import chunks, holes_to_fetch, proven_to
from emitter.telegram_changes import ChangeCapture
from emitter.telegram_client import make_client, record_identity, restrict_session_file, transport_connected
from emitter.telegram_gateway import (
    LOST_ACCESS,
    ErrorClass,
    GatewayStats,
    HealthCallback,
    Pace,
    Priority,
    RequestGateway,
    classify,
    parse_paces,
    priority,
    requests_for,
)
from emitter.telegram_history import history_pages
from emitter.telegram_live import DEFAULT_LIVE_BUFFER_BYTES, Followed, LiveDispatch, LiveStats
from emitter.telegram_mapping import group_from_entity, map_message
from emitter.telegram_proxy import Proxy
from emitter.telegram_resolver import Resolved, Resolver, peer_ref
from emitter.threads import Threads, discussion_group
from emitter.tracing import tracer as default_tracer

if TYPE_CHECKING:
    from emitter.media_stage import MediaStage

__all__ = ["PAGE_SIZE", "SourceStats", "TelegramSource", "make_client", "restrict_session_file"]

log = logging.getLogger("emitter.telegram")

PAGE_SIZE: Final = 100
"""Telegram returns at most 100 messages per history request; pages match requests one to one."""
_TRANSIENT_BACKOFF: Final = (1.0, 60.0)


@dataclass
class SourceStats(LiveStats):
    """The live counters plus the gateway's, as one object the metrics endpoint reads at scrape time."""

    gateway: GatewayStats | None = None

    @property
    def flood_waits(self) -> int:
        """FloodWaits Telegram answered (the gateway counts them)."""
        return sum(self.gateway.flood_waits.values()) if self.gateway else 0

    @property
    def flood_wait_seconds(self) -> float:
        """Seconds of FloodWait Telegram asked for."""
        return self.gateway.flood_wait_seconds if self.gateway else 0.0


@dataclass
class _Progress:
    """What the status page says of one group."""

    phase: str = "resolving"
    last_progress: float = field(default_factory=time.monotonic)
    """Monotonic time of the last page the group yielded."""


class TelegramSource(Service):
    """Backfills and follows Telegram groups through one Telethon client (one account).

    `health_callback(health)` is called with the account's `AccountHealth` on every change of its state
    (ok, waiting, restricted, lost access, logged out, banned), from the event loop: keep it short.
    """

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
        gateway: RequestGateway | None = None,
        timer: Clock = SYSTEM_CLOCK,
        clock: Callable[[], datetime] = utc_now,
        tracer: Tracer | None = None,
        recheck_interval: float = 300.0,
        join_channels: bool = False,
        unjoined_sweep_interval: float = 10.0,
        unreachable_after: float = 60.0,
        stall_after: float = 900.0,
        takeout: bool = False,
        rescan_window: int = DEFAULT_LIMIT,
        rescan_on_start: bool = True,
        heartbeat_interval: float = 60.0,
        live_buffer_bytes: int = DEFAULT_LIVE_BUFFER_BYTES,
        positions: bool = True,
        health_callback: HealthCallback | None = None,
        read_budget: int = 0,
        proxy: Proxy | None = None,
        follow_comments: bool = False,
        media: MediaSettings | None = None,
    ) -> None:
        self.client = client
        self.proxy = proxy
        """The proxy the client connects through (None: directly), named in readiness when it is unreachable."""
        self.tracer = tracer or default_tracer()
        self.specs = list(groups)
        self.sweep_interval = sweep_interval
        self.window = window or Window()
        self.follow = follow
        self.timer = timer
        # One gateway per account: sources sharing a client (the library API makes one per call) share its.
        self.gateway = gateway or getattr(client, "_emitter_gateway", None) or RequestGateway(clock=timer)
        self.stats = SourceStats(gateway=self.gateway.stats)
        self.health_callback = health_callback
        self.unresolved: dict[str, str] = {}
        """Group specs that could not be resolved at start, with the reason."""
        self.unjoined: set[int] = set()
        self.recheck_interval = recheck_interval
        self.join_channels = join_channels
        self.unjoined_sweep_interval = unjoined_sweep_interval
        self.unreachable_after = unreachable_after
        self.stall_after = stall_after
        self.takeout = takeout
        self._takeout: Any = None
        """The open takeout session (Telethon's `_TakeoutClient`), once a backfill asked for it."""
        self.positions = positions
        """Learn and store each group's update position (off for library walks, which follow nothing)."""
        self.rescan_on_start = rescan_on_start
        self.digest_limit = rescan_window
        """How many of each group's newest messages the cursors remember (what a rescan compares with)."""
        self.heartbeat_interval = heartbeat_interval
        self.resolver = Resolver(client)
        self.live = LiveDispatch(client, self.stats, clock, budget_bytes=live_buffer_bytes)
        self.changes = ChangeCapture(client, self.stats, clock, window=rescan_window, owner_of=self.live.owner_of)
        self._own_client = own_client
        self._clock = clock
        self._stored: Mapping[int, GroupCursor] = {}
        self._progress: dict[int, _Progress] = {}
        self._fatal: FatalError | None = None
        self._stopping = False
        self._watcher: asyncio.Task[None] | None = None
        self._transport = (True, time.monotonic())
        self.budget = ReadBudget(read_budget)
        """Messages backfill walks may read per rolling day (the account's; sweeps and live do not spend it)."""
        self._starved: set[int] = set()
        """Groups whose backfill walk stopped because the read budget was spent."""
        self.follow_comments = follow_comments
        self.media_settings = media if media is not None and media.enabled else None
        """The `[media]` section when media are stored: the store is opened by `start`."""
        self.media: MediaStage | None = None
        """Follow each configured channel's discussion group as a group of its own."""
        self.threads = Threads(client)

    def __repr__(self) -> str:
        return f"TelegramSource(groups={self.specs!r})"

    @property
    def connected(self) -> bool:
        """Whether the connection to Telegram is up right now (not merely wanted)."""
        return transport_connected(self.client)

    @classmethod
    def from_settings(cls, settings: TelegramSettings, **kwargs: Any) -> TelegramSource:
        """A source with its own client and gateway, logged in with the configured session."""
        if not settings.groups:
            raise ConfigError(
                "telegram.groups is empty: expected at least one group (marked id, @username or t.me link); "
                "`emitter groups` lists the account's groups"
            )
        client = make_client(settings)
        timer = kwargs.pop("timer", SYSTEM_CLOCK)
        gateway = kwargs.pop("gateway", None) or gateway_from_settings(settings, timer)
        return cls(
            client,
            settings.groups,
            sweep_interval=settings.sweep_interval,
            own_client=True,
            gateway=gateway,
            timer=timer,
            recheck_interval=settings.recheck_interval,
            join_channels=settings.join_channels,
            unjoined_sweep_interval=settings.unjoined_sweep_interval,
            unreachable_after=settings.unreachable_after,
            stall_after=settings.stall_after,
            takeout=settings.takeout,
            rescan_window=settings.rescan_window,
            rescan_on_start=settings.rescan_on_start,
            live_buffer_bytes=settings.live_buffer_bytes,
            read_budget=settings.read_budget_per_day,
            proxy=settings.proxy_route,
            follow_comments=settings.follow_comments,
            **kwargs,
        )

    # --- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (if needed), route requests through the gateway, check the login, register handlers."""
        self._stopping = False
        self.gateway.attach(self.client)
        if self.health_callback is not None:
            self.gateway.add_health_listener(self.health_callback)
        if not self.client.is_connected():
            # Down until the first connect succeeds: with Telegram (or the proxy) unreachable, Telethon retries
            # inside connect() for ever, one log line per attempt, and readiness must say so meanwhile.
            self._transport = (False, time.monotonic())
            await self.client.connect()
            self._transport = (True, time.monotonic())
        restrict_session_file(self.client)
        # A dead session surfaces here as the gateway's AccountGoneError ("run `emitter login`").
        if not await self.client.is_user_authorized():
            raise FatalError("the Telegram session is not logged in: run `emitter login` once to create one")
        record_identity(self.client, replace=False)
        if self.media_settings is not None and self.media is None:
            # Imported here: the S3 client costs start-up time that runs without media should not pay.
            from emitter.media_stage import MediaStage  # noqa: PLC0415
            from emitter.media_store import MediaStore  # noqa: PLC0415

            store = MediaStore(self.media_settings)
            await store.start()  # aborts what a crash left half uploaded
            self.media = MediaStage.from_settings(self.media_settings, store, now=self.now)
        self.live.start()
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="telegram watcher")

    async def stop(self) -> None:
        """Remove handlers; disconnect the client if this source created it (idempotent)."""
        self._stopping = True
        if self.health_callback is not None:
            self.gateway.remove_health_listener(self.health_callback)
        self.live.stop()
        media, self.media = self.media, None
        if media is not None:
            await media.store.stop()
            media.close()
        await self._close_takeout()
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if self._own_client:
            if self.client.is_connected():
                await self.client.disconnect()
            self.gateway.detach()

    async def _history_client(self) -> Any:
        """Who backfill walks ask: a takeout session when configured (Telegram's bulk export, lower flood
        limits), else the client. Telegram may want the export confirmed on another device first; until
        then the walks use the client, paced as usual."""
        if not self.takeout:
            return self.client
        if self._takeout is None:
            # A takeout a crashed run left open is still in a file session: go on with it.
            resume = self.client.session.takeout_id is not None
            opening = (
                self.client.takeout(finalize=True)
                if resume
                else self.client.takeout(finalize=True, chats=True, megagroups=True, channels=True)
            )
            try:
                self._takeout = await opening.__aenter__()
            except errors.TakeoutInitDelayError as e:
                log.warning(
                    "Telegram wants the data export confirmed first (open Telegram on another device and allow "
                    "it, or wait %d s): backfilling without takeout meanwhile",
                    e.seconds,
                )
                self.takeout = False
                return self.client
            log.info("backfilling through takeout session %s", self.client.session.takeout_id)
        return self._takeout

    async def _close_takeout(self) -> None:
        takeout, self._takeout = self._takeout, None
        if takeout is not None and self.client.is_connected():
            with contextlib.suppress(errors.RPCError, ValueError, ConnectionError):
                await takeout.__aexit__(None, None, None)

    def remember(self, committed: Mapping[int, GroupCursor]) -> None:
        """The committed cursors: their stored peers spare resolving groups again."""
        self._stored = dict(committed)
        self.budget.restore({gid: cur.reads for gid, cur in committed.items() if cur.reads}, self.now())

    def now(self) -> float:
        """Unix seconds on the source's timer (the read budget's clock: a scaled timer runs its day faster)."""
        return self.timer.time()

    async def _watch(self) -> None:
        """Notice a session Telegram ended and the transport's real state (sampled once a second)."""
        while True:
            disconnected = self.client.disconnected
            # asyncio.wait neither raises the future's error nor cancels it: it is read below.
            await asyncio.wait({disconnected}, timeout=1.0)
            if disconnected.done() and not self._stopping:
                self._disconnected_for_good(disconnected)
                return
            up = transport_connected(self.client)
            if up != self._transport[0]:
                self._transport = (up, time.monotonic())
                log.info("Telegram connection %s", "up" if up else "down")

    def _disconnected_for_good(self, future: asyncio.Future[Any]) -> None:
        error = None if future.cancelled() else future.exception()
        error = error or getattr(self.client, "_updates_error", None)
        self.gateway.note_disconnected(error)
        if self.gateway.gone is not None:
            self._fatal = self.gateway.gone
        else:
            reason = f"{type(error).__name__}: {error}" if error else "no reason given"
            self._fatal = FatalError(f"the Telegram client disconnected for good ({reason})")
        log.critical("%s", self._fatal)
        self._transport = (False, time.monotonic())
        for state in self.live:
            state.wake.set()

    def _check_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self.gateway.gone is not None:
            raise self.gateway.gone

    # --- groups ---------------------------------------------------------------------------------------------

    async def groups(self) -> Sequence[Group]:
        """Resolve every configured group; unresolvable ones are logged and reported in `unresolved`."""
        with requests_for(None, Priority.LIVE):
            resolved, self.unresolved = await self.resolver.resolve(self.specs, self._stored)
        self._check_fatal()  # a session that died while resolving is the account's trouble, not the groups'
        for spec, reason in self.unresolved.items():
            log.error("cannot resolve group %s: %s", spec, reason)
        if self.follow_comments:
            resolved = await self._with_discussions(resolved)
        out: list[Group] = []
        for r in resolved:
            self.threads.add(r.group.id, forum=bool(getattr(r.entity, "forum", False)), channel_id=r.channel_id)
            state = Followed(r.group, r.entity, r.peer)
            if getattr(r.entity, "left", False):
                await self._unjoined(state)
            self.live.add(state)
            self._progress[r.group.id] = _Progress()
            out.append(r.group)
        if not out:
            raise FatalError(f"none of the configured groups could be resolved: {self.unresolved}")
        return out

    async def _with_discussions(self, resolved: list[Resolved]) -> list[Resolved]:
        """The resolved groups and, after them, each channel's discussion group (once, also when configured
        itself), marked with the channel it discusses."""
        out = {r.group.id: r for r in resolved}
        for r in resolved:
            try:
                with requests_for(r.group.id, Priority.LIVE):
                    entity = await discussion_group(self.client, r.entity)
            except errors.RPCError as e:
                if classify(e) is ErrorClass.ACCOUNT_GONE:
                    raise
                log.warning(
                    "channel %d: its discussion group cannot be found (%s): not following comments",
                    r.group.id,
                    type(e).__name__,
                )
                continue
            if entity is None:
                continue
            group = group_from_entity(entity)
            found = out.get(group.id) or Resolved(str(group.id), entity, group, peer_ref(entity))
            if group.id not in out:
                log.info("following discussion group %d (%s) of channel %d", group.id, group.title or "", r.group.id)
            out[group.id] = dataclasses.replace(found, channel_id=r.group.id)
        return list(out.values())

    async def _unjoined(self, state: Followed) -> None:
        """A public channel the account is not in: join it if allowed, else say what it costs."""
        if self.join_channels:
            with requests_for(state.group.id, Priority.LIVE):
                await self.client(JoinChannelRequest(state.entity))
            log.info("joined channel %d (%s) to receive its updates", state.group.id, state.group.title or "")
            return
        state.unjoined = True
        self.unjoined.add(state.group.id)
        log.warning(
            "the account has not joined channel %d (%s): Telegram pushes no updates for it, so it is swept every "
            "%.0f s instead (set telegram.join_channels = true to join it)",
            state.group.id,
            state.group.title or "",
            self.unjoined_sweep_interval,
        )

    # --- pages ----------------------------------------------------------------------------------------------

    async def pages(self, group: Group, cursor: CursorView) -> AsyncIterator[Page]:
        """Backfill `group` from its cursor, then (unless one-shot) follow it for ever."""
        state = self.live.followed[group.id]
        self.live.digest_of = lambda gid: cursor(gid).digest
        delay = _TRANSIENT_BACKOFF[0]
        while True:
            try:
                async for page in self._run(state, cursor):
                    state = self.live.followed.get(page.moved_to.id, state) if page.moved_to else state
                    delay = _TRANSIENT_BACKOFF[0]
                    yield await self._with_media(await self._threaded(state, page))
            except LOST_ACCESS as e:
                reason = f"{type(e).__name__}: {e}"
                state.failed = reason
                self._phase(state.group, "failed")
                yield Page(state.group, [], failed=reason)
                await self._pause(state, self.recheck_interval)
            except FatalError:
                raise
            except (errors.RPCError, ConnectionError, OSError, ValueError, TimeoutError) as e:
                self._check_fatal()
                self.stats.transient_errors += 1
                log.warning(
                    "group %d: %s: %s; resuming from the cursor in %.0f s",
                    state.group.id,
                    type(e).__name__,
                    e,
                    delay,
                    extra={"group_id": state.group.id},
                )
                await self._pause(state, delay)
                delay = min(delay * 2, _TRANSIENT_BACKOFF[1])
            else:
                return

    async def _threaded(self, state: Followed, page: Page) -> Page:
        """The page with its records' forum topics and comment links, for the groups that have them."""
        if not self.threads.wanted(page.group.id):
            return page
        with requests_for(page.group.id, Priority.LIVE):
            return dataclasses.replace(page, events=await self.threads.enrich(state.entity, page.events))

    async def _with_media(self, page: Page) -> Page:
        """The page once the media its records name are durable in the object store (media.enabled)."""
        if self.media is None or not page.events:
            return page
        owner = self.live.followed.get(page.group.id)
        if owner is None:
            return page
        # The lowest priority: another group's live records and sweeps never wait behind a download.
        with requests_for(page.group.id, Priority.BACKFILL):
            return await self.media.complete(self.client, owner.entity, page)

    async def _pause(self, state: Followed, seconds: float) -> None:
        """Wait `seconds`, or less if the session dies meanwhile."""
        state.wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timer.to_real(seconds)):
                while self._fatal is None:
                    await state.wake.wait()
                    state.wake.clear()
        self._check_fatal()
        state.failed = None

    async def _run(self, state: Followed, cursor: CursorView) -> AsyncIterator[Page]:
        self._check_fatal()
        with requests_for(state.group.id, Priority.BACKFILL):
            moved_to = cursor(state.group.id).moved_to
            if moved_to is not None:
                state = await self._switch_to(state, moved_to)
            window: Window | None = self.window
            # Before the walk: changes made during it are then either in what it reads or after the position.
            if self.positions:
                await self._position(state, cursor)
            read = 0
            while True:
                self._phase(state.group, "queued for backfill")
                async with self.gateway.backfill_slot():
                    self._phase(state.group, "backfilling")
                    while True:
                        moved: Group | None = None
                        async for page in self._walk(state, cursor, Source.BACKFILL, window):
                            read += len(page.events)
                            yield page
                            moved = page.moved_to
                        if moved is None:
                            break
                        # The supergroup's own history starts again at id 1: walk all of it.
                        state, window, read = await self._switch_to(state, moved.id), None, 0
                if state.group.id not in self._starved:
                    break
                # The slot is given back while waiting: other groups' walks starve at once and publish live.
                with requests_for(state.group.id, Priority.SWEEP):  # what it asks is follow work
                    async for page in self._budget_pause(state, cursor):
                        yield page
                # The walk goes on from the cursor, for what is left of the window's limit.
                if window is not None and window.limit is not None:
                    window = dataclasses.replace(window, limit=window.limit - read)
        if not self.follow:
            self._phase(state.group, "done")
            return
        with requests_for(state.group.id, Priority.SWEEP):
            async for page in self._follow(state, cursor):
                yield page

    async def _budget_pause(self, state: Followed, cursor: CursorView) -> AsyncIterator[Page]:
        """Publish the group's live changes while its backfill waits for the read budget to come back.

        No sweep: it would walk the same unread history from the cursor, outside the budget. Catch-ups and rescans read
        changes, not the backlog, and go on. It ends with nothing queued, so the walk that follows may claim
        the group's position (every change up to it is then published or in what the walk reads).
        """
        gid = state.group.id
        self._phase(state.group, "backfill paused")
        resume = self.budget.resumes_at(self.now())
        log.warning(
            "group %d: the read budget of %d messages a day is spent: backfill paused until %s (live continues)",
            gid,
            self.budget.limit,
            _iso(resume) if resume is not None else "now",
            extra={"group_id": gid},
        )
        if resume is not None:
            yield Page(state.group, [], peer=state.peer, paused_until=resume)
        loop = asyncio.get_running_loop()
        heartbeat = self.timer.to_real(self.heartbeat_interval)
        last_page = loop.time()
        while True:
            self._check_fatal()
            resume = self.budget.resumes_at(self.now())
            if resume is None and not state.queue:
                break
            until = heartbeat if resume is None else self.timer.to_real(resume - self.now())
            wait = max(0.0, min(until, last_page + heartbeat - loop.time()))
            async for page in self._live_and_changes(state, cursor, wait, sweeps=False):
                last_page = loop.time()
                yield page
            self._phase(state.group, "backfill paused")  # a rescan ends by saying "following"
            if loop.time() - last_page >= heartbeat:
                last_page = loop.time()
                yield self._live_page(state, [], heartbeat=int(time.time() * 1000))
        self._starved.discard(gid)
        log.info("group %d: the read budget has room again: backfill resumes", gid, extra={"group_id": gid})

    async def _position(self, state: Followed, cursor: CursorView) -> None:
        """Where the group's changes stand: the stored position (to catch up from), else Telegram's now."""
        if state.pts is None and not self.changes.restore(state, cursor(state.group.id), rescan=self.rescan_on_start):
            await self.changes.position_now(state)

    def _phase(self, group: Group, phase: str) -> None:
        progress = self._progress.setdefault(group.id, _Progress())
        if progress.phase != phase:
            progress.phase = phase
            progress.last_progress = time.monotonic()

    def note_progress(self, group: Group) -> None:
        """The group yielded a page (for the stall check of readiness)."""
        self._progress.setdefault(group.id, _Progress()).last_progress = time.monotonic()

    async def _switch_to(self, state: Followed, new_id: int) -> Followed:
        """Follow the supergroup a basic group migrated to, from here on."""
        entity = await self._entity_by_id(new_id)
        new = Followed(group_from_entity(entity), entity, peer_ref(entity))
        new.request_sweep()  # what arrived before we listened is in its history
        self.live.add(new)
        self._progress.setdefault(new.group.id, _Progress())
        log.info("group %d migrated to %d: following the supergroup", state.group.id, new.group.id)
        return new

    async def _entity_by_id(self, marked: int) -> Any:
        resolved, unresolved = await self.resolver.resolve([marked], self._stored)
        if not resolved:
            raise ValueError(unresolved.get(str(marked), f"cannot resolve {marked}"))
        return resolved[0].entity

    async def _walk(
        self, state: Followed, cursor: CursorView, source: Source, window: Window | None = None
    ) -> AsyncIterator[Page]:
        """Walk history ascending from the cursor in pages of 100; each page's `walked_to` is its last id."""
        window = window or Window()
        start = max(cursor(state.group.id).cursor, window.after_id or 0, 0)
        offset_date = window.start_date if cursor(state.group.id).cursor <= 0 else None
        remaining = window.limit
        # A backfill page may claim the position taken before the walk: every change up to it is in what the
        # walk reads. Not a sweep's: live events admitted beyond it may still sit in the queue.
        page = _PageBuilder(self, state, source, state.pts if source is Source.BACKFILL else None)
        budgeted = source is Source.BACKFILL and self.budget.limited
        if budgeted:
            self._starved.discard(state.group.id)
            allowance = self.budget.left(self.now())
            if allowance <= 0:
                self._starved.add(state.group.id)
                return
            # Ask Telegram for no more than may be read: a page fetched but not published would be read unpaid.
            remaining = allowance if remaining is None else min(remaining, allowance)
        client = await self._history_client() if source is Source.BACKFILL else self.client
        pages = history_pages(
            client, state.entity, min_id=start, offset_date=offset_date, limit=remaining, until=window.end_date
        )
        async with contextlib.aclosing(pages):  # it asks one page ahead: stopping early cancels that request
            async for answer in pages:
                self._check_fatal()
                page.total = answer.total
                ingest_time = self._clock()
                for message in answer.messages:
                    if window.end_date is not None and message.date > window.end_date:
                        remaining = 0
                        break
                    event = map_message(
                        message, state.group, source=source, ingest_time=ingest_time, entities=answer.entities
                    )
                    page.add(event, message.id)
                    spent = budgeted and self._spend_one(state.group.id)
                    moved = _migrated_to(message)
                    if moved is not None:
                        yield page.take(moved_to=await self._group_of(moved))
                        return
                    if spent:
                        yield page.take()
                        return
                    if remaining is not None:
                        remaining -= 1
                        if remaining <= 0:
                            break
                    if len(page) >= PAGE_SIZE:
                        yield page.take()
                if remaining is not None and remaining <= 0:
                    break
        if len(page):
            yield page.take()

    def _spend_one(self, group_id: int) -> bool:
        """Count one message read against the budget; True when that was the last one it allowed."""
        self.budget.take(group_id, self.now())
        if self.budget.left(self.now()) > 0:
            return False
        self._starved.add(group_id)
        return True

    async def _group_of(self, marked: int) -> Group:
        return group_from_entity(await self._entity_by_id(marked))

    async def _follow(self, state: Followed, cursor: CursorView) -> AsyncIterator[Page]:
        self._phase(state.group, "following")
        await self._position(state, cursor)  # a supergroup a migration led to has none yet
        loop = asyncio.get_running_loop()
        # The first sweep of each group falls somewhere in its interval, not on one tick for every group.
        next_sweep = loop.time() + self._interval(state) * self.gateway.jitter(0.5, spread=1.0)
        heartbeat = self.timer.to_real(self.heartbeat_interval)
        last_page = loop.time()
        while True:
            self._check_fatal()
            wait = max(0.0, min(next_sweep, last_page + heartbeat) - loop.time())
            async for page in self._live_and_changes(state, cursor, wait):
                last_page = loop.time()
                yield page
            timed = loop.time() >= next_sweep
            if state.sweep_now.is_set() or timed:
                state.sweep_now.clear()
                self._phase(state.group, "sweeping")
                async for page in self._sweep(state, cursor):
                    last_page = loop.time()
                    yield page
                    if page.moved_to is not None:
                        state = await self._switch_to(state, page.moved_to.id)
                if timed and state.pts is not None:
                    state.catch_up = True  # a gap Telegram never hinted at (the last update of a burst lost)
                self._phase(state.group, "following")
                next_sweep = loop.time() + self.gateway.jitter(self._interval(state))
            elif loop.time() - last_page >= heartbeat:
                last_page = loop.time()
                yield self._live_page(state, [], heartbeat=int(time.time() * 1000))

    async def _live_and_changes(
        self, state: Followed, cursor: CursorView, wait: float, *, sweeps: bool = True
    ) -> AsyncIterator[Page]:
        """One turn of a following group: the live events that arrive within `wait` real seconds as one page,
        then the catch-ups, reaction reads and rescans its state asks for (`sweeps=False`: a pending sweep request
        does not cut the wait short, since no sweep may run while the backfill is paused)."""
        live = await self._next_live(state, wait, sweeps=sweeps)
        self._check_fatal()
        if live:
            self.note_progress(state.group)
            yield self._live_page(state, live)
        async for page in self._changes(state, cursor):
            yield page

    def _live_page(self, state: Followed, events: list[MessageEvent], heartbeat: int | None = None) -> Page:
        return Page(state.group, events, peer=state.peer, pts=state.pts, pts_date=state.pts_date, heartbeat=heartbeat)

    async def _changes(self, state: Followed, cursor: CursorView) -> AsyncIterator[Page]:
        """Catch-ups, reaction reads and rescans the group's state asks for, in that order."""
        if state.catch_up and state.pts is not None:
            async for page in self.changes.catch_up(state):
                self.note_progress(state.group)
                yield page
        if state.reacted:
            yield await self.changes.reacted(state)
        if state.rescan:
            self._phase(state.group, "rescanning")
            yield await self.changes.rescan(state, cursor(state.group.id))
            self._phase(state.group, "following")

    def _interval(self, state: Followed) -> float:
        """Real seconds between sweeps of this group (its own Telegram-time interval on the timer)."""
        interval = self.unjoined_sweep_interval if state.unjoined else self.sweep_interval
        return self.timer.to_real(interval)

    async def _next_live(self, state: Followed, max_wait: float, *, sweeps: bool = True) -> list[MessageEvent]:
        """Live events queued for the group, waiting up to `max_wait` s for the first (or a sweep request,
        unless `sweeps` is off: a pending one then waits for later)."""
        if not state.queue and not (sweeps and state.sweep_now.is_set()) and not _changes_wanted(state):
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that arrives
            # as the event fires, and the feeder would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max_wait):
                    await state.wake.wait()
        state.wake.clear()  # before draining: whatever arrives next sets it again
        return self.live.drain(state)

    async def _sweep(self, state: Followed, cursor: CursorView) -> AsyncIterator[Page]:
        """Publish what live handlers missed: holes by id (channels), then the tail of history."""
        self.stats.sweeps += 1
        current = cursor(state.group.id)
        if state.group.type in (GroupType.CHANNEL, GroupType.SUPERGROUP) and current.above:
            holes = holes_to_fetch(current)
            if holes is not None:
                # No holes (live delivered every id above the cursor, the usual case of a busy group) is the
                # cheapest sweep: the cursor steps over the live run unread and the walk reads the tail alone.
                found, returned, empty = await self._fetch_ids(state, holes) if holes else ([], set(), set())
                self.note_progress(state.group)
                yield Page(state.group, found, walked_to=proven_to(current, returned, empty), peer=state.peer)
        async for page in self._walk(state, cursor, Source.SWEEP):
            yield page

    async def _fetch_ids(self, state: Followed, ids: list[int]) -> tuple[list[MessageEvent], set[int], set[int]]:
        """Messages by id: the events, the ids returned, and the ids proven deleted (`MessageEmpty`).

        Telegram may leave ids that exist out of the answer, and Telethon's `get_messages(ids=…)` turns
        `MessageEmpty` into None, losing which id it was; so the request is made here and matched by id.
        """
        found: list[MessageEvent] = []
        returned: set[int] = set()
        empty: set[int] = set()
        channel = tl_utils.get_input_channel(state.entity)
        for chunk in chunks(ids):
            wanted = set(chunk)
            answer = await self.client(GetChannelMessagesRequest(channel, [types.InputMessageID(i) for i in chunk]))
            entities = {tl_utils.get_peer_id(x): x for x in itertools.chain(answer.users, answer.chats)}
            for message in answer.messages:
                if message.id not in wanted:
                    continue
                if isinstance(message, types.MessageEmpty):
                    empty.add(message.id)
                    continue
                message._finish_init(self.client, entities, state.entity)
                returned.add(message.id)
                found.append(map_message(message, state.group, source=Source.SWEEP, ingest_time=self._clock()))
        found.sort(key=lambda e: e.message_id)
        return found, returned, empty

    # --- status ---------------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What /readyz shows of Telegram: the transport, every group's state, running flood waits."""
        up, since = self._transport
        wall = time.time() - time.monotonic()
        groups: dict[str, Any] = {}
        for state in self.live:
            groups[str(state.group.id)] = self._group_status(state)
        for spec, reason in self.unresolved.items():
            groups[spec] = {"state": "unresolved", "reason": reason}
        # The account's health names Telegram's verdicts; beside it, whether the account reaches Telegram at all.
        account = self.gateway.account_health().as_dict(time.time())
        account["transport"] = {"connected": up, "since": _iso(wall + since)}
        return {
            "connected": up,
            "since": _iso(wall + since),
            **({"proxy": self.proxy.describe()} if self.proxy is not None else {}),
            "groups": groups,
            "unjoined": sorted(self.unjoined),
            "account": account,
            "flood_waits": [
                {"kind": h.kind.value, "method": h.method, "seconds": h.seconds} for h in self.gateway.holds()
            ],
            **self._budget_status(),
        }

    def _budget_status(self) -> dict[str, Any]:
        """The read budget's line of /readyz (absent when there is none)."""
        if not self.budget.limited:
            return {}
        now = self.now()
        resume = self.budget.resumes_at(now)
        out: dict[str, Any] = {"limit": self.budget.limit, "left": self.budget.left(now)}
        if resume is not None:
            out["resumes_at"] = _iso(resume)
        return {"read_budget": out}

    def _group_status(self, state: Followed) -> dict[str, Any]:
        gid = state.group.id
        progress = self._progress.get(gid, _Progress())
        out: dict[str, Any] = {"state": progress.phase, "title": state.group.title}
        if state.failed:
            out.update(state="failed", reason=state.failed)
        hold = self.gateway.group_wait(gid)
        if hold is not None:
            left = hold.until - self.gateway.clock.monotonic()
            out.update(state="waiting", reason=f"flood wait on {hold.method}", seconds_left=round(left, 1))
        retrying = self.gateway.group_retrying(gid)
        if retrying is not None:
            out.update(state="retrying", reason=retrying)
        if state.unjoined:
            out["unjoined"] = True
        if progress.phase == "backfill paused":
            resume = self.budget.resumes_at(self.now())
            out["reason"] = f"read budget of {self.budget.limit} messages a day spent"
            if resume is not None:
                out["resumes_at"] = _iso(resume)
        return out

    def _route(self) -> str:
        """How the client reaches Telegram, for a reason that says it does not: the proxy, password masked."""
        return f" (through proxy {self.proxy.describe()}, never directly)" if self.proxy is not None else ""

    def problems(self) -> list[str]:
        """Why Telegram makes the emitter not ready (empty when all is well)."""
        now = time.monotonic()
        out: list[str] = []
        up, since = self._transport
        health = self.gateway.account_health()
        fatal = self._fatal or self.gateway.gone
        if fatal is not None:
            out.append(str(fatal))
        elif health.state is AccountState.RESTRICTED:
            out.append(f"Telegram restricts the account: {health.describe()}")
        elif not up and now - since > self.unreachable_after:
            out.append(f"Telegram unreachable for {now - since:.0f} s{self._route()}")
        for gid, progress in self._progress.items():
            # A backfill paused for the read budget is not stalled: it waits by design, and says till when.
            behind = progress.phase in ("backfilling", "sweeping", "resolving")
            if behind and now - progress.last_progress > self.stall_after:
                out.append(f"group {gid} made no progress for {now - progress.last_progress:.0f} s")
        return out


def gateway_from_settings(settings: TelegramSettings, timer: Clock = SYSTEM_CLOCK) -> RequestGateway:
    """The account's gateway with the configured paces."""
    return RequestGateway(
        parse_paces(settings.pacing),
        account=Pace(settings.max_requests_per_second, settings.max_request_burst),
        backfill_concurrency=settings.backfill_concurrency,
        clock=timer,
        long_wait=float(settings.flood_sleep_threshold),
    )


class _PageBuilder:
    """Collects one page of a walk and, when it is taken, records its span (a CLIENT span per page)."""

    def __init__(self, source: TelegramSource, state: Followed, kind: Source, pts: int | None) -> None:
        self.source, self.state, self.kind, self.pts = source, state, kind, pts
        self.events: list[MessageEvent] = []
        self.last: int | None = None
        self.total: int | None = None
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
        group = self.state.group
        span = self.source.tracer.start_span(
            "telegram history page",
            kind=SpanKind.CLIENT,
            start_time=self.started,
            attributes={
                "telegram.group.id": group.id,
                "telegram.page.size": len(events),
                "telegram.page.first_id": events[0].message_id if events else 0,
                "telegram.page.last_id": self.last or 0,
                "emitter.source": self.kind.value,
                "emitter.priority": priority.get().name.lower(),
            },
        )
        span.end()
        self.source.note_progress(group)
        context = span.get_span_context()
        return Page(
            group,
            events,
            walked_to=self.last,
            moved_to=moved_to,
            total=self.total,
            span_context=context if context.is_valid else None,
            peer=self.state.peer,
            pts=self.pts,
            pts_date=self.state.pts_date if self.pts is not None else None,
            reads=self._reads(group),
        )

    def _reads(self, group: Group) -> Spending | None:
        """The group's budget spending for its cursor (backfill pages under a budget only)."""
        budget = self.source.budget
        if self.kind is not Source.BACKFILL or not budget.limited:
            return None
        return budget.of(group.id, self.source.now())


def _changes_wanted(state: Followed) -> bool:
    return (state.catch_up and state.pts is not None) or state.rescan or bool(state.reacted)


def _migrated_to(message: Any) -> int | None:
    """The marked id of the supergroup a basic group became, if this is its migration message."""
    action = getattr(message, "action", None)
    if isinstance(action, types.MessageActionChatMigrateTo):
        return marked_id(int(action.channel_id), PeerKind.CHANNEL)
    return None


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")
