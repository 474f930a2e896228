"""What `TgData`'s group calls return, with tgdata 0.1.4's names, and the pure reading of Telegram's answers.

`lookup_group`, `check_group_access`, `join_group` and `get_group_profile` answer with these frozen values
(each has `to_dict()`); turning a Telethon entity or full-chat answer into them happens here, without I/O,
so the rules (who counts as a member, which kind a group is) are tested on plain TL objects.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Final, Literal

from telethon import types, utils
from telethon.errors import rpcerrorlist

from emitter.errors import ConfigError

__all__ = [
    "GroupAccess",
    "GroupJoin",
    "GroupKind",
    "GroupLookup",
    "GroupMetadata",
    "GroupProfile",
    "GroupReferenceError",
    "invite_hash",
    "invite_label",
    "invite_preview",
    "profile_of",
    "project",
]

GroupKind = Literal["group", "megagroup", "channel", "unknown"]
"""tgdata's kinds: a basic group, a supergroup, a broadcast channel, or a channel Telegram sent too little of."""

AccessStatus = Literal["readable", "denied", "unprobed"]
JoinStatus = Literal["joined", "already_joined", "requested", "payment_required"]

_INVITE: Final = re.compile(r"^(?:https?://)?(?:www\.)?(?:t|telegram)\.me/(?:\+|joinchat/)([A-Za-z0-9_-]{1,256})/?$")


class GroupReferenceError(ConfigError, ValueError):
    """A reference that is unsupported, unavailable, or not a group (a user, a migrated basic group)."""


@dataclass(frozen=True, slots=True)
class GroupMetadata:
    """A group as Telegram showed it: `id` is the bare id, `peer_id` the marked one every TgData call takes."""

    id: int | None
    peer_id: int | None
    title: str
    username: str | None
    kind: GroupKind
    participants_count: int | None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class GroupLookup:
    """`lookup_group`: the group, and whether the account is in it (None: Telegram did not say)."""

    account_id: int
    target: str | int
    group: GroupMetadata
    member: bool | None
    request_needed: bool | None = None
    """Joining sends a join request that an admin must approve."""
    requires_payment: bool | None = None
    preview_expires_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (dates in ISO 8601)."""
        out = asdict(self)
        if self.preview_expires_at is not None:
            out["preview_expires_at"] = self.preview_expires_at.isoformat()
        return out


@dataclass(frozen=True, slots=True)
class GroupAccess:
    """`check_group_access`: readable (one message of history came back), denied (Telegram refused the
    group, `reason` says how), or unprobed (no usable peer to ask with)."""

    account_id: int
    target: str | int
    status: AccessStatus
    lookup: GroupLookup | None = None
    reason: str | None = None

    @property
    def readable(self) -> bool | None:
        """True, False, or None when not probed."""
        return {"readable": True, "denied": False, "unprobed": None}[self.status]

    @property
    def group(self) -> GroupMetadata | None:
        """The group, when it could be looked up."""
        return None if self.lookup is None else self.lookup.group

    @property
    def member(self) -> bool | None:
        """Whether the account is in the group, as the lookup saw it."""
        return None if self.lookup is None else self.lookup.member

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict, `readable` included."""
        return {
            "account_id": self.account_id,
            "target": self.target,
            "status": self.status,
            "lookup": None if self.lookup is None else self.lookup.to_dict(),
            "reason": self.reason,
            "readable": self.readable,
        }


