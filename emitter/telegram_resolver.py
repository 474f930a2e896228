"""Resolving configured groups to Telegram entities, resolving each one once in its life.

`contacts.ResolveUsername` is the most tightly limited method Telegram has (waits of hours after a few
dozen calls) and `messages.GetDialogs` costs about half a minute of budget per page, while a crash loop
or a rolling update restarts the emitter often. So the cheapest source goes first:

1. the peer stored with the group's cursor (id + access hash): all of them in one `GetChannels` and one
   `GetChats` request;
2. the session's own entity cache (file sessions), for marked ids;
3. one walk of the dialogs, shared by every group still missing (joined groups, by id or by username);
4. `ResolveUsername`, only for public groups the account has not joined.

Everything passes the account's request gateway, so waits and retries happen there.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from telethon import TelegramClient, errors, types
from telethon.tl.functions.channels import GetChannelsRequest
from telethon.tl.functions.messages import GetChatsRequest

from emitter.cursor import GroupCursor, PeerRef
from emitter.records import Group
from emitter.telegram_gateway import ErrorClass, classify
from emitter.telegram_mapping import group_from_entity

log = logging.getLogger("emitter.telegram")

_LINK: Final = re.compile(r"^(?:https?://)?(?:t|telegram)\.me/([A-Za-z][A-Za-z0-9_]{3,31})/?$")
_ID: Final = re.compile(r"^-?\d+$")


def parse_spec(spec: str | int) -> int | str:
    """A configured group as a marked id (int) or a case-folded username without `@` (str)."""
    text = str(spec).strip()
    link = _LINK.match(text)
    if link:
        return link.group(1).casefold()
    if _ID.match(text):
        return int(text)
    return text.removeprefix("@").casefold()


def peer_ref(entity: Any) -> PeerRef | None:
    """What to store to reach `entity` again without resolving it (None for users and unknown types)."""
    username = getattr(entity, "username", None)
    if isinstance(entity, types.Channel | types.ChannelForbidden):
        return PeerRef("channel", int(entity.id), int(entity.access_hash or 0), username)
    if isinstance(entity, types.Chat | types.ChatForbidden):
        return PeerRef("chat", int(entity.id))
    return None


def input_peer(ref: PeerRef) -> Any:
    """The TL input peer for a stored reference."""
    if ref.kind == "channel":
        return types.InputPeerChannel(ref.id, ref.access_hash)
    return types.InputPeerChat(ref.id)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A configured group found on Telegram."""

    spec: str
    entity: Any
    group: Group
    peer: PeerRef | None
    channel_id: int | None = None
    """Set on a channel's discussion group (telegram.follow_comments): the channel's marked id."""


@dataclass
class ResolveStats:
    """Which route each group was found by (tests and the status page read it)."""

    stored: int = 0
    session_cache: int = 0
    dialogs: int = 0
    dialog_walks: int = 0
    resolve_username: int = 0


