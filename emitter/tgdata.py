"""`TgData`: the calls tgdata users know, on the emitter's Telegram source and cursor trackers.

Everything here is a thin layer over the code the emitter runs: history is read by `TelegramSource`'s
ascending walk (pages of 100, FloodWaits slept through and resumed from the last id), messages are mapped
by `map_message`, and incremental delivery (`poll_for_messages`, `on_new_message`) follows the cursor rules
of DESIGN.md through a tracker — so polling never skips messages and handlers see each message once.

Rows have these columns (a pandas DataFrame when pandas is installed, else a list of dicts), tgdata's first:

============== ======================= ==========================================================================
column         dtype                   meaning
============== ======================= ==========================================================================
MessageId      int64                   message id, unique within its group
Message        str                     text without formatting ("" for media without caption and service messages)
SenderId       Int64                   marked id of the sender (user, or channel for anonymous posts); NA if none
SenderName     str                     the sender's display name, as far as Telegram sent it
Username       str                     the sender's "@username", or NA
Date           datetime64[ns, UTC]     when it was sent (tz-aware UTC)
ReplyToId      Int64                   the message it answers
ForwardedFrom  Int64                   marked id of the original sender of a forward
GroupId        int64                   marked id of the group (-100… channels and supergroups, -… basic groups)
EditDate       datetime64[ns, UTC]     last edit, or NaT
MediaType      str                     photo, document, video, poll, geo, … (metadata; download_media_by_id fetches)
Views          Int64                   view count (channels)
Action         str                     service messages: the action (chat_create, pin_message, …)
GroupedId      Int64                   album id shared by the messages of one album
ForwardedFromName str                  a forward's sender name when its id is hidden
============== ======================= ==========================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import importlib
import inspect
import json
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Final, Literal, Self, TypeAlias

from telethon import TelegramClient, errors, types
from telethon import utils as tl_utils
from telethon.errors import RPCError
from telethon.tl.functions.channels import GetFullChannelRequest, JoinChannelRequest
from telethon.tl.functions.channels import GetMessagesRequest as GetChannelMessagesRequest
from telethon.tl.functions.messages import (
    CheckChatInviteRequest,
    GetFullChatRequest,
    GetHistoryRequest,
    GetMessagesRequest,
    ImportChatInviteRequest,
)
from telethon.tl.functions.updates import GetStateRequest

from emitter.albums import assemble_albums
from emitter.config_hooks import ConnectionEngine, IniConnectionEngine
from emitter.cursor import NEVER_WALKED, GroupCursor
from emitter.errors import ConfigError, FatalError, SourceError
from emitter.media_download import Downloaded, MediaDownload, MediaDownloadError, file_location, message_refetcher
from emitter.message_batch import MAX_BATCH_MESSAGES, MAX_MESSAGE_ID, BatchFormatError, MessageBatch
from emitter.progress import ProgressBoard, ProgressCallback
from emitter.progress_view import ProgressView
from emitter.protocols import Batch, MessageInfo, MessageTrackerInterface, Page, Window
from emitter.records import EventType, Group, GroupType, MessageEvent, PeerKind, Source, marked_id, utc_now
from emitter.settings import Settings, TelegramSettings
from emitter.sweep import chunks
from emitter.telegram_account import list_groups as account_groups
from emitter.telegram_client import make_client, record_identity, restrict_session_file
from emitter.telegram_gateway import AccountGoneError, ErrorClass, HealthCallback, RequestGateway, classify
from emitter.telegram_mapping import map_message
from emitter.telegram_resolver import Resolver
from emitter.telegram_source import TelegramSource, gateway_from_settings
from emitter.tgdata_groups import (
    GroupAccess,
    GroupJoin,
    GroupLookup,
    GroupMetadata,
    GroupProfile,
    GroupReferenceError,
    invite_hash,
    invite_label,
    invite_preview,
    profile_of,
    project,
    telegram_error_name,
)
from emitter.tracker import Tracker
from emitter.trackers import CursorTracker, MemoryTracker

__all__ = [
    "ALBUM_COLUMNS",
    "COLUMNS",
    "GROUP_COLUMNS",
    "LINKED_COLUMNS",
    "AccountMismatchError",
    "BatchFormatError",
    "GroupAccess",
    "GroupJoin",
    "GroupLookup",
    "GroupMetadata",
    "GroupNotFoundError",
    "GroupProfile",
    "GroupReferenceError",
    "MessageBatch",
    "MessageHandler",
    "Row",
    "TgData",
    "album_rows",
    "event_to_row",
    "json_rows",
    "to_rows",
]

log = logging.getLogger("emitter.tgdata")

Row: TypeAlias = dict[str, Any]
"""One message (or group) as a plain dict, keyed by the column names."""

Rows: TypeAlias = Any
"""A pandas DataFrame when pandas is importable, else a `list[Row]`."""

MessageHandler: TypeAlias = Callable[[Row], Awaitable[None] | None]
"""An `on_new_message` handler, async or plain: receives each new message once, as a row dict."""

BatchCallback: TypeAlias = Callable[[Rows, int], Awaitable[None] | None]
"""``batch_callback(batch_rows, batch_number)``, sync or async; batch numbers start at 1."""

PollCallback: TypeAlias = Callable[[Rows], Awaitable[None] | None]
"""``callback(rows)`` of `poll_for_messages`, sync or async: the messages new since the last poll."""

COLUMNS: Final[Mapping[str, str]] = {
    "MessageId": "int64",
    "Message": "str",
    "SenderId": "Int64",
    "SenderName": "str",
    "Username": "str",
    "Date": "datetime64[ns, UTC]",
    "ReplyToId": "Int64",
    "ForwardedFrom": "Int64",
    "GroupId": "int64",
    "EditDate": "datetime64[ns, UTC]",
    "MediaType": "str",
    "Views": "Int64",
    "Action": "str",
    "GroupedId": "Int64",
    "ForwardedFromName": "str",
}
"""Message columns and their pandas dtypes, in order (the module docstring says what each holds)."""

GROUP_COLUMNS: Final[Mapping[str, str]] = {
    "GroupID": "int64",
    "Title": "str",
    "Username": "str",
    "IsChannel": "bool",
    "IsMegagroup": "bool",
    "ParticipantsCount": "Int64",
    "Type": "str",
}
"""`list_groups` columns: tgdata's names; GroupID is the marked id that every other call accepts."""