@dataclass(frozen=True, slots=True)
class GroupJoin:
    """`join_group`: the outcome, with the group as it was before the join."""

    account_id: int
    target: str | int
    group: GroupMetadata
    status: JoinStatus

    @property
    def member(self) -> bool | None:
        """True once joined; None while a join request waits for an admin."""
        return True if self.status in ("joined", "already_joined") else None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict, `member` included."""
        return {
            "account_id": self.account_id,
            "target": self.target,
            "group": self.group.to_dict(),
            "status": self.status,
            "member": self.member,
        }


@dataclass(frozen=True, slots=True)
class GroupProfile:
    """`get_group_profile`: the full metadata Telegram keeps for a group (one `GetFull…` request)."""

    account_id: int
    target: str | int
    group: GroupMetadata
    about: str
    online_count: int | None
    observed_at: datetime
    linked_group_id: int | None = None
    """Marked id of the linked chat: a channel's discussion supergroup, or the channel a discussion group
    belongs to (not in tgdata's profile; `linked_groups` reads it)."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (dates in ISO 8601)."""
        return {**asdict(self), "group": self.group.to_dict(), "observed_at": self.observed_at.isoformat()}


_WIRE_NAMES: Final[dict[type, str]] = {cls: name for name, cls in rpcerrorlist.rpc_errors_dict.items()}


def telegram_error_name(error: BaseException) -> str:
    """Telegram's own name for an error (CHANNEL_PRIVATE), which Telethon's classes for known errors do not
    keep in `.message` (that holds the code's generic name, BAD_REQUEST)."""
    return _WIRE_NAMES.get(type(error)) or getattr(error, "message", None) or type(error).__name__


def invite_hash(target: str | int) -> str | None:
    """The hash of a t.me/+… or t.me/joinchat/… invite link, else None."""
    match = _INVITE.match(str(target).strip())
    return None if match is None else match.group(1)


def invite_label(invite: str) -> str:
    """How results name an invite link: the hash opens the group to anyone holding it, so only its digest."""
    return "invite:" + hashlib.sha256(invite.encode("ascii", "replace")).hexdigest()


def invite_preview(invite: Any) -> GroupMetadata:
    """The metadata of a `ChatInvite` preview (a group the account is not in): no ids, no username."""
    kind: GroupKind = "group"
    if invite.channel:
        kind = "megagroup" if invite.megagroup else "channel" if invite.broadcast else "unknown"
    count = invite.participants_count
    return GroupMetadata(None, None, invite.title, None, kind, None if count is None else int(count))


def _kind(entity: Any) -> GroupKind:
    if isinstance(entity, types.Chat | types.ChatForbidden):
        return "group"
    if getattr(entity, "megagroup", None):
        return "megagroup"
    if getattr(entity, "broadcast", None):
        return "channel"
    return "unknown"


def project(entity: Any) -> tuple[GroupMetadata, bool | None, bool | None]:
    """The metadata of a group entity, whether the account is a member, and whether joining needs approval.

    Membership is known only from a full `Chat`/`Channel` (its `left` flag); forbidden and "min" entities
    leave it None, as tgdata does.

    Raises:
        GroupReferenceError: the entity is a user, a deactivated basic group or one migrated to a supergroup.
    """
    if not isinstance(entity, types.Chat | types.ChatForbidden | types.Channel | types.ChannelForbidden):
        raise GroupReferenceError(f"{type(entity).__name__} is not a group: expected a group, supergroup or channel")
    if isinstance(entity, types.Chat) and (entity.deactivated or entity.migrated_to is not None):
        raise GroupReferenceError(f"basic group {entity.id} is deactivated or migrated to a supergroup")
    count = getattr(entity, "participants_count", None)
    metadata = GroupMetadata(
        id=int(entity.id),
        peer_id=int(utils.get_peer_id(entity)),
        title=entity.title,
        username=getattr(entity, "username", None),
        kind=_kind(entity),
        participants_count=None if count is None else int(count),
    )
    full = isinstance(entity, types.Chat | types.Channel) and not getattr(entity, "min", False)
    member = (not entity.left) if full else None
    request_needed = bool(entity.join_request) if full and isinstance(entity, types.Channel) else None
    return metadata, member, request_needed


def profile_of(answer: Any, lookup: GroupLookup, observed_at: datetime) -> GroupProfile:
    """A `messages.ChatFull` answer as the group's profile (counts from the full chat, which are current)."""
    full = answer.full_chat
    if int(full.id) != lookup.group.id:
        raise ValueError(f"Telegram answered for chat {full.id}, not the requested {lookup.group.id}")
    basic = isinstance(full, types.ChatFull)
    participants = getattr(full, "participants", None)
    if basic:
        listed = getattr(participants, "participants", None)
        count = lookup.group.participants_count if listed is None else len(listed)
    else:
        count = full.participants_count
    linked_id = None if basic else full.linked_chat_id
    linked = None if linked_id is None else int(utils.get_peer_id(types.PeerChannel(linked_id)))
    return GroupProfile(
        account_id=lookup.account_id,
        target=lookup.target,
        group=replace(lookup.group, participants_count=count),
        about=full.about or "",
        online_count=None if basic else full.online_count,
        observed_at=observed_at,
        linked_group_id=linked,
    )