class Resolver:
    """Finds the entities of configured groups for one client, as cheaply as Telegram allows."""

    def __init__(self, client: TelegramClient) -> None:
        self.client = client
        self.stats = ResolveStats()
        self._dialogs: dict[int | str, Any] | None = None

    async def resolve(
        self, specs: Sequence[str | int], stored: Mapping[int, GroupCursor] = {}
    ) -> tuple[list[Resolved], dict[str, str]]:
        """Resolve every spec; returns the groups found and, for the others, why not (spec → reason).

        Raises the gateway's AccountGoneError when the session is dead; transient trouble is retried by the
        gateway, so what comes back as a reason is the group's own problem (no such name, no access).
        """
        keys = {str(spec): parse_spec(spec) for spec in specs}
        by_id = {c.group_id: c.peer for c in stored.values() if c.peer is not None}
        by_name = {c.peer.username.casefold(): c.peer for c in stored.values() if c.peer and c.peer.username}
        known = {spec: (by_id.get(k) if isinstance(k, int) else by_name.get(k)) for spec, k in keys.items()}
        found = await self._fetch_stored([p for p in known.values() if p is not None])
        out: list[Resolved] = []
        unresolved: dict[str, str] = {}
        missing: list[str] = []
        for spec, ref in known.items():
            entity = found.get((ref.kind, ref.id)) if ref is not None else None
            if entity is None:
                missing.append(spec)
                continue
            self.stats.stored += 1
            out.append(self._resolved(spec, entity))
        if missing:
            await self._resolve_missing(missing, keys, out, unresolved)
        for r in out:
            if isinstance(r.entity, types.ChannelForbidden | types.ChatForbidden):
                unresolved[r.spec] = "no access (the account was removed or banned)"
        return [r for r in out if r.spec not in unresolved], unresolved

    async def find(self, spec: str | int) -> Any:
        """The entity of one group spec by the cheapest route, forbidden variants included (the library's
        lookups report those rather than failing); raises ValueError or the RPC error when nothing is found."""
        return await self._find(parse_spec(spec), several=False)

    @staticmethod
    def _resolved(spec: str, entity: Any) -> Resolved:
        return Resolved(spec, entity, group_from_entity(entity), peer_ref(entity))

    async def _resolve_missing(
        self, missing: list[str], keys: Mapping[str, int | str], out: list[Resolved], unresolved: dict[str, str]
    ) -> None:
        for spec in missing:
            key = keys[spec]
            try:
                entity = await self._find(key, several=len(missing) > 1)
            except (ValueError, TypeError, errors.RPCError) as e:
                if classify(e) is ErrorClass.ACCOUNT_GONE:
                    raise
                unresolved[spec] = f"{type(e).__name__}: {e}"
                continue
            out.append(self._resolved(spec, entity))

    async def _fetch_stored(self, refs: Sequence[PeerRef]) -> dict[tuple[str, int], Any]:
        """Entities of stored peers: one `GetChannels` and one `GetChats` for all of them."""
        requests = {
            "channel": GetChannelsRequest(
                [types.InputChannel(r.id, r.access_hash) for r in refs if r.kind == "channel"]
            ),
            "chat": GetChatsRequest([r.id for r in refs if r.kind == "chat"]),
        }
        found: dict[tuple[str, int], Any] = {}
        for kind, request in requests.items():
            if not request.id:
                continue
            try:
                answer = await self.client(request)
            except errors.RPCError as e:
                if classify(e) is ErrorClass.ACCOUNT_GONE:
                    raise
                log.info("stored %s peers were refused (%s): resolving them again", kind, type(e).__name__)
                continue
            found.update(((kind, chat.id), chat) for chat in answer.chats)
        return found

    async def _find(self, key: int | str, *, several: bool) -> Any:
        if isinstance(key, int):
            try:
                return await self.client.get_entity(await self.client.get_input_entity(key))
            except ValueError:
                pass  # not in the session's cache: the dialogs know every group the account is in
            dialogs = await self._dialog_index()
            if key in dialogs:
                self.stats.dialogs += 1
                return dialogs[key]
            raise ValueError(f"no group with id {key} among the account's dialogs")
        if several or self._dialogs is not None:
            # One dialog walk is cheaper than more than one ResolveUsername, and finds every joined group.
            dialogs = await self._dialog_index()
            if key in dialogs:
                self.stats.dialogs += 1
                return dialogs[key]
        self.stats.resolve_username += 1
        return await self.client.get_entity("@" + key)

    async def _dialog_index(self) -> dict[int | str, Any]:
        """Every dialog's entity by marked id and by case-folded username (walked once per resolver)."""
        if self._dialogs is None:
            self.stats.dialog_walks += 1
            index: dict[int | str, Any] = {}
            for dialog in await self.client.get_dialogs(limit=None):
                entity = dialog.entity
                index[int(dialog.id)] = entity
                username = getattr(entity, "username", None)
                if username:
                    index[username.casefold()] = entity
            self._dialogs = index
        return self._dialogs