ALBUM_COLUMNS: Final[Mapping[str, str]] = {**COLUMNS, "AlbumMessageIds": "object"}
"""`get_messages(..., albums=True)` columns: one row per post, its first member's, with the album's caption as
Message and every member's id, ascending, in AlbumMessageIds (a one-element list for a single message)."""

LINKED_COLUMNS: Final[Mapping[str, str]] = {**GROUP_COLUMNS, "FoundVia": "str", "FoundBy": "str"}
"""`linked_groups` columns: a group row, how it was found and from which source room."""

_TYPE_OF_KIND: Final[Mapping[str, GroupType]] = {
    "group": GroupType.GROUP,
    "megagroup": GroupType.SUPERGROUP,
    "channel": GroupType.CHANNEL,
    "unknown": GroupType.UNKNOWN,
}

_ExportFormat = Literal["csv", "json"]


class GroupNotFoundError(GroupReferenceError):
    """A group id, @username or t.me link that the account cannot resolve."""


class AccountMismatchError(ConfigError, ValueError):
    """The session is logged in as another account than the `account_id` the caller expects."""


# --- rows: pure functions -------------------------------------------------------------------------------------


def _at(username: str | None) -> str | None:
    return None if not username else f"@{username}"


def event_to_row(event: MessageEvent) -> Row:
    """The tgdata row of a message event (see the module docstring for the columns)."""
    sender, fwd = event.sender, event.forward
    return {
        "MessageId": event.message_id,
        "Message": event.text,
        "SenderId": None if sender is None else sender.id,
        "SenderName": None if sender is None else sender.name,
        "Username": None if sender is None else _at(sender.username),
        "Date": event.date,
        "ReplyToId": None if event.reply is None else event.reply.to_message_id,
        "ForwardedFrom": None if fwd is None else fwd.from_id,
        "GroupId": event.group.id,
        "EditDate": event.edit_date,
        "MediaType": None if event.media is None else event.media.type,
        "Views": event.views,
        "Action": None if event.action is None else event.action.type,
        "GroupedId": event.grouped_id,
        "ForwardedFromName": None if fwd is None else fwd.from_name,
    }


def _pandas() -> ModuleType | None:
    """pandas if it is installed (an optional dependency: ``pip install telegram-emitter[pandas]``)."""
    try:
        return importlib.import_module("pandas")
    except ImportError:
        return None


def to_rows(rows: Iterable[Row], columns: Mapping[str, str] = COLUMNS) -> Rows:
    """A DataFrame with the columns' dtypes when pandas is installed, else the rows as a list."""
    pd = _pandas()
    if pd is None:
        return list(rows)
    rows = list(rows)
    frame = pd.DataFrame(rows, columns=list(columns))
    for name, dtype in columns.items():
        if dtype == "Int64":
            # Built from the ints themselves: a column with missing values passes through float64 in the
            # DataFrame, which rounds ids above 2**53 (Telegram's album ids are 17 digits).
            frame[name] = pd.array([r.get(name) for r in rows], dtype="Int64")
    return frame.astype(dict(columns))


def json_rows(messages: Rows) -> list[Row]:
    """Rows (a DataFrame or a list of dicts) as JSON-ready dicts: dates in ISO 8601, missing values None."""
    if isinstance(messages, list):
        records = messages
    else:
        frame = messages.astype(object)
        records = frame.where(frame.notna(), None).to_dict("records")
    return [{k: v.isoformat() if isinstance(v, datetime) else v for k, v in r.items()} for r in records]


def album_rows(events: Iterable[MessageEvent]) -> list[Row]:
    """One `ALBUM_COLUMNS` row per post of `events` (`emitter.albums.assemble_albums`), oldest first."""
    rows = []
    for post in assemble_albums(events):
        row = event_to_row(post.members[0])
        row["Message"] = post.text
        row["AlbumMessageIds"] = list(post.message_ids)
        rows.append(row)
    return rows


def _group_row(group: GroupMetadata) -> Row:
    """A `GROUP_COLUMNS` row of looked-up metadata."""
    return {
        "GroupID": group.peer_id,
        "Title": group.title,
        "Username": _at(group.username),
        "IsChannel": group.kind in ("channel", "megagroup", "unknown"),
        "IsMegagroup": group.kind == "megagroup",
        "ParticipantsCount": group.participants_count,
        "Type": _TYPE_OF_KIND[group.kind].value,
    }


_SPOOL_SUFFIX: Final = ".part"
"""What a download not finished yet is named by (continued, not restarted, by the next call)."""


def _downloaded(directory: Path, stem: str) -> str | None:
    """A file an earlier download left for this message (any extension), if there is one."""
    found = sorted(p for p in directory.glob(f"{stem}.*") if p.suffix != _SPOOL_SUFFIX)
    return str(found[0]) if found else None


def _utc(value: datetime | None) -> datetime | None:
    """Dates from users: naive ones are taken as UTC (Telegram's clock)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _info(event: MessageEvent) -> MessageInfo:
    return MessageInfo(
        message_id=event.message_id,
        group_id=event.group.id,
        sender_id=None if event.sender is None else event.sender.id,
        date=event.date,
    )


async def _call(callback: Callable[..., Awaitable[None] | None], *args: Any) -> None:
    """Call a user callback that may be sync or async."""
    result = callback(*args)
    if inspect.isawaitable(result):
        await result


# --- the client ---------------------------------------------------------------------------------------------


@dataclass
class _Handler:
    spec: str | int | None
    func: MessageHandler


@dataclass
class _Progress:
    """What get_messages reports per page: rows so far, the expected total, and the rate."""

    callback: ProgressCallback | None
    limit: int | None
    board: ProgressBoard = field(default_factory=ProgressBoard)
    started: float = field(default_factory=time.monotonic)
    done: int = 0

    def page(self, page: Page, new: Sequence[MessageEvent]) -> None:
        total = page.total if self.limit is None or page.total is None else min(page.total, self.limit)
        self.board.set_total(page.group, total)
        self.board.committed(Batch(events=new, cursors={}))
        self.done += len(new)
        if self.callback is not None:
            elapsed = time.monotonic() - self.started
            self.callback(self.done, total, self.done / elapsed if elapsed > 0 else 0.0)


class TgData:
    """The tgdata API over the emitter: history reads, counts, search, export, polling and live handlers.

    Args:
        config_file: a tgdata ``config.ini`` (``[telegram] api_id, api_hash, session_file, phone`` loads
            unchanged) or the emitter's INI; None finds it as the emitter does ($EMITTER_CONFIG, ./config.ini),
            and the environment applies on top (``TELEGRAM_API_ID``, ``EMITTER_TELEGRAM__…``).
        settings: ready `Settings` (wins over everything else).
        client: your own `TelegramClient`; TgData connects it if needed and disconnects it on `close` only
            if it connected it.
        tracker: remembers what `poll_for_messages` and `on_new_message` delivered (default: a
            `MemoryTracker`); closed with TgData. Any `MessageTrackerInterface` works; the cursor-based ones
            of `emitter.trackers` also let a restarted process resume where the last one stopped. One
            process delivers a group at a time: two processes following one group deliver it twice.
        connection_engine: supplies the settings from code (`emitter.config_hooks`).
        gateway: paces `join_group` (default: one with the configured paces; a source already running on
            the client brings its own, which is then used).
        sweep_interval: seconds between gap-filling sweeps of `run_with_event_loop` (default: the
            ``telegram.sweep_interval`` setting).
        health_callback: called with the account's `AccountHealth` on every change of its state (ok,
            waiting, lost access, restricted, logged out, banned), from the event loop.
    """

    def __init__(
        self,
        config_file: str | os.PathLike[str] | None = None,
        *,
        settings: Settings | None = None,
        client: TelegramClient | None = None,
        tracker: MessageTrackerInterface | None = None,
        connection_engine: ConnectionEngine | None = None,
        sweep_interval: float | None = None,
        health_callback: HealthCallback | None = None,
        gateway: RequestGateway | None = None,
    ) -> None:
        if settings is None and (client is None or config_file is not None or connection_engine is not None):
            settings = (connection_engine or IniConnectionEngine(config_file)).get_settings()
        self.settings = settings
        self.tracker: MessageTrackerInterface = tracker if tracker is not None else MemoryTracker()
        self.sweep_interval = sweep_interval or (settings.telegram if settings else TelegramSettings()).sweep_interval
        self._client = client
        self._own_client = client is None
        self._connected_by_us = False
        self._checked = False
        self._connect_lock = asyncio.Lock()
        self._handlers: list[_Handler] = []
        self._resolved: dict[str, int] = {}
        self._stop = asyncio.Event()
        self._health_callback = health_callback
        self.gateway = gateway or (gateway_from_settings(settings.telegram) if settings else RequestGateway())
        self._paced_calls = 0
        self._saved_client_options: tuple[Any, Any] | None = None

    def __repr__(self) -> str:
        return f"TgData(tracker={self.tracker!r})"

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def client(self) -> TelegramClient | None:
        """The Telethon client (None until `connect` creates one from the settings)."""
        return self._client

    async def connect(self) -> TelegramClient:
        """Create (from the settings), connect and check the login of the client; idempotent."""
        async with self._connect_lock:
            if self._client is None:
                self._client = make_client(self._telegram_settings())
            client = self._client
            if self._health_callback is not None:
                self._watch_health(client)
            if not client.is_connected():
                await client.connect()
                self._connected_by_us = True
            if not self._checked:
                restrict_session_file(client)
                if not await client.is_user_authorized():
                    raise FatalError("the Telegram session is not logged in: run `emitter login` once to create one")
                record_identity(client, replace=False)
                self._checked = True
            return client

    def _watch_health(self, client: TelegramClient) -> None:
        """Route the client through its account's gateway now, so even the login check feeds the callback."""
        gateway = getattr(client, "_emitter_gateway", None) or self.gateway
        gateway.attach(client)
        if self._health_callback is not None:
            gateway.add_health_listener(self._health_callback)

    async def close(self) -> None:
        """Stop polling and handlers, disconnect a client TgData connected, close the tracker (idempotent)."""
        self.stop()
        client = self._client
        if client is not None and (self._own_client or self._connected_by_us) and client.is_connected():
            await client.disconnect()
        self._connected_by_us = False
        closer = getattr(self.tracker, "close", None)
        if closer is not None:
            await _call(closer)

    def stop(self) -> None:
        """Make `run_with_event_loop` and `poll_for_messages` return (callable from a handler)."""
        self._stop.set()

    def _telegram_settings(self) -> TelegramSettings:
        if self.settings is None:
            raise ConfigError("no Telegram configuration: pass config_file, settings or a client")
        return self.settings.telegram

    # --- groups ---------------------------------------------------------------------------------------------

    async def list_groups(self) -> Rows:
        """Every group, supergroup and channel of the account (columns: `GROUP_COLUMNS`)."""
        client = await self.connect()
        rows = [
            {
                "GroupID": g.id,
                "Title": g.title,
                "Username": _at(g.username),
                "IsChannel": g.type in (GroupType.CHANNEL, GroupType.SUPERGROUP),
                "IsMegagroup": g.type is GroupType.SUPERGROUP,
                "ParticipantsCount": g.members,
                "Type": g.type.value,
            }
            for g in await account_groups(client)
        ]
        return to_rows(rows, GROUP_COLUMNS)

    async def _source(self, spec: str | int, **kwargs: Any) -> tuple[TelegramSource, Group]:
        """A source for one group, and the group resolved."""
        client = await self.connect()
        spec = await self._marked(client, spec)
        kwargs.setdefault("follow", False)
        kwargs.setdefault("positions", kwargs["follow"])  # a one-off read needs no update position
        source = TelegramSource(client, [spec], sweep_interval=self.sweep_interval, **kwargs)
        try:
            (group,) = await source.groups()
        except AccountGoneError:
            raise
        except FatalError as e:
            reason = source.unresolved.get(str(spec), str(e))
            raise GroupNotFoundError(f"cannot resolve group {spec!r}: {reason}") from e
        return source, group

    @staticmethod
    async def _marked(client: TelegramClient, spec: str | int) -> str | int:
        """tgdata listed groups by their bare positive id: find the account's group with that id, if any."""
        if not str(spec).isdigit():
            return spec
        bare = int(spec)
        for group in await account_groups(client):
            if group.id in (marked_id(bare, PeerKind.CHANNEL), marked_id(bare, PeerKind.CHAT)):
                return group.id
        return spec

    # --- one group: lookup, access, joining, profile ---------------------------------------------------------

    async def _account(self, client: TelegramClient, account_id: int | None) -> int:
        """The logged-in account's id; raises if it is not the one the caller expects."""
        me = await client.get_me(input_peer=True)
        actual = int(getattr(me, "user_id", 0))
        if account_id is not None and actual != account_id:
            raise AccountMismatchError(
                f"the session is logged in as account {actual}, not the expected account_id {account_id}"
            )
        return actual

    async def _lookup(self, target: str | int, account_id: int | None) -> tuple[TelegramClient, GroupLookup, Any]:
        """The client, the lookup of `target` and its entity (forbidden variants included; None for an
        invite link's preview, which names no chat).

        Errors that say the account may not see the group (CHANNEL_PRIVATE, …) come through unwrapped, so
        `check_group_access` can report them; a name, id or invite that does not exist is a
        GroupNotFoundError.
        """
        client = await self.connect()
        account = await self._account(client, account_id)
        invite = invite_hash(target)
        if invite is not None:
            lookup, chat = await self._lookup_invite(client, account, invite)
            return client, lookup, chat
        spec = await self._marked(client, target)
        try:
            entity = await Resolver(client).find(spec)
        except (ValueError, TypeError, RPCError) as e:
            if isinstance(e, RPCError) and classify(e) is not ErrorClass.REQUEST:
                raise
            raise GroupNotFoundError(f"cannot resolve group {target!r}: {type(e).__name__}: {e}") from e
        metadata, member, request_needed = project(entity)
        return client, GroupLookup(account, target, metadata, member, request_needed), entity

    @staticmethod
    async def _lookup_invite(client: TelegramClient, account: int, invite: str) -> tuple[GroupLookup, Any]:
        """What an invite link opens (one messages.checkChatInvite; joins nothing)."""
        label = invite_label(invite)
        try:
            answer = await client(CheckChatInviteRequest(invite))
        except RPCError as e:
            if classify(e) is not ErrorClass.REQUEST:
                raise
            raise GroupNotFoundError(f"invite link {label} does not open a group: {telegram_error_name(e)}") from e
        if isinstance(answer, types.ChatInvite):
            paid = answer.subscription_pricing is not None
            metadata = invite_preview(answer)
            return GroupLookup(account, label, metadata, False, bool(answer.request_needed), paid), None
        metadata, member, request_needed = project(answer.chat)
        expires = answer.expires if isinstance(answer, types.ChatInvitePeek) else None
        member = isinstance(answer, types.ChatInviteAlready) or member
        return GroupLookup(account, label, metadata, member, request_needed, None, expires), answer.chat

    async def lookup_group(self, target: str | int, *, account_id: int | None = None) -> GroupLookup:
        """Who a group is and whether the account is in it, without joining it or reading its history.

        Args:
            target: marked id, bare id of a group in the dialogs, "@username", t.me/name link, or an invite
                link (t.me/+…, t.me/joinchat/…: `target` in the result is then ``invite:<sha256 of the
                hash>``, never the hash itself; a group the account is not in is a preview without ids).
            account_id: the account the session must be logged in as (tgdata requires it; here optional);
                another account raises AccountMismatchError.

        Raises:
            GroupNotFoundError: no such group or invite (or the account cannot see the group at all).
            GroupReferenceError: the target is a user or a migrated basic group.
        """
        _client, lookup, _entity = await self._lookup(target, account_id)
        return lookup

    async def check_group_access(self, target: str | int, *, account_id: int | None = None) -> GroupAccess:
        """Whether the account can read the group: looks it up, then asks for one message of history.

        Returns status "readable", "denied" (Telegram refused: `reason` is its error, e.g. CHANNEL_PRIVATE),
        or "unprobed" (no usable peer to ask with, reason NO_PEER: an invite preview of a group the account
        is not in). Readable does not mean joined: public channels are readable from outside (`member`
        says which). Other failures (no such group, flood waits, a dead session) raise.
        """
        lookup: GroupLookup | None = None
        account = await self._account(await self.connect(), account_id)
        invite = invite_hash(target)
        label = target if invite is None else invite_label(invite)
        try:
            client, lookup, entity = await self._lookup(target, account)
            if entity is None or getattr(entity, "min", False):
                return GroupAccess(account, label, "unprobed", lookup, "NO_PEER")
            peer = tl_utils.get_input_peer(entity)
            await client(
                GetHistoryRequest(
                    peer=peer, offset_id=0, offset_date=None, add_offset=0, limit=1, max_id=0, min_id=0, hash=0
                )
            )
        except RPCError as e:
            if classify(e) is ErrorClass.LOST_ACCESS:
                return GroupAccess(account, label, "denied", lookup, telegram_error_name(e))
            raise
        return GroupAccess(account, label, "readable", lookup)

    async def join_group(self, target: str | int, *, account_id: int | None = None) -> GroupJoin:
        """Join a group, paced by the account's request gateway: a public channel or supergroup by name,
        id or link, or any group (private and basic ones too) by its invite link.

        Joins are the requests Telegram limits hardest (a new account that joins many groups in a row is
        banned): they go through the gateway's "join" bucket (one per five minutes by default, the
        ``telegram.pacing`` setting), and a FloodWait is waited out there. A group the account is already
        in costs no join request.

        Returns:
            status "joined", "already_joined", "requested" (the group approves joins: an admin must
            accept; `member` stays None until then) or "payment_required" (a paid subscription link:
            nothing is joined). `group` is the metadata seen before the join.

        Raises:
            GroupReferenceError: a basic group or a group the account may not see, named without an invite
                link (those join by invite only).
        """
        client, lookup, entity = await self._lookup(target, account_id)
        invite = invite_hash(target)
        if lookup.member:
            return GroupJoin(lookup.account_id, lookup.target, lookup.group, "already_joined")
        if lookup.requires_payment:
            return GroupJoin(lookup.account_id, lookup.target, lookup.group, "payment_required")
        request: Any
        if invite is not None:
            request = ImportChatInviteRequest(invite)
        elif isinstance(entity, types.Channel):
            request = JoinChannelRequest(tl_utils.get_input_channel(entity))
        else:
            raise GroupReferenceError(
                f"{target!r} is a basic group or not available to the account: it can be joined by invite link only"
            )
        try:
            async with self._paced(client):
                await client(request)
        except errors.UserAlreadyParticipantError:
            return GroupJoin(lookup.account_id, lookup.target, lookup.group, "already_joined")
        except errors.InviteRequestSentError:
            return GroupJoin(lookup.account_id, lookup.target, lookup.group, "requested")
        log.info("joined group %s (%s)", lookup.group.peer_id, lookup.group.title)
        return GroupJoin(lookup.account_id, lookup.target, lookup.group, "joined")

    async def linked_groups(self, group_id: int | str | Sequence[int | str]) -> Rows:
        """The chats linked to channels: a broadcast channel's discussion group (where its comments live),
        or the channel a discussion group belongs to (``channelFull.linked_chat_id``).

        One `get_group_profile` per source room, plus one lookup per linked chat; never joins. tgdata's
        linked_groups follows t.me links found in recent posts instead (not supported here).

        Args:
            group_id: one or a list of marked ids, "@username"s or t.me links.

        Returns:
            `GROUP_COLUMNS` plus FoundVia ("discussion") and FoundBy (the source as given); source rooms
            are never rows, and rooms without a linked chat add none.
        """
        sources = [group_id] if isinstance(group_id, str | int) else list(group_id)
        rows: list[Row] = []
        for source in sources:
            profile = await self.get_group_profile(source)
            if profile.linked_group_id is None:
                continue
            linked = await self.lookup_group(profile.linked_group_id)
            rows.append({**_group_row(linked.group), "FoundVia": "discussion", "FoundBy": str(source)})
        return to_rows(rows, LINKED_COLUMNS)

    @contextlib.asynccontextmanager
    async def _paced(self, client: TelegramClient) -> AsyncIterator[RequestGateway]:
        """Send the block's requests through the account's gateway.

        A source running on the client has attached its gateway already; otherwise TgData's own is attached
        for the block only, and Telethon's flood and retry options (which the gateway turns off) restored
        after it: the other TgData calls keep the client as the caller configured it.
        """
        attached = getattr(client, "_emitter_gateway", None)
        if attached is not None and (attached is not self.gateway or self._paced_calls == 0):
            # A source's gateway, or ours attached for good (a health callback watches every request).
            yield attached
            return
        if self._paced_calls == 0:
            self._saved_client_options = (client.flood_sleep_threshold, client._request_retries)
            self.gateway.attach(client)
        self._paced_calls += 1
        try:
            yield self.gateway
        finally:
            self._paced_calls -= 1
            if self._paced_calls == 0:
                self.gateway.detach()
                if self._saved_client_options is not None:
                    client.flood_sleep_threshold, client._request_retries = self._saved_client_options

    def get_account_health(self, account_id: int | None = None) -> dict[str, Any] | None:
        """The account's health as this TgData has seen it, or None before it made any request.

        No I/O (tgdata's semantics): the state the request gateway derived from every answer so far (ok,
        waiting, lost access, restricted, logged out, banned), as `/readyz` shows it. `account_id` is
        accepted for tgdata's signature; one TgData serves one account.
        """
        del account_id
        gateway = getattr(self._client, "_emitter_gateway", None) or self.gateway
        if not any(gateway.stats.requests.values()):
            return None  # nothing observed yet: unknown, not ok
        return gateway.account_health().as_dict(time.time())

    async def health_check(self) -> dict[str, Any]:
        """Ask Telegram whether the session is alive: one paced `updates.getState`; never raises for Telegram.

        Returns:
            `{"timestamp", "logged_in", "errors", "health"}`: `logged_in` is True only when Telegram
            answered; a logout or a ban is named in `errors` (`logged out (AUTH_KEY_UNREGISTERED)`);
            `health` is `get_account_health()` after the check.
        """
        status: dict[str, Any] = {"timestamp": time.time(), "logged_in": False, "errors": []}
        try:
            client = await self.connect()
            async with self._paced(client):
                await client(GetStateRequest())
            status["logged_in"] = True
        except (errors.RPCError, FatalError, ConnectionError, ValueError) as e:
            health = self.get_account_health()
            state = health["state"] if health else "error"
            status["errors"].append(f"{state} ({type(e).__name__}: {e})")
        status["health"] = self.get_account_health()
        return status

    async def get_group_profile(self, target: str | int, *, account_id: int | None = None) -> GroupProfile:
        """A group's full metadata: description, member and online counts, and its linked chat.

        One `channels.getFullChannel` (or `messages.getFullChat`) request; never joins and reads no history.
        tgdata's optional pinned messages (`pinned_limit`) are not supported.

        Raises:
            GroupReferenceError: the account may not see the group (forbidden), or it is no group.
        """
        client, lookup, entity = await self._lookup(target, account_id)
        if isinstance(entity, types.Chat):
            request: Any = GetFullChatRequest(entity.id)
        elif isinstance(entity, types.Channel):
            request = GetFullChannelRequest(tl_utils.get_input_channel(entity))
        else:
            raise GroupReferenceError(
                f"group {lookup.target!r} is not available to the account (forbidden, or an invite preview of a "
                "group it is not in: lookup_group shows that): no profile to read"
            )
        return profile_of(await client(request), lookup, utc_now())

    # --- history --------------------------------------------------------------------------------------------

    async def get_messages(  # noqa: PLR0917 - tgdata's signature, positional parameters included
        self,
        group_id: int | str,
        limit: int | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        after_id: int | None = None,
        with_progress: bool = False,
        progress_callback: ProgressCallback | None = None,
        batch_size: int | None = None,
        batch_callback: BatchCallback | None = None,
        batch_delay: float = 0.0,
        albums: bool = False,
    ) -> Rows:
        """The group's messages in the window, oldest first (an ascending walk: nothing is skipped).

        Which `limit` messages, as tgdata answers it: with neither `after_id` nor `start_date`, the **newest**
        `limit` of the window (``get_messages(g, limit=100)`` is the latest 100, up to `end_date` if given);
        from an `after_id` or a `start_date`, the first `limit` after it (an incremental read resumes where
        the last one stopped). One extra one-message request finds where the newest `limit` begin; the
        read itself is then the same ascending walk.

        Args:
            group_id: marked id, "@username" or t.me link.
            limit: at most this many messages (see above which ones).
            start_date: only messages sent at or after this time (naive times are UTC).
            end_date: only messages sent at or before this time.
            after_id: only messages with a larger id (for incremental reads).
            with_progress: draw a progress bar on stderr (when it is a terminal).
            progress_callback: ``progress_callback(current, total, rate)`` after every page of 100.
            batch_size: rows per `batch_callback` call.
            batch_callback: ``batch_callback(batch_rows, batch_number)``, sync or async, every
                `batch_size` rows and once more for the rest.
            batch_delay: seconds to wait after each batch.
            albums: return one row per post, the messages of an album (one `grouped_id`) assembled into one
                (`ALBUM_COLUMNS`, as tgdata's `assemble_albums`); `limit` and the batches still count
                messages, so an album at the window's edge may have only its members inside it.

        Returns:
            Every row of the window (also when batches were handed out), as `to_rows` gives them.
        """
        if batch_callback is not None and not batch_size:
            raise ValueError("batch_callback needs a batch_size")
        window = Window(_utc(start_date), _utc(end_date), after_id, limit)
        source, group = await self._source(group_id, window=window)
        if limit is not None and after_id is None and start_date is None:
            source.window = replace(window, after_id=await self._newest_start(source, group, limit, window.end_date))
        progress = _Progress(progress_callback, limit)
        rows: list[Row] = []
        pending: list[Row] = []
        events: list[MessageEvent] = []
        batches = 0
        view: AbstractContextManager[object] = (
            ProgressView(progress.board) if with_progress else contextlib.nullcontext()
        )
        with view:
            async for new in self._walk(source, group, Tracker(), progress):
                page_rows = [event_to_row(e) for e in new]
                rows += page_rows
                if albums:
                    events += new
                if batch_callback is None or batch_size is None:
                    continue
                pending += page_rows
                while len(pending) >= batch_size:
                    batches += 1
                    await self._batch(batch_callback, pending[:batch_size], batches, batch_delay)
                    del pending[:batch_size]
            if batch_callback is not None and pending:
                await self._batch(batch_callback, pending, batches + 1, batch_delay)
        return to_rows(album_rows(events), ALBUM_COLUMNS) if albums else to_rows(rows)

    async def get_message_batch(
        self,
        group_id: int | str,
        *,
        after_id: int = 0,
        limit: int = 200,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> MessageBatch:
        """A bounded, oldest-first snapshot of the messages after `after_id`, as tgdata's MessageBatch v1.

        Read on from `next_after_id` while `stop_reason` is "limit"; "end" means nothing more for now.
        The batch's `batch_id` is the SHA-256 of its canonical JSON: persist or hand on the batch, and move
        your own durable cursor to `next_after_id` only once the receiver acknowledged it. Media is
        described, not downloaded (``media_mode`` "references"; `download_media_by_id` fetches files).

        Args:
            group_id: marked id, "@username" or t.me link.
            after_id: exclusive cursor, 0..2**31-1 (0: from the start of the history).
            limit: at most this many messages, 1..10000.
            start_date, end_date: both or neither: only messages sent in [start_date, end_date)
                (naive times are UTC); the id cursor still applies.
        """
        if not 0 <= after_id <= MAX_MESSAGE_ID:
            raise ValueError(f"after_id must be between 0 and {MAX_MESSAGE_ID}, got {after_id!r}")
        if not 1 <= limit <= MAX_BATCH_MESSAGES:
            raise ValueError(f"limit must be between 1 and {MAX_BATCH_MESSAGES}, got {limit!r}")
        if (start_date is None) != (end_date is None):
            raise ValueError("start_date and end_date go together: pass both or neither")
        # The window's end is inclusive; tgdata's interval is half-open.
        end = _utc(end_date)
        window = Window(_utc(start_date), None if end is None else end - timedelta(microseconds=1), after_id, limit)
        source, group = await self._source(group_id, window=window)
        events = [e async for new in self._walk(source, group, Tracker()) for e in new]
        return MessageBatch.of(group.id, after_id, events, "limit" if len(events) >= limit else "end")

    @staticmethod
    async def _newest_start(source: TelegramSource, group: Group, limit: int, end_date: datetime | None) -> int:
        """The id after which the newest `limit` messages (sent at or before `end_date`) begin; 0: all of them.

        Telegram's offset arithmetic answers it in one request: skip `limit` messages newest first and take
        the next one. Its offset_date is exclusive and its dates are whole seconds, so "at or before
        end_date" is "before end_date's second + 1".
        """
        offset_date = None if end_date is None else end_date.replace(microsecond=0) + timedelta(seconds=1)
        answer = await source.client(
            GetHistoryRequest(
                peer=await source.client.get_input_entity(group.id),
                offset_id=0,
                offset_date=offset_date,
                add_offset=limit,
                limit=1,
                max_id=0,
                min_id=0,
                hash=0,
            )
        )
        return int(answer.messages[0].id) if answer.messages else 0

    async def _walk(
        self, source: TelegramSource, group: Group, walk: Tracker, progress: _Progress | None = None
    ) -> AsyncIterator[list[MessageEvent]]:
        """The NEW events of each page of an ascending walk from `walk`'s cursor (which the pages move)."""
        async for page in source.pages(group, walk.cursor):
            events, _cursor = walk.accept(page)
            new = [e for e in events if e.event_type is EventType.NEW]
            if progress is not None:
                progress.page(page, new)
            yield new

    @staticmethod
    async def _batch(callback: BatchCallback, rows: list[Row], number: int, delay: float) -> None:
        await _call(callback, to_rows(rows), number)
        if delay > 0:
            await asyncio.sleep(delay)

    async def get_message_count(self, group_id: int | str) -> int:
        """How many messages the group's history holds, from one request (Telegram's own count)."""
        source, group = await self._source(group_id)
        found = await source.client.get_messages(group.id, limit=0)
        return int(found.total)

    async def search_messages(self, query: str, group_id: int | str, limit: int | None = None) -> Rows:
        """Messages of the group whose text matches `query` (Telegram's search), oldest first.

        Args:
            query: the words to look for.
            group_id: marked id, "@username" or t.me link.
            limit: at most this many (the newest matches).
        """
        source, group = await self._source(group_id)
        rows: list[Row] = []
        now = utc_now()
        async for message in source.client.iter_messages(group.id, search=query, limit=limit, wait_time=0):
            rows.append(event_to_row(map_message(message, group, source=Source.BACKFILL, ingest_time=now)))
        rows.sort(key=lambda r: int(r["MessageId"]))
        return to_rows(rows)

    async def download_media_by_id(
        self,
        group_id: int | str,
        message_ids: int | Iterable[int],
        output_dir: str | os.PathLike[str] | None = None,
    ) -> dict[int, str | bytes | None]:
        """Download the photos and files of chosen messages, on demand (tgdata's pairing with the
        `MediaType` column: read references cheaply, then fetch only the files you keep).

        Every request (the messages by id, then each file's parts) goes through the account's request
        gateway, so downloads are paced like everything else. Messages are fetched by id and matched by id,
        never by position (Telegram may leave ids out of an answer; those are asked again).

        Args:
            group_id: marked id, "@username" or t.me link.
            message_ids: one id or several; for an album pass every id sharing its `GroupedId`.
            output_dir: directory to write ``<group id>_<message id>.<ext>`` into (created if missing; a file
                already there is reused, not downloaded again); None returns the bytes instead.

        Returns:
            ``{message_id: path | bytes | None}``; None: no such message, or nothing downloadable (text,
            a link preview, a poll…), or its download failed (logged).
        """
        ids = [message_ids] if isinstance(message_ids, int) else list(message_ids)
        if not ids:
            return {}
        source, group = await self._source(group_id)
        client = source.client
        directory = None if output_dir is None else Path(output_dir)
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        results: dict[int, str | bytes | None] = {}
        async with self._paced(client):
            messages = await self._messages_by_id(client, group, ids)
            for mid in ids:
                media = getattr(messages.get(mid), "media", None)
                results[mid] = await self._download(client, media, group, mid, directory) if media else None
        log.info(
            "downloaded media of %d of %d messages of group %d",
            sum(v is not None for v in results.values()),
            len(ids),
            group.id,
        )
        return results

    @staticmethod
    async def _download(
        client: TelegramClient, media: Any, group: Group, message_id: int, directory: Path | None
    ) -> str | bytes | None:
        """One message's photo or document: its path (or bytes), None if it has no file or the download failed.

        In parts through `media_download`: a FloodWait or a reconnect continues at the next part, an
        expired file reference refetches the message, and into a directory the parts go to
        ``<name>.part`` first, so a download cut short is continued by the next call, not restarted.
        """
        if file_location(media) is None:
            return None
        refetch = message_refetcher(client, group.id, message_id)
        try:
            if directory is None:
                with tempfile.TemporaryDirectory(prefix="emitter-media-") as spool_dir:
                    result = await MediaDownload(client, media, Path(spool_dir) / "file", refetch=refetch).run()
                    if isinstance(result, Downloaded):
                        return await asyncio.to_thread(result.path.read_bytes)
            else:
                stem = f"{tl_utils.resolve_id(group.id)[0]}_{message_id}"
                existing = _downloaded(directory, stem)
                if existing is not None:
                    return existing
                final = directory / f"{stem}{tl_utils.get_extension(media)}"
                spool = final.with_name(final.name + _SPOOL_SUFFIX)
                result = await MediaDownload(client, media, spool, refetch=refetch).run()
                if isinstance(result, Downloaded):
                    result.path.replace(final)
                    return str(final)
        except (RPCError, OSError, ValueError, MediaDownloadError) as e:
            log.warning("media of message %d of group %d could not be downloaded: %s", message_id, group.id, e)
            return None
        log.info("media of message %d of group %d is gone: %s", message_id, group.id, result.reason)
        return None

    @staticmethod
    async def _messages_by_id(client: TelegramClient, group: Group, ids: Sequence[int]) -> dict[int, Any]:
        """The group's messages with these ids, matched by id; ids Telegram leaves out are asked again
        (twice), ids it answers `MessageEmpty` for are deleted."""
        peer = await client.get_input_entity(group.id)
        channel = isinstance(peer, types.InputPeerChannel)
        found: dict[int, Any] = {}
        deleted: set[int] = set()
        for _attempt in range(3):
            missing = [i for i in dict.fromkeys(ids) if i not in found and i not in deleted]
            for chunk in chunks(missing):
                wanted = [types.InputMessageID(i) for i in chunk]
                request: Any = GetChannelMessagesRequest(peer, wanted) if channel else GetMessagesRequest(wanted)
                answer = await client(request)
                for message in answer.messages:
                    if message.id not in chunk:
                        continue
                    if isinstance(message, types.MessageEmpty):
                        deleted.add(message.id)
                    elif tl_utils.get_peer_id(message.peer_id) == group.id:  # basic groups share account ids
                        found[message.id] = message
        return found

    @staticmethod
    def export_messages(messages: Rows, path: str | os.PathLike[str], format: _ExportFormat = "csv") -> Path:
        """Write rows (a DataFrame or a list of dicts) to a CSV or JSON file; dates in ISO 8601.

        JSON is a list of objects, one per row, missing values as null.

        Returns:
            The path written.
        """
        if format not in ("csv", "json"):
            raise ValueError(f"unsupported format {format!r}: expected 'csv' or 'json'")
        out = Path(path)
        records = json_rows(messages)
        with out.open("w", encoding="utf-8", newline="") as f:
            if format == "json":
                json.dump(records, f, ensure_ascii=False, indent=1)
            else:
                writer = csv.DictWriter(f, fieldnames=list(records[0]) if records else list(COLUMNS))
                writer.writeheader()
                writer.writerows(records)
        return out

    # --- incremental delivery -------------------------------------------------------------------------------

    async def _start_cursor(self, group: Group, after_id: int | None) -> GroupCursor:
        """Where delivery starts: the tracker's cursor, else after `after_id`, else after the newest message.

        A start chosen here is stored in a cursor tracker at once, so a restart resumes from it.
        """
        tracker = self.tracker
        cursor = await tracker.cursor(group.id) if isinstance(tracker, CursorTracker) else GroupCursor(group.id)
        if cursor.cursor != NEVER_WALKED:
            return cursor
        if after_id is None:
            client = await self.connect()
            newest = await client.get_messages(group.id, limit=1)
            after_id = newest[0].id if newest else 0
        if isinstance(tracker, CursorTracker):
            await tracker.mark_walked(group.id, after_id)
        return cursor.walked_to(after_id)

    async def _fresh(self, events: Sequence[MessageEvent]) -> list[MessageEvent]:
        """Events the tracker has not seen (a cursor tracker's view is already the walk's)."""
        if isinstance(self.tracker, CursorTracker):
            return list(events)
        return [e for e in events if not await self.tracker.is_processed(e.message_id, e.group.id)]

    async def _mark(self, page: Page, events: Sequence[MessageEvent]) -> None:
        """Record a page as processed: a cursor tracker moves like the walk, others mark the ids."""
        tracker = self.tracker
        if isinstance(tracker, CursorTracker) and page.walked_to is not None:
            await tracker.mark_walked(page.group.id, page.walked_to)
        elif events:
            await tracker.mark_batch_processed([_info(e) for e in events])

    async def poll_for_messages(
        self,
        group_id: int | str,
        interval: float = 60.0,
        callback: PollCallback | None = None,
        max_iterations: int | None = None,
        after_id: int | None = None,
    ) -> None:
        """Every `interval` seconds, hand `callback` the messages that are new since the last poll.

        Each poll walks history ascending from the tracker's cursor (never newest-first with a min_id, which
        returns only the newest page and skips the rest), so a burst of any size arrives whole, and each
        message is delivered once. The cursor moves only after `callback` returned: if it raises, the same
        messages come again at the next poll.

        Args:
            group_id: marked id, "@username" or t.me link.
            interval: seconds between polls.
            callback: ``callback(rows)``, sync or async; called only when there are new messages.
            max_iterations: stop after this many polls (None: until `stop` or cancellation).
            after_id: where to start when the tracker has no cursor for the group: after this id (0: the
                whole history); None: after the newest message at the first poll.
        """
        source, group = await self._source(group_id)
        cursors = {group.id: await self._start_cursor(group, after_id)}
        self._stop.clear()
        polls = 0
        while max_iterations is None or polls < max_iterations:
            if polls:
                # asyncio.timeout, not wait_for, which can swallow a cancellation on Python 3.11.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self._stop.wait()
                if self._stop.is_set():
                    return
            cursors = await self._poll_once(source, group, cursors, callback)
            polls += 1

    async def _poll_once(
        self,
        source: TelegramSource,
        group: Group,
        cursors: dict[int, GroupCursor],
        callback: PollCallback | None,
    ) -> dict[int, GroupCursor]:
        """One poll; the cursors after it (unchanged if the walk or the callback failed)."""
        walk = Tracker(cursors)
        pages: list[tuple[Page, list[MessageEvent]]] = []
        try:
            async for page in source.pages(group, walk.cursor):
                events, _cursor = walk.accept(page)
                pages.append((page, await self._fresh([e for e in events if e.event_type is EventType.NEW])))
        except (RPCError, OSError) as e:
            log.warning("poll of group %d failed, retrying at the next poll: %s", group.id, e)
            return cursors
        new = [e for _page, events in pages for e in events]
        if new and callback is not None:
            try:
                await _call(callback, to_rows(event_to_row(e) for e in new))
            except Exception:
                log.exception("poll callback failed: the same messages come again at the next poll")
                return cursors
        for page, events in pages:
            await self._mark(page, events)
        return {gid: walk.cursor(gid) for gid in {*cursors, *(p.group.id for p, _ in pages)}}

    def on_new_message(self, group_id: int | str | None = None) -> Callable[[MessageHandler], MessageHandler]:
        """Register an async ``handler(row)`` for new messages of a group (None: every group of the account).

        Handlers run from `run_with_event_loop`. Each message reaches each handler once: live updates are
        fast, and sweeps of history fill what live updates missed (reconnects, flood waits, dropped
        updates). A handler that raises is logged; its message is not offered again.
        """

        def register(func: MessageHandler) -> MessageHandler:
            self._handlers.append(_Handler(group_id, func))
            return func

        return register

    async def run_with_event_loop(self) -> None:
        """Deliver new messages to the `on_new_message` handlers until `stop`, cancellation or a fatal error.

        A group seen for the first time starts after its newest message; a group the tracker has a cursor
        for resumes from it, so with a persistent tracker nothing posted while the process was down is lost.
        """
        if not self._handlers:
            raise ValueError("no handlers: register one with @tg.on_new_message() first")
        client = await self.connect()
        self._stop.clear()
        groups = await self._handler_groups()
        source = TelegramSource(client, [g.id for g in groups], sweep_interval=self.sweep_interval)
        await source.start()
        try:
            await source.groups()
            walk = Tracker({g.id: await self._start_cursor(g, None) for g in groups})
            await self._supervise([self._deliver(source, g, walk) for g in groups])
        finally:
            await source.stop()

    async def _handler_groups(self) -> list[Group]:
        """The groups the handlers watch, resolved once each."""
        specs: dict[str, str | int] = {}
        for h in self._handlers:
            if h.spec is None:
                specs.update({str(g.id): g.id for g in await account_groups(await self.connect())})
            else:
                specs[str(h.spec)] = h.spec
        groups: dict[int, Group] = {}
        for spec in specs.values():
            _source, group = await self._source(spec)
            groups[group.id] = group
            self._resolved[str(spec)] = group.id
        return list(groups.values())

    def _handlers_of(self, group_id: int) -> list[MessageHandler]:
        return [h.func for h in self._handlers if h.spec is None or self._resolved.get(str(h.spec)) == group_id]

    async def _supervise(self, deliveries: list[Awaitable[None]]) -> None:
        """Run the per-group deliveries until all ended (`stop` ends them after their current page).

        An error in one stops the others and is raised; cancellation cancels them all.
        """
        tasks = [asyncio.ensure_future(d) for d in deliveries]
        try:
            pending: set[asyncio.Future[None]] = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    error = task.exception()
                    if error is not None:
                        raise error
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _deliver(self, source: TelegramSource, group: Group, walk: Tracker) -> None:
        """Hand each new message of the group to its handlers, then record it in the tracker; until stop."""
        handlers = self._handlers_of(group.id)
        pages = source.pages(group, walk.cursor)
        try:
            while (page := await self._next_page(pages)) is not None:
                events, _cursor = walk.accept(page)
                new = await self._fresh([e for e in events if e.event_type is EventType.NEW])
                for event in new:
                    row = event_to_row(event)
                    for handler in handlers:
                        try:
                            await _call(handler, row)
                        except Exception:
                            log.exception("handler %s failed on message %d", handler, event.message_id)
                await self._mark(page, new)
        except SourceError as e:
            log.error("group %d stopped: %s", group.id, e.reason)  # noqa: TRY400 - lost access is no bug
        finally:
            closer = getattr(pages, "aclose", None)  # an async generator: close it where it stands
            if closer is not None:
                await closer()

    async def _next_page(self, pages: AsyncIterator[Page]) -> Page | None:
        """The next page, or None once the pages end or `stop` is called (a page being fetched is dropped:
        nothing of it was delivered, so nothing is lost)."""
        fetch: asyncio.Future[Page] = asyncio.ensure_future(anext(pages))
        stop = asyncio.ensure_future(self._stop.wait())
        racing: set[asyncio.Future[Any]] = {fetch, stop}
        try:
            await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not fetch.done():
                fetch.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await fetch
        if fetch.cancelled():
            return None
        try:
            return fetch.result()
        except StopAsyncIteration:
            return None
