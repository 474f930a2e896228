"""`FakeTelegram`: an in-process Telegram (one account, its chats and their histories) for tests.

The world answers the real Telethon `TelegramClient` through `FakeSender` (see sender.py), so Telethon's
pagination, entity cache, update handling, retries and flood-wait logic all run for real. Answers are
real TL objects and, by default, travel as bytes (`bytes(obj)` on the way out, the request's own
`read_result` on the way in), exactly like an `rpc_result` body.

Model, as Telegram has it:

* one account (``fake.me``); every client attached to the world is a session of that account, and
  every connected session receives the account's live updates;
* channels and supergroups each have their own message id counter (from 1) and their own pts;
* basic groups ("chats") and private chats take message ids from one account-wide counter and share
  the account pts (so a basic group's ids have large gaps whenever other chats are busy);
* deleted ids leave gaps; edits set ``edit_date``; a basic group can migrate to a supergroup;
* reaction changes (`react`) are pushed as updateMessageReactions but take no pts step and are not in
  the update log: a difference never reports them, only re-reading the message shows them.

Time: message dates come from ``clock`` (default: the real UTC clock), whole seconds. Rate limits and
spells run on ``monotonic`` (default `time.monotonic`; share a `ScaledClock`'s with the code under test).
The fake never sleeps, except for an optional ``latency`` on answers.

No kinder than Telegram, by default (README.md beside this file lists each behaviour and its source):

* per-method flood limits (`TELEGRAM_LIKE` token buckets) answer FLOOD_WAIT_X, and sending during a
  wait makes it longer;
* getMessages leaves out some ids that exist (``omit_fraction``), one entry per message returned;
* spells of 500s / timeouts outlast Telethon's retries (``fake.faults.spell``);
* a channel more than ``channel_difference_limit`` pts behind gets ChannelDifferenceTooLong;
* channels the account has not joined push nothing and are readable only when public;
* sessions die by RPC error or by the transport's -404 (`kill_session`), and a key used from two
  places at once is revoked with AUTH_KEY_DUPLICATED;
* upload.getFile keeps Telegram's part rules and its own flood limit, file references expire
  (`expire_file_reference`), and connections can die mid-request (``fake.faults.cut_connection``).
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from telethon import TelegramClient, errors
from telethon.client import telegrambaseclient
from telethon.crypto import AuthKey
from telethon.extensions import BinaryReader
from telethon.network import MTProtoSender
from telethon.sessions import Session, StringSession
from telethon.tl import TLRequest, functions, types
from telethon.tl.core import RpcResult, TLMessage

from . import login
from ._tl import WRAPPERS, RequestSpec, date_or_none, request_key, serialize_result, spec_matches, utc_now
from .faults import FaultPlan
from .limits import TELEGRAM_LIKE, RateLimiter, RateLimits
from .sender import FakeSender, Link, Settle, transport_error

_log = logging.getLogger(__name__)

# What Telegram answers at most per history page.
HISTORY_PAGE_MAX = 100
# What a user account may ask per getChannelDifference (Telethon sends exactly this).
USER_CHANNEL_DIFF_LIMIT = 100
# How old a chat created without a date is: older than any history a test builds after it.
_DEFAULT_AGE = timedelta(days=365)
# Marked channel ids are -(10**12 + id), see telethon.utils.get_peer_id.
_CHANNEL_MARK = 10**12

# How Telegram answers the requests of a session that died, by error message (core.telegram.org/api/errors:
# 401 UNAUTHORIZED for a key that is no longer logged in, 406 for a key used from two places at once).
SESSION_DEATH_CODES: dict[str, int] = {
    "AUTH_KEY_UNREGISTERED": 401,
    "AUTH_KEY_INVALID": 401,
    "AUTH_KEY_PERM_EMPTY": 401,
    "SESSION_REVOKED": 401,
    "SESSION_EXPIRED": 401,
    "USER_DEACTIVATED": 401,
    "USER_DEACTIVATED_BAN": 401,
    "AUTH_KEY_DUPLICATED": 406,
}
# The transport error Telegram sends instead of an answer when it does not know the auth key.
_AUTH_KEY_UNKNOWN = 404

# TelegramClient settings as the emitter builds its client; `FakeTelegram.client` defaults to them.
_PRODUCTION_CLIENT: dict[str, Any] = {
    "flood_sleep_threshold": 60,
    "receive_updates": True,
    "connection_retries": -1,
    "retry_delay": 2,
}

# Requests Telegram answers on a connection whose key is not logged in.
_NO_AUTH_NEEDED = frozenset(
    {"help.GetConfigRequest", "help.GetNearestDcRequest", "PingRequest", "PingDelayDisconnectRequest"}
    | {"auth.SendCodeRequest", "auth.SignInRequest", "account.GetPasswordRequest", "auth.CheckPasswordRequest"}
)

Entity = Any
"""A TL User, Chat or Channel as returned by `add_user` / `add_chat` / `add_channel`."""
PeerLike = Any
"""What the helpers accept as a chat: a TL User/Chat/Channel (or Peer*/InputPeer*), a marked id, or a
username."""


class UnsupportedRequestError(errors.RPCError, NotImplementedError):  # type: ignore[misc]  # untyped base
    """A request the fake does not answer. Raised to the caller, naming the request type.

    It is an RPCError (so Telethon's update loop treats it like any failed call instead of crashing)
    and a NotImplementedError (so a test can tell "the fake lacks this" from a scripted fault).
    """

    def __init__(self, request: object, key: str) -> None:
        super().__init__(request, f"FAKETELEGRAM_UNSUPPORTED_REQUEST {key}", 400)
        self.key = key


class _RpcFailure(Exception):
    """Internal: answer the current request with this RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class HistoryCall:
    """One messages.getHistory as the world received it, and what it answered."""

    peer: int
    """Marked id of the chat (user id, -chat id, -(10**12 + channel id))."""
    offset_id: int
    offset_date: datetime | None
    add_offset: int
    limit: int
    max_id: int
    min_id: int
    returned_ids: tuple[int, ...]
    count: int


@dataclass(frozen=True, slots=True)
class _Event:
    """One pts step of a message box: what happened, to which chat, at which pts."""

    pts: int  # the box's pts after this event
    pts_count: int
    kind: str  # "new" | "edit" | "delete"
    peer: int  # marked id of the chat
    ids: tuple[int, ...]
    date: datetime


class _History:
    """Messages of one chat: a sorted id list (for offset arithmetic) and the messages by id."""

    __slots__ = ("ids", "msgs")

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.msgs: dict[int, Any] = {}

    def add(self, msg: Any) -> None:
        if not self.ids or msg.id > self.ids[-1]:
            self.ids.append(msg.id)
        else:
            bisect.insort(self.ids, msg.id)
        self.msgs[msg.id] = msg

    def remove(self, msg_id: int) -> bool:
        if self.msgs.pop(msg_id, None) is None:
            return False
        del self.ids[bisect.bisect_left(self.ids, msg_id)]
        return True

    def top(self) -> Any | None:
        return self.msgs[self.ids[-1]] if self.ids else None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(eq=False)
class _UserState:
    tl: Any
    history: _History = field(default_factory=_History)  # the private chat with this user

    @property
    def marked(self) -> int:
        return int(self.tl.id)


@dataclass(eq=False)
class _ChatState:
    tl: Any
    members: list[int]
    history: _History = field(default_factory=_History)
    revoked: bool = False
    migrated_to: _ChannelState | None = None

    @property
    def marked(self) -> int:
        return -int(self.tl.id)


@dataclass(eq=False)
class _ChannelState:
    tl: Any
    members: list[int]
    history: _History = field(default_factory=_History)
    # pts starts at 1: 0 means "no state" to Telegram (PERSISTENT_TIMESTAMP_EMPTY) and to Telethon.
    pts: int = 1
    next_id: int = 1
    events: list[_Event] = field(default_factory=list)
    event_pts: list[int] = field(default_factory=list)
    last_event_date: datetime | None = None
    revoked: bool = False
    joined: bool = True
    migrated_from: _ChatState | None = None
    migrated_from_max_id: int | None = None
    about: str = ""
    linked: _ChannelState | None = None
    """A broadcast channel's discussion supergroup, or the channel a discussion supergroup belongs to."""
    join_requests: list[int] = field(default_factory=list)
    """Users waiting for an admin to approve their join (channels with `join_request`)."""
    topics: dict[int, _Topic] = field(default_factory=dict)
    """A forum supergroup's topics by id (General, id 1, included)."""
    auto_forwards: dict[int, int] = field(default_factory=dict)
    """A discussion supergroup's automatic forwards: channel post id -> the forward's id here."""

    @property
    def marked(self) -> int:
        return -(_CHANNEL_MARK + int(self.tl.id))


_PeerState = _UserState | _ChatState | _ChannelState


@dataclass
class _Topic:
    """A forum topic: its id is the id of the service message that created it (1 for General)."""

    id: int
    title: str
    date: datetime
    creator: int
    icon_color: int = 0x6FB9F0


@dataclass(eq=False)
class _File:
    """A photo's or document's bytes on Telegram's file servers."""

    access_hash: int
    file_reference: bytes
    data: bytes
    thumb_sizes: frozenset[str] = frozenset()
    """A photo's size types (the bytes are served for each); empty for a document."""
    tl: Any = None
    """The Photo or Document every message holding the file shares (its reference changes with ours)."""
    dc_id: int = 0
    references: int = 1
    """How many file references the file has had."""
    served: int = 0
    """Parts served so far."""
    expire_after: int | None = None
    """Expire the reference once this many parts were served (`expire_file_reference(after_parts=...)`)."""


_FILE_PART_MAX = 1 << 20
_FILE_PART_ALIGN = 4096


def _reaction_counts(reactions: Mapping[str, int]) -> list[tuple[str, int]]:
    """The non-zero counts of `reactions`, most first (Telegram lists reactions by count)."""
    for emoji, count in reactions.items():
        if not isinstance(emoji, str) or not emoji:
            raise ValueError(f"a reaction must be a non-empty emoji string, got {emoji!r}")
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"reaction count for {emoji!r} must be an int >= 0, got {count!r}")
    kept = [(emoji, count) for emoji, count in reactions.items() if count]
    return sorted(kept, key=lambda item: -item[1])


def _message_reactions(counts: Sequence[tuple[str, int]]) -> Any:
    """A TL MessageReactions for (emoji, count) pairs; no pairs is an empty result list, as after removal."""
    return types.MessageReactions(
        results=[types.ReactionCount(reaction=types.ReactionEmoji(emoticon=e), count=c) for e, c in counts]
    )


def _reaction_key(reaction: Any) -> str:
    """How `reactions_of` names a TL Reaction (the emitter's spelling: emoji, 'custom:<id>', 'paid')."""
    if isinstance(reaction, types.ReactionEmoji):
        return str(reaction.emoticon)
    if isinstance(reaction, types.ReactionCustomEmoji):
        return f"custom:{reaction.document_id}"
    if isinstance(reaction, types.ReactionPaid):
        return "paid"
    return type(reaction).__name__


class FakeTelegram:
    """An in-process Telegram for one account. See the module docstring for the model.

    Build the world with `add_user`, `add_channel`, `add_chat`, `post`, `post_many`; connect real
    clients with `client()`; change the world while they run (`post`, `edit`, `react`, `delete`, `migrate`,
    `revoke_access`, `burst`); script failures through ``fake.faults`` and `disconnect`/`set_online`;
    assert on ``request_counts``, `count()`, ``history_calls``.
    """

    def __init__(  # noqa: PLR0915  # one flat list of the world's state reads better than helpers
        self,
        *,
        seed: int = 0,
        roundtrip: bool = True,
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] | None = None,
        rate_limits: RateLimits | None = TELEGRAM_LIKE,
        latency: float = 0.0,
        me_first_name: str = "Emitter",
        me_username: str | None = None,
        account_message_id_start: int = 1,
        difference_slice_size: int = 100,
        channel_difference_limit: int = USER_CHANNEL_DIFF_LIMIT,
        omit_fraction: float = 0.05,
        omit_missing_messages: bool = False,
        detect_duplicate_sessions: bool = True,
        dc_id: int = telegrambaseclient.DEFAULT_DC_ID,
        dc_address: str = telegrambaseclient.DEFAULT_IPV4_IP,
        dc_port: int = telegrambaseclient.DEFAULT_PORT,
    ) -> None:
        """Create an empty world holding only the account's own user and one other user.

        roundtrip: answers and updates travel as bytes and are parsed again (on by default: real
            parsing cost and behaviour; off: clients receive the world's own objects, faster, but
            Telethon's in-place changes to them leak between clients and into the world).
        clock: returns the current time as an aware UTC datetime (default: the real clock); message
            dates, edit dates and getState dates come from it, truncated to whole seconds.
        monotonic: seconds on a monotonic clock (default `time.monotonic`); every rate-limit and
            spell decision uses it. Share ``emitter.clock.ScaledClock(speed).monotonic`` with the code
            under test to run hours of Telegram's limits in seconds.
        rate_limits: the account's flood limits (default `TELEGRAM_LIKE`); an empty bucket answers
            FLOOD_WAIT_X. None switches limits off: a test that needs that has found code that does not
            pace itself, which is a finding to fix, not a setting to keep.
        latency: seconds before an answer or update reaches a client (0: next loop iteration).
        account_message_id_start: first id of the account-wide counter (basic groups, private chats).
        difference_slice_size: account events per updates.getDifference answer before it is sliced.
        channel_difference_limit: how many pts a client may be behind in a channel before
            updates.getChannelDifference answers ChannelDifferenceTooLong (100 for user accounts).
        omit_fraction: channels/messages.getMessages leave out each existing requested message with
            this probability, per request (seeded by `seed`), as Telegram sometimes does.
        omit_missing_messages: channels/messages.getMessages leave deleted ids out instead of
            answering MessageEmpty in their place (a fault some peers were bitten by).
        detect_duplicate_sessions: two live connections with the same auth key get the key revoked
            and AUTH_KEY_DUPLICATED on every request, as Telegram does (on by default).
        """
        self._rng = random.Random(seed)
        self.roundtrip = roundtrip
        self._clock = clock or utc_now
        self.monotonic: Callable[[], float] = monotonic or time.monotonic
        self.latency = latency
        self.difference_slice_size = difference_slice_size
        self.channel_difference_limit = channel_difference_limit
        if not 0.0 <= omit_fraction <= 1.0:
            raise ValueError(f"omit_fraction must be within [0, 1], got {omit_fraction}")
        self.omit_fraction = omit_fraction
        # Its own generator, so that omissions do not shift access hashes or keys between test runs.
        self._omit_rng = random.Random(f"omit:{seed}")
        self.omit_missing_messages = omit_missing_messages
        self.detect_duplicate_sessions = detect_duplicate_sessions
        self.dc_id = dc_id
        self.dc_address = dc_address
        self.dc_port = dc_port

        self.takeout_delay = 0
        """While non-zero, account.initTakeoutSession answers TAKEOUT_INIT_DELAY_<this> (the user must confirm
        the data export on another device, as Telegram asks)."""
        self.takeouts = 0
        self.takeouts_finished = 0
        self.takeout_requests = 0
        """Requests that came wrapped in invokeWithTakeout."""
        self.faults = FaultPlan(seed=seed, monotonic=self.monotonic)
        self.rate_limits = rate_limits
        self._limiter = RateLimiter(rate_limits or RateLimits())
        self.request_counts: Counter[str] = Counter()
        self.request_log: list[str] = []
        self.request_times: list[tuple[float, str]] = []
        """(monotonic time, request key) of every request received, rate-limited or not."""
        self.omitted_ids: list[tuple[int, int]] = []
        """(marked peer id, message id) of every existing message a getMessages answer left out."""
        self.connections_opened = 0
        """Connections clients opened (a reconnect opens one more)."""
        self.transport_errors: list[int] = []
        """Transport error codes sent instead of answers (e.g. -404 for an unknown auth key)."""
        self.response_log: list[tuple[str, str]] = []
        """(request key, what was answered): a result type name, or 'rpc_error CODE MESSAGE'."""
        self.history_calls: list[HistoryCall] = []
        self.unsupported_requests: list[str] = []
        self.init_connections: list[functions.InitConnectionRequest] = []
        """Every initConnection received (as parsed from the client's bytes): the device identity each connection
        presented (device_model, system_version, app_version, lang_code, system_lang_code, api_id)."""
        self._files: dict[int, _File] = {}
        self._invites: dict[str, tuple[_ChatState | _ChannelState, bool]] = {}
        """Invite hash -> (the chat it opens, whether joining needs an admin's approval)."""
        self.file_requests: list[tuple[int, int, int]] = []
        """(file id, offset, limit) of every upload.getFile answered with bytes."""
        self._init_login()

        # Account box: pts and seq of the account, and the account-wide message id counter.
        self.pts = 1
        self.seq = 1
        self._next_account_id = account_message_id_start
        self._account_events: list[_Event] = []
        self._account_event_pts: list[int] = []

        self._users: dict[int, _UserState] = {}
        self._chats: dict[int, _ChatState] = {}
        self._channels: dict[int, _ChannelState] = {}
        self._by_marked: dict[int, _PeerState] = {}
        self._usernames: dict[str, _PeerState] = {}
        self._next_user_id = 1_000_001
        self._next_chat_id = 100_001
        self._next_grouped_id = 13_000_000_000_000_000
        self._next_channel_id = 1_000_000_001

        self._links: list[Link] = []
        self._authorized_keys: set[bytes] = set()
        # Keys whose session died: the RPC error every request gets (AUTH_KEY_DUPLICATED, revoked, ...).
        self._dead_keys: dict[bytes, tuple[int, str]] = {}
        # Keys the server forgot: every message on them gets the transport error -404.
        self._unknown_keys: set[bytes] = set()
        self._online = True
        self._refuse = 0
        self._server_msg_ids = itertools.count(1)

        self._handlers = self._handler_table()

        self.me: Any = self._new_user(me_first_name, username=me_username, is_self=True, phone="15550000000")
        self.default_user: Any = self.add_user("Alice")
        """Who writes in groups when `post` is given no sender."""

    def _handler_table(self) -> dict[type[Any], Callable[[Link, Any], Any]]:
        """Which handler answers which TL function (anything else is an UnsupportedRequestError)."""
        return {
            functions.PingRequest: self._h_ping,
            functions.PingDelayDisconnectRequest: self._h_ping,
            functions.help.GetConfigRequest: self._h_get_config,
            functions.help.GetNearestDcRequest: self._h_get_nearest_dc,
            functions.account.UpdateStatusRequest: self._h_true,
            functions.users.GetUsersRequest: self._h_get_users,
            functions.users.GetFullUserRequest: self._h_get_full_user,
            functions.updates.GetStateRequest: self._h_get_state,
            functions.updates.GetDifferenceRequest: self._h_get_difference,
            functions.updates.GetChannelDifferenceRequest: self._h_get_channel_difference,
            functions.messages.GetHistoryRequest: self._h_get_history,
            functions.messages.GetMessagesRequest: self._h_get_messages,
            functions.messages.GetDialogsRequest: self._h_get_dialogs,
            functions.messages.GetChatsRequest: self._h_get_chats,
            functions.messages.GetFullChatRequest: self._h_get_full_chat,
            functions.messages.ReadHistoryRequest: self._h_read_history,
            functions.channels.GetMessagesRequest: self._h_get_channel_messages,
            functions.channels.GetChannelsRequest: self._h_get_channels,
            functions.channels.GetFullChannelRequest: self._h_get_full_channel,
            functions.channels.ReadHistoryRequest: self._h_true,
            functions.channels.JoinChannelRequest: self._h_join_channel,
            functions.messages.GetForumTopicsRequest: self._h_get_forum_topics,
            functions.upload.GetFileRequest: self._h_get_file,
            functions.messages.CheckChatInviteRequest: self._h_check_chat_invite,
            functions.messages.ImportChatInviteRequest: self._h_import_chat_invite,
            functions.account.InitTakeoutSessionRequest: self._h_init_takeout,
            functions.account.FinishTakeoutSessionRequest: self._h_finish_takeout,
            functions.contacts.ResolveUsernameRequest: self._h_resolve_username,
            functions.auth.SendCodeRequest: self._h_send_code,
            functions.auth.SignInRequest: self._h_sign_in,
            functions.account.GetPasswordRequest: self._h_get_password,
            functions.auth.CheckPasswordRequest: self._h_check_password,
            functions.auth.LogOutRequest: self._h_log_out,
        }

    # region World building

    def add_user(
        self,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        bot: bool = False,
        phone: str | None = None,
    ) -> Any:
        """Create another Telegram user; returns its TL `User` (with access hash)."""
        return self._new_user(first_name, last_name=last_name, username=username, bot=bot, phone=phone)

    def add_channel(
        self,
        title: str,
        username: str | None = None,
        megagroup: bool = False,
        *,
        members: Sequence[Any] | None = None,
        date: datetime | None = None,
        joined: bool = True,
        about: str = "",
        join_request: bool = False,
        forum: bool = False,
    ) -> Any:
        """Create a broadcast channel (or a supergroup with `megagroup=True`), by default one the account is in.

        Like on Telegram, message 1 is the MessageActionChannelCreate service message. It is dated
        `date`, by default a year ago, so that histories built afterwards keep dates rising with ids.

        joined=False: the account is not a member. The Channel has ``left=True``, is not among the
        dialogs and sends the account no updates; its history is readable only if it has a
        `username` (public), otherwise CHANNEL_PRIVATE. channels.JoinChannel joins it.

        about: the description channels.GetFullChannel returns. join_request=True: joining needs an
        admin's approval (``Channel.join_request``): channels.JoinChannel files a request and answers
        INVITE_REQUEST_SENT, and the account stays outside (`approve_join` lets it in).

        forum=True (supergroups only): a forum (``Channel.forum``) with its General topic, id 1, as on Telegram;
        `add_topic` opens more, `post(..., topic=id)` posts into one.
        """
        if forum and not megagroup:
            raise TypeError("only supergroups can be forums")
        date = date or self._now() - _DEFAULT_AGE
        st = self._new_channel(title, username=username, megagroup=megagroup, members=members, date=date, joined=joined)
        st.about = about
        st.tl.join_request = join_request or None
        if forum:
            st.tl.forum = True
            st.topics[1] = _Topic(1, "General", date, self.default_user.id)
        creator = None if not megagroup else types.PeerUser(self.default_user.id)
        self._append(
            st,
            types.MessageService(
                id=self._take_id(st),
                peer_id=types.PeerChannel(st.tl.id),
                date=st.tl.date,
                action=types.MessageActionChannelCreate(title=title),
                from_id=creator,
                post=not megagroup or None,
            ),
            push=True,
        )
        return st.tl

    def add_chat(self, title: str, *, members: Sequence[Any] | None = None, date: datetime | None = None) -> Any:
        """Create a basic group with the account, ``default_user`` and `members` in it.

        Message ids come from the account-wide counter; the first is MessageActionChatCreate, dated
        `date` (by default a year ago).
        """
        date = date or self._now() - _DEFAULT_AGE
        member_ids = [self.me.id, self.default_user.id] + [
            u.id for u in members or () if u.id not in (self.me.id, self.default_user.id)
        ]
        chat_id = self._next_chat_id
        self._next_chat_id += 1
        tl = types.Chat(
            id=chat_id,
            title=title,
            photo=types.ChatPhotoEmpty(),
            participants_count=len(member_ids),
            date=date,
            version=1,
        )
        st = _ChatState(tl=tl, members=member_ids)
        self._chats[chat_id] = st
        self._by_marked[st.marked] = st
        self._append(
            st,
            types.MessageService(
                id=self._take_id(st),
                peer_id=types.PeerChat(chat_id),
                date=date,
                action=types.MessageActionChatCreate(title=title, users=member_ids),
                from_id=types.PeerUser(self.default_user.id),
            ),
            push=True,
        )
        return tl

    def post(
        self,
        peer: PeerLike,
        text: str = "",
        *,
        sender: Any = None,
        date: datetime | None = None,
        push: bool = True,
        **fields: Any,
    ) -> Any:
        """Create a message in `peer` (and push the live update to connected clients unless `push=False`).

        sender: a TL User (or Channel, for anonymous admins); default: nobody for broadcast channel
            posts, ``default_user`` in groups, the other party in a private chat.
        fields: any other TL Message field: entities, media, reply_to (an int becomes a
            MessageReplyHeader), fwd_from, grouped_id, views, forwards, post_author, via_bot_id,
            edit_date, silent, ...
        Returns the world's Message (treat it as read-only; change it with `edit`).
        """
        st = self._state(peer)
        msg = self._build_message(st, text, sender=sender, date=date or self._now(), fields=fields)
        self._append(st, msg, push=push)
        self._auto_forward(st, [msg], push=push)
        return msg

    def post_many(
        self,
        peer: PeerLike,
        n: int,
        *,
        text: str | Callable[[int], str] = "message {i}",
        sender: Any = None,
        start_date: datetime | None = None,
        step: timedelta = timedelta(seconds=1),
        **fields: Any,
    ) -> list[Any]:
        """Create `n` messages quickly, pushing no updates (for building long histories).

        Dates rise by `step` from `start_date`. By default the last one is "now"; if that would date
        the first one before the chat's newest message, the dates are squeezed in between instead
        (ids and dates rise together on Telegram, and offset_date paging relies on it). The pts still
        advances per message, as on Telegram, so a client that already tracks the chat sees a gap at
        the next live update. `text` is a format string with ``{i}`` (0-based) or a callable.
        """
        st = self._state(peer)
        if start_date is None:
            now = self._now()
            start_date = now - step * max(n - 1, 0)
            top = st.history.top()
            if top is not None and start_date < top.date:
                start_date, step = top.date, (now - top.date) / max(n, 1)
        out = []
        for i in range(n):
            body = text(i) if callable(text) else text.format(i=i)
            date = (start_date + step * i).replace(microsecond=0)
            msg = self._build_message(st, body, sender=sender, date=date, fields=dict(fields))
            self._append(st, msg, push=False)
            self._auto_forward(st, [msg], push=False)
            out.append(msg)
        return out

    def post_album(
        self,
        peer: PeerLike,
        media: Sequence[Any],
        *,
        caption: str = "",
        sender: Any = None,
        grouped_id: int | None = None,
        push: bool = True,
        **fields: Any,
    ) -> list[Any]:
        """Post an album: one message per item of `media` (from `add_file`), all sharing one `grouped_id`,
        the caption on the first, consecutive ids, and (as Telegram sends an album) one Updates for all."""
        st = self._state(peer)
        if grouped_id is None:
            self._next_grouped_id += 1
            grouped_id = self._next_grouped_id
        date = self._now()
        out, updates = [], []
        for i, item in enumerate(media):
            body = caption if i == 0 else ""
            msg = self._build_message(
                st, body, sender=sender, date=date, fields={**fields, "media": item, "grouped_id": grouped_id}
            )
            st.history.add(msg)
            pts = self._record(st, "new", (msg.id,), 1, msg.date)
            if isinstance(st, _ChannelState):
                updates.append(types.UpdateNewChannelMessage(message=msg, pts=pts, pts_count=1))
            else:
                updates.append(types.UpdateNewMessage(message=msg, pts=pts, pts_count=1))
            out.append(msg)
        if push and updates:
            seq = 0
            if not isinstance(st, _ChannelState):
                self.seq += 1
                seq = self.seq
            self._push(st, updates, date, seq=seq, messages=out)
        self._auto_forward(st, out, push=push)
        return out

    # --- forum topics and channel comments ------------------------------------------------------------------

    def add_topic(self, group: PeerLike, title: str, *, push: bool = True) -> int:
        """Open a topic in a forum supergroup, as Telegram does: a MessageActionTopicCreate service message
        whose id becomes the topic's id. Returns the id."""
        st = self._forum(group)
        msg = types.MessageService(
            id=self._take_id(st),
            peer_id=types.PeerChannel(st.tl.id),
            date=self._now(),
            action=types.MessageActionTopicCreate(title=title, icon_color=0x6FB9F0),
            from_id=types.PeerUser(self.default_user.id),
        )
        st.topics[msg.id] = _Topic(msg.id, title, msg.date, self.default_user.id)
        self._append(st, msg, push=push)
        return int(msg.id)

    def rename_topic(self, group: PeerLike, topic_id: int, title: str, *, push: bool = True) -> Any:
        """Rename a topic: a MessageActionTopicEdit service message inside the topic, and the new title in
        messages.getForumTopics. Returns the service message."""
        st = self._forum(group)
        st.topics[topic_id].title = title
        msg = types.MessageService(
            id=self._take_id(st),
            peer_id=types.PeerChannel(st.tl.id),
            date=self._now(),
            action=types.MessageActionTopicEdit(title=title),
            from_id=types.PeerUser(self.default_user.id),
            reply_to=self._topic_header(topic_id),
        )
        self._append(st, msg, push=push)
        return msg

    def comment(
        self,
        channel: PeerLike,
        post_id: int,
        text: str,
        *,
        sender: Any = None,
        reply_to: int | None = None,
        push: bool = True,
    ) -> Any:
        """Comment on a channel post: a message in the channel's discussion group replying to the post's
        automatic forward there (or, with `reply_to`, to another comment of the thread, the forward as
        ``reply_to_top_id``), as Telegram threads comments."""
        ch = self._state(channel)
        if not isinstance(ch, _ChannelState) or ch.linked is None:
            raise TypeError("comments need a channel with a discussion group (link_discussion)")
        group = ch.linked
        top = group.auto_forwards[post_id]
        header = types.MessageReplyHeader(
            reply_to_msg_id=reply_to or top, reply_to_top_id=top if reply_to is not None else None
        )
        msg = self._build_message(group, text, sender=sender, date=self._now(), fields={"reply_to": header})
        self._append(group, msg, push=push)
        post = ch.history.msgs[post_id]
        if post.replies is not None:
            post.replies.replies += 1
            post.replies.max_id = msg.id
        return msg

    def _forum(self, group: PeerLike) -> _ChannelState:
        st = self._state(group)
        if not isinstance(st, _ChannelState) or not st.tl.forum:
            raise TypeError("topics live in forum supergroups: add_channel(..., megagroup=True, forum=True)")
        return st

    @staticmethod
    def _topic_header(topic_id: int, reply_to: int | None = None) -> Any:
        """The reply header of a message in a topic: the topic's id as what it replies to (or as its top when
        it replies to a message of the topic)."""
        if reply_to is None:
            return types.MessageReplyHeader(forum_topic=True, reply_to_msg_id=topic_id)
        return types.MessageReplyHeader(forum_topic=True, reply_to_msg_id=reply_to, reply_to_top_id=topic_id)

    def _auto_forward(self, st: _PeerState, posts: Sequence[Any], *, push: bool) -> None:
        """Telegram copies each post of a channel with a discussion group into the group, as a forward from
        the channel (``saved_from_peer`` / ``saved_from_msg_id`` naming the post), and the post counts its
        comments (``replies`` with ``comments``, the group's id)."""
        if not isinstance(st, _ChannelState) or not st.tl.broadcast or st.linked is None:
            return
        group = st.linked
        for post in posts:
            if not isinstance(post, types.Message):
                continue
            channel = types.PeerChannel(st.tl.id)
            header = types.MessageFwdHeader(
                date=post.date,
                from_id=channel,
                channel_post=post.id,
                saved_from_peer=channel,
                saved_from_msg_id=post.id,
            )
            copy = types.Message(
                id=self._take_id(group),
                peer_id=types.PeerChannel(group.tl.id),
                date=post.date,
                message=post.message,
                from_id=channel,
                fwd_from=header,
                media=post.media,
                grouped_id=post.grouped_id,
                entities=post.entities,
            )
            self._append(group, copy, push=push)
            group.auto_forwards[post.id] = copy.id
            post.replies = types.MessageReplies(replies=0, replies_pts=group.pts, comments=True, channel_id=group.tl.id)

    def burst(self, peer: PeerLike, n: int, *, text: str = "burst {i}", **fields: Any) -> list[Any]:
        """Post `n` messages within one second, each pushed live (stress for ordering and batching)."""
        date = self._now()
        return [self.post(peer, text.format(i=i), date=date, **fields) for i in range(n)]

    def edit(
        self,
        peer: PeerLike,
        msg_id: int,
        text: str | None = None,
        *,
        date: datetime | None = None,
        push: bool = True,
        **fields: Any,
    ) -> Any:
        """Edit a message (text and/or other fields); sets ``edit_date`` and pushes the edit update."""
        st = self._state(peer)
        msg = st.history.msgs.get(msg_id)
        if not isinstance(msg, types.Message):
            raise KeyError(f"no editable message {msg_id} in {st.marked}")
        if text is not None:
            msg.message = text
        for name, value in fields.items():
            if not hasattr(msg, name):
                raise TypeError(f"Message has no field {name!r}")
            setattr(msg, name, value)
        msg.edit_date = date or self._now()
        pts = self._record(st, "edit", (msg_id,), 1, msg.edit_date)
        if push:
            if isinstance(st, _ChannelState):
                update: Any = types.UpdateEditChannelMessage(message=msg, pts=pts, pts_count=1)
                self._push(st, [update], msg.edit_date, seq=0, messages=[msg])
            else:
                self.seq += 1
                update = types.UpdateEditMessage(message=msg, pts=pts, pts_count=1)
                self._push(st, [update], msg.edit_date, seq=self.seq, messages=[msg])
        return msg

    def react(
        self,
        peer: PeerLike,
        msg_id: int,
        reactions: Mapping[str, int],
        *,
        push: bool = True,
        bump_edit_date: bool = False,
        date: datetime | None = None,
    ) -> Any:
        """Set a message's reactions to `reactions` (emoji -> count) and push updateMessageReactions.

        The mapping replaces what was there: an emoji left out or with count 0 has no reaction, an
        empty mapping clears them all. Like Telegram, a reaction change takes no pts step and is not in
        the update log, so getDifference / getChannelDifference never report it: a client that was
        away sees it only by reading the message again. The push goes to connected sessions that
        receive the chat's updates (not for unjoined or revoked channels), through the same path as
        every push, so ``faults.drop_updates`` loses it too.

        bump_edit_date: also set ``edit_date`` (to `date`, default now) with ``edit_hide``, as
            Telegram often does on a reaction change, again without a pts step or an edit update.
        Returns the world's Message.
        """
        st = self._state(peer)
        msg = st.history.msgs.get(msg_id)
        if not isinstance(msg, types.Message):
            raise KeyError(f"no message {msg_id} to react to in {st.marked}")
        counts = _reaction_counts(reactions)
        msg.reactions = _message_reactions(counts)
        now = date or self._now()
        if bump_edit_date:
            msg.edit_date = now
            msg.edit_hide = True
        if push:
            # A fresh object for the update: without roundtrip clients would otherwise share the stored one.
            update = types.UpdateMessageReactions(
                peer=self._peer_tl(st), msg_id=msg_id, reactions=_message_reactions(counts)
            )
            self._push(st, [update], now, seq=0, messages=[])
        return msg

    def delete(self, peer: PeerLike, ids: Iterable[int], *, push: bool = True) -> list[int]:
        """Delete messages (missing ids are ignored); returns the ids actually deleted."""
        st = self._state(peer)
        gone = [i for i in dict.fromkeys(ids) if st.history.remove(i)]
        if not gone:
            return []
        date = self._now()
        pts = self._record(st, "delete", tuple(gone), len(gone), date)
        if push:
            if isinstance(st, _ChannelState):
                upd: Any = types.UpdateDeleteChannelMessages(
                    channel_id=st.tl.id, messages=gone, pts=pts, pts_count=len(gone)
                )
                self._push(st, [upd], date, seq=0, messages=[])
            else:
                # Telegram sends account-box deletions as updateShort.
                short = types.UpdateShort(
                    update=types.UpdateDeleteMessages(messages=gone, pts=pts, pts_count=len(gone)), date=date
                )
                self._deliver_update(st, short)
        return gone

    def migrate(self, chat: PeerLike, *, push: bool = True) -> Any:
        """Upgrade a basic group to a supergroup; returns the new TL Channel.

        The chat gets ``migrated_to`` and ``deactivated``, and a MessageActionChatMigrateTo service
        message; the new channel starts its own ids with a MessageActionChannelMigrateFrom at id 1.
        """
        old = self._state(chat)
        if not isinstance(old, _ChatState) or old.migrated_to is not None:
            raise ValueError("only a basic group that has not migrated yet can migrate")
        date = self._now()
        new = self._new_channel(
            old.tl.title, username=None, megagroup=True, members=None, date=date, member_ids=old.members
        )
        me = types.PeerUser(self.me.id)
        migrate_to = types.MessageService(
            id=self._take_id(old),
            peer_id=types.PeerChat(old.tl.id),
            date=date,
            action=types.MessageActionChatMigrateTo(channel_id=new.tl.id),
            from_id=me,
            out=True,
        )
        old.tl.migrated_to = types.InputChannel(new.tl.id, new.tl.access_hash)
        old.tl.deactivated = True
        old.migrated_to = new
        new.migrated_from = old
        new.migrated_from_max_id = migrate_to.id
        self._append(old, migrate_to, push=push)
        migrate_from = types.MessageService(
            id=self._take_id(new),
            peer_id=types.PeerChannel(new.tl.id),
            date=date,
            action=types.MessageActionChannelMigrateFrom(title=old.tl.title, chat_id=old.tl.id),
            from_id=me,
            out=True,
        )
        self._append(new, migrate_from, push=push)
        return new.tl

    def revoke_access(self, peer: PeerLike) -> None:
        """The account loses access (kicked / channel went private): later requests raise.

        Channels answer CHANNEL_PRIVATE (ChannelPrivateError), appear as ChannelForbidden, leave the
        dialog list and stop sending updates. Basic groups answer PEER_ID_INVALID and appear as
        ChatForbidden.
        """
        st = self._state(peer)
        if isinstance(st, _UserState):
            raise TypeError("revoke_access applies to chats and channels")
        st.revoked = True
        if isinstance(st, _ChannelState):
            # Telegram tells connected sessions with updateChannel carrying the forbidden channel.
            update = types.Updates(
                updates=[types.UpdateChannel(channel_id=st.tl.id)],
                users=[],
                chats=[self._channel_tl(st)],
                date=self._now(),
                seq=0,
            )
            self._deliver_update(st, update, even_if_revoked=True)

    def push_channel_too_long(self, channel: PeerLike) -> None:
        """Push updateChannelTooLong: "there are updates in this channel you have not seen, ask for them".

        Telethon asks updates.getChannelDifference from the pts it holds for the channel (and drops
        the update if it holds none); more than `channel_difference_limit` behind, it gets
        ChannelDifferenceTooLong.
        """
        st = self._state(channel)
        if not isinstance(st, _ChannelState):
            raise TypeError("push_channel_too_long applies to channels and supergroups")
        update = types.Updates(
            updates=[types.UpdateChannelTooLong(channel_id=st.tl.id, pts=st.pts)],
            users=[],
            chats=[self._channel_tl(st)],
            date=self._now(),
            seq=0,
        )
        self._deliver_update(st, update)

    def add_file(
        self,
        data: bytes,
        *,
        photo: bool = False,
        mime_type: str = "application/octet-stream",
        file_name: str | None = None,
        attributes: Sequence[Any] = (),
        dc_id: int | None = None,
    ) -> Any:
        """A photo or document holding `data`, as the `media` of a message to `post`.

        Its bytes are served by upload.getFile with Telegram's rules: the location's id, access hash and
        file reference must match (else LOCATION_INVALID / FILE_REFERENCE_EXPIRED), `offset` a multiple of
        4 KB, `limit` a multiple of 4 KB that divides 1 MB, and a part may not cross a 1 MB boundary (else
        OFFSET_INVALID / LIMIT_INVALID). The world holds `data` once and serves parts as slices of it (a
        30 MB file costs 30 MB). `attributes`: more document attributes (a voice note's
        DocumentAttributeAudio(voice=True), a video's DocumentAttributeVideo...). Files live on the
        world's own DC unless `dc_id` names another, where the world (one DC only) answers getFile with
        FILE_MIGRATE_<dc_id>, as a DC answers for a file it does not hold.
        """
        file_id = 5_000_000_000 + len(self._files)
        dc = self.dc_id if dc_id is None else dc_id
        stored = _File(self._access_hash(), f"ref{file_id}".encode(), data, dc_id=dc)
        self._files[file_id] = stored
        date = self._now()
        if photo:
            stored.thumb_sizes = frozenset({"y"})
            # The inline thumbnail first and the full size last, as Telegram lists them; the inline one is
            # in the message itself and getFile does not serve it.
            sizes = [
                types.PhotoStrippedSize(type="i", bytes=b"\x01\x08\x08"),
                types.PhotoSize(type="y", w=1280, h=960, size=len(data)),
            ]
            stored.tl = types.Photo(
                id=file_id,
                access_hash=stored.access_hash,
                file_reference=stored.file_reference,
                date=date,
                sizes=sizes,
                dc_id=dc,
            )
            return types.MessageMediaPhoto(photo=stored.tl)
        attrs = [types.DocumentAttributeFilename(file_name)] if file_name else []
        stored.tl = types.Document(
            id=file_id,
            access_hash=stored.access_hash,
            file_reference=stored.file_reference,
            date=date,
            mime_type=mime_type,
            size=len(data),
            dc_id=dc,
            attributes=[*attrs, *attributes],
        )
        return types.MessageMediaDocument(document=stored.tl)

    def expire_file_reference(self, file_id: int, *, after_parts: int = 0) -> bytes | None:
        """Give a file a new file reference, as Telegram does after a while: the old one then gets
        FILE_REFERENCE_EXPIRED, and messages holding the file carry the new one. Returns the new one.

        after_parts: instead of now, once upload.getFile has served this many more parts of the file (in
            the middle of a download); returns None then.
        """
        stored = self._files[file_id]
        if after_parts:
            stored.expire_after = stored.served + after_parts
            return None
        stored.references += 1
        stored.file_reference = f"ref{file_id}.{stored.references}".encode()
        stored.tl.file_reference = stored.file_reference
        return stored.file_reference

    def invite_link(self, peer: PeerLike, *, request_needed: bool = False) -> str:
        """A new t.me/+… invite link into a basic group, supergroup or channel (private ones included).

        messages.checkChatInvite answers ChatInviteAlready (with the chat) for a member, else a ChatInvite
        preview (title, count, kind; no id); messages.importChatInvite joins (Updates with the chat),
        or answers INVITE_REQUEST_SENT when `request_needed`, USER_ALREADY_PARTICIPANT for a member.
        Unknown hashes answer INVITE_HASH_INVALID.
        """
        st = self._state(peer)
        if isinstance(st, _UserState):
            raise TypeError("invite links open chats and channels")
        invite = f"{self._access_hash():x}"[:16]
        self._invites[invite] = (st, request_needed)
        return f"https://t.me/+{invite}"

    def _is_member(self, st: _ChatState | _ChannelState) -> bool:
        return st.joined if isinstance(st, _ChannelState) else self.me.id in st.members

    def link_discussion(self, channel: PeerLike, group: PeerLike) -> None:
        """Make supergroup `group` the discussion group of broadcast channel `channel` (post comments).

        As on Telegram, both Channels get ``has_link`` and each one's channels.GetFullChannel names the
        other in ``linked_chat_id`` (and carries it among its chats).
        """
        ch, gr = self._state(channel), self._state(group)
        if not (
            isinstance(ch, _ChannelState) and ch.tl.broadcast and isinstance(gr, _ChannelState) and gr.tl.megagroup
        ):
            raise TypeError("link_discussion links a broadcast channel to a supergroup")
        ch.linked, gr.linked = gr, ch
        ch.tl.has_link = gr.tl.has_link = True

    def approve_join(self, channel: PeerLike) -> None:
        """An admin approves the account's pending join request: it becomes a member."""
        st = self._state(channel)
        if not isinstance(st, _ChannelState) or self.me.id not in st.join_requests:
            raise ValueError("the account has no pending join request there")
        st.join_requests.remove(self.me.id)
        self._join(st)

    def is_joined(self, channel: PeerLike) -> bool:
        """Whether the account is a member of `channel` (see ``add_channel(joined=False)``)."""
        st = self._state(channel)
        if not isinstance(st, _ChannelState):
            raise TypeError("is_joined applies to channels and supergroups")
        return st.joined

    def restore_access(self, peer: PeerLike) -> None:
        """Undo `revoke_access`."""
        st = self._state(peer)
        if isinstance(st, _UserState):
            raise TypeError("restore_access applies to chats and channels")
        st.revoked = False

    # endregion

    # region Clients, sessions and the network

    def new_session(self, *, authorized: bool = True) -> StringSession:
        """A StringSession for this world's DC with a fresh auth key, logged in unless told otherwise."""
        session = StringSession()
        session.set_dc(self.dc_id, self.dc_address, self.dc_port)
        session.auth_key = AuthKey(self._fresh_auth_key())
        if authorized:
            self._authorized_keys.add(session.auth_key.key)
        return session

    def client(
        self,
        session: Session | str | None = None,
        *,
        api_id: int = 12345,
        api_hash: str = "0123456789abcdef0123456789abcdef",
        **kwargs: Any,
    ) -> TelegramClient:
        """A real, unconnected TelegramClient wired to this world (``await client.connect()`` next).

        Built as production builds it unless a kwarg says otherwise: ``flood_sleep_threshold=60``
        (Telethon's default), ``receive_updates=True``, ``connection_retries=-1`` (reconnect for ever)
        and ``retry_delay=2``.

        session: None for a new logged-in `StringSession`; a StringSession string or a Session to
            resume one (e.g. ``old_client.session.save()`` after a simulated crash).
        kwargs: passed to TelegramClient (``flood_sleep_threshold``, ``retry_delay``,
            ``connection_retries``, ``sequential_updates``, ``receive_updates``, ...).
        """
        for name, value in _PRODUCTION_CLIENT.items():
            kwargs.setdefault(name, value)
        if session is None:
            session = self.new_session()
        elif isinstance(session, str):
            session = StringSession(session)
        with self.patch_telethon():
            return TelegramClient(session, api_id, api_hash, **kwargs)

    @contextlib.contextmanager
    def patch_telethon(self) -> Iterator[None]:
        """While active, every TelegramClient constructed talks to this world instead of the network.

        The client builds its sender in ``__init__`` from the name ``MTProtoSender`` in
        telethon.client.telegrambaseclient; this swaps that one name, so the client itself passes
        its queues, callbacks and retry settings to the fake sender. Use it around code under test
        that constructs its own client; `client()` uses it too. Not thread-safe (tests are async).
        """
        original = telegrambaseclient.MTProtoSender
        if original is not MTProtoSender:
            raise RuntimeError("telegrambaseclient.MTProtoSender is already patched (nested patch_telethon?)")

        def factory(auth_key: AuthKey | None, **kwargs: Any) -> FakeSender:
            return FakeSender(auth_key, world=self, **kwargs)

        telegrambaseclient.MTProtoSender = factory
        try:
            yield
        finally:
            telegrambaseclient.MTProtoSender = original

    def authorize(self, session: Session) -> None:
        """Log the session's auth key in (a session whose key the world generated is logged out)."""
        self._authorized_keys.add(session.auth_key.key)
        self._dead_keys.pop(session.auth_key.key, None)
        self._unknown_keys.discard(session.auth_key.key)

    def log_out(self, client_or_session: TelegramClient | Session) -> None:
        """Invalidate a session's key: its requests then fail with AUTH_KEY_UNREGISTERED (401)."""
        session = getattr(client_or_session, "session", client_or_session)
        self._authorized_keys.discard(session.auth_key.key)

    def kill_session(
        self, client_or_session: TelegramClient | Session, how: str = "rpc", message: str = "AUTH_KEY_UNREGISTERED"
    ) -> int:
        """End a session as Telegram does, and cut its live connections; returns how many were cut.

        how='rpc': the key is no longer logged in (the user terminated the session, it expired, the
            account was banned, ...). Every request on it gets the RPC error `message` with the code
            Telegram uses for it (`SESSION_DEATH_CODES`: 401, or 406 for AUTH_KEY_DUPLICATED). Telethon
            reconnects by itself, and its requests fail from then on.
        how='transport': the server forgets the key. Connections still open (the key travels only with
            messages), but every message on the key is answered with the transport error -404, which
            Telethon turns into a final disconnection with AuthKeyNotFound; later requests raise
            ConnectionError.
        """
        session = getattr(client_or_session, "session", client_or_session)
        key: bytes = session.auth_key.key
        if how == "rpc":
            if message not in SESSION_DEATH_CODES:
                raise ValueError(
                    f"unknown session-death error {message!r}; expected one of {sorted(SESSION_DEATH_CODES)}"
                )
            self._dead_keys[key] = (SESSION_DEATH_CODES[message], message)
        elif how == "transport":
            self._unknown_keys.add(key)
        else:
            raise ValueError(f"how must be 'rpc' or 'transport', got {how!r}")
        self._authorized_keys.discard(key)
        # Telegram closes the connections of a terminated session at once.
        return self._cut([link for link in self._links if link.auth_key == key])

    def disconnect(self, client: TelegramClient | None = None, *, refuse: int = 0) -> int:
        """Cut the connections of `client` (default: all) as a network failure would.

        The sender notices like the real one notices a dead socket and runs Telethon's reconnect
        (retries, ``retry_delay``, then re-sends unanswered requests and calls get_me). Nothing is
        pushed to a client while it is disconnected. The next `refuse` connection attempts fail.
        Returns how many connections were cut.
        """
        self._refuse += refuse
        return self._cut([link for link in self._links if client is None or link.sender is client._sender])

    def _cut(self, links: list[Link]) -> int:
        for link in links:
            self._links.remove(link)
            link.cut(ConnectionResetError("FakeTelegram cut the connection"))
        return len(links)

    def set_online(self, online: bool) -> None:
        """Take the whole network down (cuts every connection, refuses new ones) or bring it back."""
        self._online = online
        if not online:
            self.disconnect()

    @property
    def connected_links(self) -> int:
        """How many client connections are open right now."""
        return sum(1 for link in self._links if link.alive)

    def is_connected(self, client: TelegramClient) -> bool:
        """Whether `client` has an open connection to the world right now (not just "wants to")."""
        return any(link.alive and link.sender is client._sender for link in self._links)

    @staticmethod
    def forget_flood_waits(client: TelegramClient) -> None:
        """Clear Telethon's client-side memory of flood waits (``client._flood_waited_requests``).

        After a FloodWaitError Telethon refuses the same request type locally until the wait ends in
        real time. Only the fake's own unit tests may call this, to show that very behaviour: emitter
        tests must not, since production has no such switch (code under test must live with
        Telethon's memory, e.g. by waiting on a clock that Telethon's real-time memory agrees with).
        """
        client._flood_waited_requests.clear()

    # endregion

    # region Inspection

    def count(self, request: RequestSpec = None) -> int:
        """How many requests matching `request` the world received (see `RequestSpec`)."""
        return sum(n for key, n in self.request_counts.items() if spec_matches(request, key))

    def reset_counters(self) -> None:
        """Forget request counts and every log (requests, responses, history calls, flood waits, omissions).

        The rate limits' buckets and running waits stay: they are Telegram's state, not a log.
        """
        self.request_counts.clear()
        self.request_log.clear()
        self.response_log.clear()
        self.history_calls.clear()
        self.request_times.clear()
        self.omitted_ids.clear()
        self.transport_errors.clear()
        self._limiter.clear_logs()

    @property
    def flood_waits(self) -> Counter[str]:
        """FLOOD_WAITs the rate limits answered, by request key (scripted ones are in ``faults.fired``)."""
        return self._limiter.flood_waits

    @property
    def sent_during_wait(self) -> Counter[str]:
        """Requests that arrived while their method's announced flood wait still ran, by request key."""
        return self._limiter.sent_during_wait

    def max_requests(self, request: RequestSpec, window: float) -> int:
        """The most requests matching `request` received within any `window` seconds (the fake's clock).

        For asserting "never above the budget", e.g. ``fake.max_requests('messages.GetHistory', 60) <= 60``.
        """
        times = [t for t, key in self.request_times if spec_matches(request, key)]
        best = start = 0
        for end, t in enumerate(times):
            while t - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def messages(self, peer: PeerLike) -> list[Any]:
        """The chat's current messages, ascending by id (the world's own objects)."""
        st = self._state(peer)
        return [st.history.msgs[i] for i in st.history.ids]

    def message_ids(self, peer: PeerLike) -> list[int]:
        """The chat's current message ids, ascending."""
        return list(self._state(peer).history.ids)

    def reactions_of(self, peer: PeerLike, msg_id: int) -> dict[str, int]:
        """The message's current reaction counts, emoji -> count (custom emoji as 'custom:<id>', paid as 'paid')."""
        st = self._state(peer)
        msg = st.history.msgs.get(msg_id)
        if msg is None:
            raise KeyError(f"no message {msg_id} in {st.marked}")
        reactions = getattr(msg, "reactions", None)
        if reactions is None:
            return {}
        return {_reaction_key(r.reaction): r.count for r in reactions.results}

    def peer_id(self, peer: PeerLike) -> int:
        """The marked id Telethon uses for `peer` (user id, -chat id, -(10**12 + channel id))."""
        return self._state(peer).marked

    def pts_of(self, peer: PeerLike | None = None) -> int:
        """The channel's pts, or the account pts (for None, basic groups and private chats)."""
        st = None if peer is None else self._state(peer)
        return st.pts if isinstance(st, _ChannelState) else self.pts

    # endregion

    # region Internals: entities and messages

    def _now(self) -> datetime:
        return self._clock().replace(microsecond=0)

    def _fresh_auth_key(self) -> bytes:
        return self._rng.randbytes(256)

    def _access_hash(self) -> int:
        return self._rng.randrange(1, 2**63)

    def _register_username(self, username: str | None, st: _PeerState) -> None:
        if username is None:
            return
        key = username.lower()
        if key in self._usernames:
            raise ValueError(f"username {username!r} is taken")
        self._usernames[key] = st

    def _new_user(
        self,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        bot: bool = False,
        phone: str | None = None,
        is_self: bool = False,
    ) -> Any:
        user_id = self._next_user_id
        self._next_user_id += 1
        tl = types.User(
            id=user_id,
            is_self=is_self or None,
            bot=bot or None,
            bot_info_version=1 if bot else None,  # the TL schema couples the two flags
            access_hash=self._access_hash(),
            first_name=first_name,
            last_name=last_name,
            username=username,
            phone=phone,
            status=types.UserStatusRecently(),
        )
        st = _UserState(tl=tl)
        self._users[user_id] = st
        self._by_marked[st.marked] = st
        self._register_username(username, st)
        return tl

    def _new_channel(
        self,
        title: str,
        *,
        username: str | None,
        megagroup: bool,
        members: Sequence[Any] | None,
        date: datetime | None,
        member_ids: Sequence[int] | None = None,
        joined: bool = True,
    ) -> _ChannelState:
        ids = list(member_ids or [self.me.id, self.default_user.id])
        ids += [u.id for u in members or () if u.id not in ids]
        if not joined:
            ids = [i for i in ids if i != self.me.id]
        channel_id = self._next_channel_id
        self._next_channel_id += 1
        tl = types.Channel(
            id=channel_id,
            title=title,
            photo=types.ChatPhotoEmpty(),
            date=date or self._now(),
            broadcast=not megagroup or None,
            megagroup=megagroup or None,
            access_hash=self._access_hash(),
            username=username,
            participants_count=len(ids),
            left=not joined or None,
        )
        st = _ChannelState(tl=tl, members=ids, joined=joined)
        self._channels[channel_id] = st
        self._by_marked[st.marked] = st
        self._register_username(username, st)
        return st

    def _state(self, peer: PeerLike) -> _PeerState:
        """Find the world's state for whatever a test passes as a chat."""
        found: _PeerState | None
        if isinstance(peer, str):
            found = self._usernames.get(peer.lstrip("@").lower())
        elif isinstance(peer, int):
            found = self._by_marked.get(peer)
        elif isinstance(peer, types.InputPeerSelf | types.InputUserSelf):
            found = self._users[self.me.id]
        elif isinstance(peer, types.User):
            found = self._users.get(peer.id)
        elif isinstance(peer, types.Chat | types.ChatForbidden):
            found = self._chats.get(peer.id)
        elif isinstance(peer, types.Channel | types.ChannelForbidden):
            found = self._channels.get(peer.id)
        elif hasattr(peer, "user_id"):  # PeerUser, InputPeerUser, InputUser
            found = self._users.get(peer.user_id)
        elif hasattr(peer, "chat_id"):  # PeerChat, InputPeerChat
            found = self._chats.get(peer.chat_id)
        elif hasattr(peer, "channel_id"):  # PeerChannel, InputPeerChannel, InputChannel
            found = self._channels.get(peer.channel_id)
        else:
            raise TypeError(f"cannot tell which chat {peer!r} is")
        if found is None:
            raise KeyError(f"no such chat in this world: {peer!r}")
        return found

    @staticmethod
    def _peer_tl(st: _PeerState) -> Any:
        if isinstance(st, _ChannelState):
            return types.PeerChannel(st.tl.id)
        if isinstance(st, _ChatState):
            return types.PeerChat(st.tl.id)
        return types.PeerUser(st.tl.id)

    def _take_id(self, st: _PeerState) -> int:
        """Next message id: the channel's own counter, or the account-wide one."""
        if isinstance(st, _ChannelState):
            msg_id = st.next_id
            st.next_id += 1
        else:
            msg_id = self._next_account_id
            self._next_account_id += 1
        return msg_id

    def _build_message(self, st: _PeerState, text: str, *, sender: Any, date: datetime, fields: dict[str, Any]) -> Any:
        if isinstance(st, _ChatState) and st.migrated_to is not None:
            raise ValueError("this basic group migrated; post to the supergroup returned by migrate()")
        broadcast = isinstance(st, _ChannelState) and not st.tl.megagroup
        if sender is None and not broadcast:
            sender = st.tl if isinstance(st, _UserState) else self.default_user
        from_id = None
        if sender is not None:
            from_id = types.PeerChannel(sender.id) if isinstance(sender, types.Channel) else types.PeerUser(sender.id)
        reply_to = fields.pop("reply_to", None)
        topic = fields.pop("topic", None)
        if topic is not None and topic != 1:
            # General (id 1) carries no topic header on Telegram: a reader must know it is the default.
            reply_to = self._topic_header(topic, reply_to if isinstance(reply_to, int) else None)
        elif isinstance(reply_to, int):
            reply_to = types.MessageReplyHeader(reply_to_msg_id=reply_to)
        if broadcast:
            # Broadcast posts always carry counters on Telegram.
            fields.setdefault("views", 1)
            fields.setdefault("forwards", 0)
        out = isinstance(sender, types.User) and sender.id == self.me.id
        return types.Message(
            id=self._take_id(st),
            peer_id=self._peer_tl(st),
            date=date,
            message=text,
            out=out or None,
            post=broadcast or None,
            from_id=from_id,
            reply_to=reply_to,
            **fields,
        )

    def _append(self, st: _PeerState, msg: Any, *, push: bool) -> None:
        """Store a new message, advance the pts, and (if asked) push it to connected clients."""
        st.history.add(msg)
        pts = self._record(st, "new", (msg.id,), 1, msg.date)
        if not push:
            return
        if isinstance(st, _ChannelState):
            update = types.UpdateNewChannelMessage(message=msg, pts=pts, pts_count=1)
            self._push(st, [update], msg.date, seq=0, messages=[msg])
            return
        short = self._short_update(st, msg, pts)
        if short is not None:
            self._deliver_update(st, short)
        else:
            self.seq += 1
            update = types.UpdateNewMessage(message=msg, pts=pts, pts_count=1)
            self._push(st, [update], msg.date, seq=self.seq, messages=[msg])

    def _short_update(self, st: _PeerState, msg: Any, pts: int) -> Any | None:
        """The compact form Telegram uses for plain text in basic groups and private chats, if it fits."""
        if not isinstance(msg, types.Message) or not isinstance(msg.from_id, types.PeerUser):
            return None
        if any(
            getattr(msg, name) is not None
            for name in ("media", "grouped_id", "views", "forwards", "post_author", "edit_date", "reply_markup")
        ):
            return None
        common = {
            "id": msg.id,
            "message": msg.message,
            "pts": pts,
            "pts_count": 1,
            "date": msg.date,
            "out": msg.out,
            "mentioned": msg.mentioned,
            "silent": msg.silent,
            "fwd_from": msg.fwd_from,
            "via_bot_id": msg.via_bot_id,
            "reply_to": msg.reply_to,
            "entities": msg.entities,
        }
        if isinstance(st, _ChatState):
            return types.UpdateShortChatMessage(from_id=msg.from_id.user_id, chat_id=st.tl.id, **common)
        if isinstance(st, _UserState) and st.tl.id != self.me.id:
            return types.UpdateShortMessage(user_id=st.tl.id, **common)
        return None

    def _record(self, st: _PeerState, kind: str, ids: tuple[int, ...], pts_count: int, date: datetime) -> int:
        """Advance the pts of the box `st` belongs to by `pts_count`, log the event, return the new pts."""
        if isinstance(st, _ChannelState):
            st.pts += pts_count
            st.events.append(_Event(st.pts, pts_count, kind, st.marked, ids, date))
            st.event_pts.append(st.pts)
            st.last_event_date = date
            return st.pts
        self.pts += pts_count
        self._account_events.append(_Event(self.pts, pts_count, kind, st.marked, ids, date))
        self._account_event_pts.append(self.pts)
        return self.pts

    def _user_tl(self, user_id: int) -> Any | None:
        st = self._users.get(user_id)
        return None if st is None else st.tl

    def _chat_tl(self, st: _ChatState) -> Any:
        return types.ChatForbidden(id=st.tl.id, title=st.tl.title) if st.revoked else st.tl

    def _channel_tl(self, st: _ChannelState) -> Any:
        if not st.revoked:
            return st.tl
        return types.ChannelForbidden(
            id=st.tl.id,
            access_hash=st.tl.access_hash,
            title=st.tl.title,
            broadcast=st.tl.broadcast,
            megagroup=st.tl.megagroup,
        )

    def _entities(self, messages: Iterable[Any], peers: Iterable[_PeerState] = ()) -> tuple[list[Any], list[Any]]:
        """The users and chats a response must carry so the client can resolve every peer it names."""
        user_ids: dict[int, None] = {}
        chat_ids: dict[int, None] = {}
        channel_ids: dict[int, None] = {}

        def add(peer: Any) -> None:
            if isinstance(peer, types.PeerUser):
                user_ids[peer.user_id] = None
            elif isinstance(peer, types.PeerChat):
                chat_ids[peer.chat_id] = None
            elif isinstance(peer, types.PeerChannel):
                channel_ids[peer.channel_id] = None

        for st in peers:
            add(self._peer_tl(st))
        for m in messages:
            if isinstance(m, types.MessageEmpty):
                continue
            add(m.peer_id)
            add(m.from_id)
            if m.fwd_from is not None:
                add(m.fwd_from.from_id)
            if getattr(m, "via_bot_id", None):
                user_ids[m.via_bot_id] = None
            if isinstance(m.reply_to, types.MessageReplyHeader):
                add(m.reply_to.reply_to_peer_id)
            action = getattr(m, "action", None)
            if isinstance(action, types.MessageActionChatCreate | types.MessageActionChatAddUser):
                user_ids.update(dict.fromkeys(action.users))
            elif isinstance(action, types.MessageActionChatMigrateTo):
                channel_ids[action.channel_id] = None
            elif isinstance(action, types.MessageActionChannelMigrateFrom):
                chat_ids[action.chat_id] = None
        users = [self._users[i].tl for i in user_ids if i in self._users]
        chats = [self._chat_tl(self._chats[i]) for i in chat_ids if i in self._chats]
        chats += [self._channel_tl(self._channels[i]) for i in channel_ids if i in self._channels]
        return users, chats

    # endregion

    # region Internals: connections and updates

    def _open_link(self, sender: FakeSender) -> Link:
        """A sender connects. Raises ConnectionRefusedError while the network is down."""
        if not self._online:
            raise ConnectionRefusedError("FakeTelegram is offline")
        if self._refuse > 0:
            self._refuse -= 1
            raise ConnectionRefusedError("FakeTelegram refused the connection")
        link = Link(sender)
        self.connections_opened += 1
        key = link.auth_key
        if (
            self.detect_duplicate_sessions
            and key
            and key not in self._unknown_keys
            and any(other.alive and other.auth_key == key and other.sender is not sender for other in self._links)
        ):
            _log.warning("auth key used by two connections at once: revoking it (AUTH_KEY_DUPLICATED)")
            self._dead_keys[key] = (SESSION_DEATH_CODES["AUTH_KEY_DUPLICATED"], "AUTH_KEY_DUPLICATED")
            self._authorized_keys.discard(key)
        self._links.append(link)
        return link

    def _close_link(self, link: Link) -> None:
        link.close()
        if link in self._links:
            self._links.remove(link)

    def _push(self, st: _PeerState, updates: list[Any], date: datetime, *, seq: int, messages: list[Any]) -> None:
        """Wrap updates in `Updates` with the entities they need, and deliver them."""
        if not self._links:
            return
        users, chats = self._entities(messages, [st])
        self._deliver_update(st, types.Updates(updates=updates, users=users, chats=chats, date=date, seq=seq))

    def _deliver_update(self, st: _PeerState, update: Any, *, even_if_revoked: bool = False) -> None:
        """Send one Updates object to every logged-in connection that wants updates."""
        if getattr(st, "revoked", False) and not even_if_revoked:
            return
        if isinstance(st, _ChannelState) and not st.joined:
            return  # Telegram pushes nothing for channels the account is not in
        data = bytes(update) if self.roundtrip else None
        for link in list(self._links):
            if not (link.alive and link.receives_updates and link.auth_key in self._authorized_keys):
                continue
            if self.faults.should_drop_update():
                _log.info("dropping an update on its way to a client (scripted fault)")
                continue
            obj = BinaryReader(data).tgread_object() if data is not None else update
            link.deliver(TLMessage(next(self._server_msg_ids), 0, obj), self.latency)

    def _transmit(self, link: Link, states: Sequence[Any]) -> None:
        """The sender's packed requests arrive; answer each on the link."""
        if link.auth_key in self._unknown_keys:
            # The server cannot decrypt what it does not have the key for: one transport error for the
            # whole packet, and no request is seen.
            self.transport_errors.append(-_AUTH_KEY_UNKNOWN)
            link.deliver(transport_error(_AUTH_KEY_UNKNOWN), self.latency)
            return
        for state in states:
            if not isinstance(state.request, TLRequest):
                continue  # acks and other service messages need no answer
            try:
                # What the server "receives" is what the client serialised, not the client's object.
                request = BinaryReader(state.data).tgread_object() if self.roundtrip else state.request
            except Exception as e:
                _log.exception("FakeTelegram could not parse a %s", type(state.request).__name__)
                link.deliver(Settle(state.msg_id, error=e), self.latency)
                continue
            self._answer(link, state.msg_id, request)

    def _answer(self, link: Link, msg_id: int, request: Any) -> None:
        """Answer one request on `link` as Telegram would: a result, an rpc_error, or (fake-only) a failure."""
        inner = request
        while isinstance(inner, WRAPPERS):
            if isinstance(inner, functions.InvokeWithoutUpdatesRequest):
                link.receives_updates = False
            if isinstance(inner, functions.InvokeWithTakeoutRequest):
                self.takeout_requests += 1
            if isinstance(inner, functions.InitConnectionRequest):
                self.init_connections.append(inner)
            inner = inner.query
        key = request_key(inner)
        self.request_counts[key] += 1
        self.request_log.append(key)
        self.request_times.append((self.monotonic(), key))
        if self.faults.check_cut(key, inner) and link in self._links:
            _log.info("cutting the connection a %s arrived on (scripted fault)", key)
            self._cut([link])
            return
        handler = self._handlers.get(type(inner))
        if handler is None:
            self.unsupported_requests.append(key)
            _log.error("FakeTelegram does not support %s: %s", key, inner)
            link.deliver(Settle(msg_id, error=UnsupportedRequestError(request, key)), self.latency)
            return
        try:
            result = self._call_handler(link, key, inner, handler)
            reply = self._reply(msg_id, result)
        except _RpcFailure as e:
            self.response_log.append((key, f"rpc_error {e.code} {e.message}"))
            answer = RpcResult(msg_id, None, types.RpcError(e.code, e.message))
            link.deliver(TLMessage(next(self._server_msg_ids), 0, answer), self.latency)
        except Exception as e:
            # A bug in the fake (or an unserialisable answer): hand the exception to the caller so the
            # test shows it, instead of killing the sender's loop and hanging the client.
            _log.exception("FakeTelegram failed while answering %s", key)
            self.response_log.append((key, f"fake failure {type(e).__name__}"))
            link.deliver(Settle(msg_id, error=e), self.latency)
        else:
            self.response_log.append((key, type(result).__name__))
            link.deliver(reply, self.latency)

    def _reply(self, msg_id: int, result: Any) -> Any:
        """What goes on the wire for a result: rpc_result with the body bytes (or a bare Pong)."""
        if isinstance(result, types.Pong):
            # Pong is not wrapped in rpc_result; the real sender matches it by msg_id.
            result.msg_id = msg_id
            return TLMessage(next(self._server_msg_ids), 0, result)
        if self.roundtrip:
            return TLMessage(next(self._server_msg_ids), 0, RpcResult(msg_id, serialize_result(result), None))
        return Settle(msg_id, result=result)

    def _call_handler(self, link: Link, key: str, request: Any, handler: Callable[[Link, Any], Any]) -> Any:
        """Scripted faults and spells first (they hit before anything else), then flood limits, then auth."""
        fault = self.faults.check_request(key, request)
        if fault is not None:
            raise _RpcFailure(fault.error_code, fault.error_message)
        wait = self._limiter.admit(key, self.monotonic())
        if wait is not None:
            raise _RpcFailure(420, f"FLOOD_WAIT_{wait}")
        if key not in _NO_AUTH_NEEDED:
            self._check_auth(link)
        return handler(link, request)

    def _check_auth(self, link: Link) -> None:
        key = link.auth_key
        dead = self._dead_keys.get(key) if key is not None else None
        if dead is not None:
            raise _RpcFailure(*dead)
        if key not in self._authorized_keys:
            raise _RpcFailure(401, "AUTH_KEY_UNREGISTERED")

    # endregion

    # region Internals: resolving input peers

    def _resolve_input_peer(self, peer: Any) -> _PeerState:
        if isinstance(peer, types.InputPeerSelf):
            return self._users[self.me.id]
        if isinstance(peer, types.InputPeerUser):
            user = self._users.get(peer.user_id)
            if user is None or user.tl.access_hash != peer.access_hash:
                raise _RpcFailure(400, "PEER_ID_INVALID")
            return user
        if isinstance(peer, types.InputPeerChat):
            chat = self._chats.get(peer.chat_id)
            if chat is None:
                raise _RpcFailure(400, "PEER_ID_INVALID")
            return chat
        if isinstance(peer, types.InputPeerChannel):
            return self._resolve_input_channel(peer)
        raise _RpcFailure(400, "PEER_ID_INVALID")

    def _resolve_input_channel(self, channel: Any) -> _ChannelState:
        st = self._channels.get(getattr(channel, "channel_id", 0))
        if st is None or st.tl.access_hash != channel.access_hash:
            raise _RpcFailure(400, "CHANNEL_INVALID")
        return st

    def _resolve_input_user(self, user: Any) -> _UserState | None:
        if isinstance(user, types.InputUserSelf | types.InputPeerSelf):
            return self._users[self.me.id]
        st = self._users.get(getattr(user, "user_id", 0))
        if st is None or st.tl.access_hash != user.access_hash:
            return None
        return st

    @staticmethod
    def _check_access(st: _PeerState) -> None:
        if isinstance(st, _ChannelState) and (st.revoked or not (st.joined or st.tl.username)):
            raise _RpcFailure(400, "CHANNEL_PRIVATE")
        if isinstance(st, _ChatState) and st.revoked:
            raise _RpcFailure(400, "PEER_ID_INVALID")

    # endregion

    # region Request handlers (one per supported TL function)

    def _h_ping(self, link: Link, req: Any) -> Any:
        return types.Pong(msg_id=0, ping_id=req.ping_id)

    def _h_true(self, link: Link, req: Any) -> bool:
        return True

    def _h_get_config(self, link: Link, req: Any) -> Any:
        now = self._now()
        return types.Config(
            date=now,
            expires=now + timedelta(hours=1),
            test_mode=False,
            this_dc=self.dc_id,
            dc_options=[
                types.DcOption(id=self.dc_id, ip_address=self.dc_address, port=self.dc_port),
                types.DcOption(id=self.dc_id, ip_address="2001:67c:4e8:f002::a", port=self.dc_port, ipv6=True),
            ],
            dc_txt_domain_name="apv3.stel.com",
            chat_size_max=200,
            megagroup_size_max=200000,
            forwarded_count_max=100,
            online_update_period_ms=210000,
            offline_blur_timeout_ms=5000,
            offline_idle_timeout_ms=30000,
            online_cloud_timeout_ms=300000,
            notify_cloud_delay_ms=30000,
            notify_default_delay_ms=1500,
            push_chat_period_ms=60000,
            push_chat_limit=2,
            edit_time_limit=172800,
            revoke_time_limit=2147483647,
            revoke_pm_time_limit=2147483647,
            rating_e_decay=2419200,
            stickers_recent_limit=200,
            channels_read_media_period=604800,
            call_receive_timeout_ms=20000,
            call_ring_timeout_ms=90000,
            call_connect_timeout_ms=30000,
            call_packet_timeout_ms=10000,
            me_url_prefix="https://t.me/",
            caption_length_max=1024,
            message_length_max=4096,
            webfile_dc_id=4,
        )

    def _h_get_nearest_dc(self, link: Link, req: Any) -> Any:
        return types.NearestDc(country="NL", this_dc=self.dc_id, nearest_dc=self.dc_id)

    def _h_get_users(self, link: Link, req: Any) -> list[Any]:
        # Telegram leaves out users it cannot resolve (wrong access hash) rather than failing.
        found = (self._resolve_input_user(u) for u in req.id)
        return [st.tl for st in found if st is not None]

    def _h_get_full_user(self, link: Link, req: Any) -> Any:
        st = self._resolve_input_user(req.id)
        if st is None:
            raise _RpcFailure(400, "USER_ID_INVALID")
        full = types.UserFull(
            id=st.tl.id,
            settings=types.PeerSettings(),
            notify_settings=types.PeerNotifySettings(),
            common_chats_count=0,
        )
        return types.users.UserFull(full_user=full, chats=[], users=[st.tl])

    def _state_tl(self) -> Any:
        return types.updates.State(pts=self.pts, qts=0, date=self._now(), seq=self.seq, unread_count=0)

    def _h_get_state(self, link: Link, req: Any) -> Any:
        return self._state_tl()

    def _difference_items(
        self, events: Sequence[_Event], channel: _ChannelState | None
    ) -> tuple[list[Any], list[Any], list[Any]]:
        """What a difference over `events` reports: (new messages, other updates, edited messages).

        New messages appear in their current form (already edited, or left out if deleted since);
        edits and deletions of older messages become other_updates with their original pts.
        """
        created = {(ev.peer, i) for ev in events if ev.kind == "new" for i in ev.ids}
        last_edit = {(ev.peer, ev.ids[0]): ev for ev in events if ev.kind == "edit"}
        new_messages: list[Any] = []
        others: list[Any] = []
        edited: list[Any] = []
        for ev in events:
            history = self._by_marked[ev.peer].history
            if ev.kind == "new":
                new_messages.extend(history.msgs[i] for i in ev.ids if i in history.msgs)
            elif ev.kind == "edit":
                key = (ev.peer, ev.ids[0])
                msg = history.msgs.get(ev.ids[0])
                # Only the last edit of a message older than the difference, and only if it still exists.
                if key not in created and msg is not None and last_edit[key] is ev:
                    edited.append(msg)
                    others.append(self._edit_update(msg, ev, channel))
            else:
                ids = [i for i in ev.ids if (ev.peer, i) not in created]
                if ids:
                    others.append(self._delete_update(ids, ev, channel))
        return new_messages, others, edited

    @staticmethod
    def _edit_update(msg: Any, ev: _Event, channel: _ChannelState | None) -> Any:
        if channel is not None:
            return types.UpdateEditChannelMessage(message=msg, pts=ev.pts, pts_count=1)
        return types.UpdateEditMessage(message=msg, pts=ev.pts, pts_count=1)

    @staticmethod
    def _delete_update(ids: list[int], ev: _Event, channel: _ChannelState | None) -> Any:
        if channel is not None:
            return types.UpdateDeleteChannelMessages(
                channel_id=channel.tl.id, messages=ids, pts=ev.pts, pts_count=ev.pts_count
            )
        return types.UpdateDeleteMessages(messages=ids, pts=ev.pts, pts_count=ev.pts_count)

    def _h_get_difference(self, link: Link, req: Any) -> Any:
        now = self._now()
        if req.pts > self.pts or (req.pts_total_limit and self.pts - req.pts > req.pts_total_limit):
            return types.updates.DifferenceTooLong(pts=self.pts)
        events = self._account_events[bisect.bisect_right(self._account_event_pts, req.pts) :]
        sliced = len(events) > self.difference_slice_size
        if sliced:
            events = events[: self.difference_slice_size]
        since = date_or_none(req.date)
        # Channels are not in the account box: Telegram only tells which ones changed since the
        # client's date, and the client asks each for its own difference.
        too_long = (
            []
            if sliced
            else [
                ch
                for ch in self._channels.values()
                if not ch.revoked
                and ch.joined
                and ch.last_event_date is not None
                and (since is None or ch.last_event_date >= since)
            ]
        )
        if not events and not too_long:
            return types.updates.DifferenceEmpty(date=now, seq=self.seq)
        new_messages, others, edited = self._difference_items(events, channel=None)
        others += [types.UpdateChannelTooLong(channel_id=ch.tl.id, pts=ch.pts) for ch in too_long]
        users, chats = self._entities(new_messages + edited, too_long)
        if sliced:
            state = types.updates.State(pts=events[-1].pts, qts=0, date=now, seq=self.seq, unread_count=0)
            return types.updates.DifferenceSlice(
                new_messages=new_messages,
                new_encrypted_messages=[],
                other_updates=others,
                chats=chats,
                users=users,
                intermediate_state=state,
            )
        return types.updates.Difference(
            new_messages=new_messages,
            new_encrypted_messages=[],
            other_updates=others,
            chats=chats,
            users=users,
            state=self._state_tl(),
        )

    def _h_get_channel_difference(self, link: Link, req: Any) -> Any:
        ch = self._resolve_input_channel(req.channel)
        self._check_access(ch)
        if req.pts <= 0:
            raise _RpcFailure(400, "PERSISTENT_TIMESTAMP_EMPTY")
        if req.pts > ch.pts:
            raise _RpcFailure(400, "PERSISTENT_TIMESTAMP_INVALID")
        if req.pts == ch.pts:
            return types.updates.ChannelDifferenceEmpty(pts=ch.pts, final=True)
        limit = min(req.limit if req.limit > 0 else USER_CHANNEL_DIFF_LIMIT, self.channel_difference_limit)
        if req.pts + limit < ch.pts:
            # "The provided pts + limit < remote pts": the client must refetch history itself.
            latest = [ch.history.msgs[i] for i in reversed(ch.history.ids[-min(limit, HISTORY_PAGE_MAX) :])]
            users, chats = self._entities(latest, [ch])
            return types.updates.ChannelDifferenceTooLong(
                dialog=self._dialog(ch), messages=latest, chats=chats, users=users, final=True
            )
        events = ch.events[bisect.bisect_right(ch.event_pts, req.pts) :]
        new_messages, others, edited = self._difference_items(events, channel=ch)
        users, chats = self._entities(new_messages + edited, [ch])
        return types.updates.ChannelDifference(
            pts=ch.pts, new_messages=new_messages, other_updates=others, chats=chats, users=users, final=True
        )

    def _h_get_history(self, link: Link, req: Any) -> Any:
        """messages.getHistory with Telegram's offset arithmetic.

        Newest first. The page starts at the first message older than `offset_id` (exclusive; or,
        without offset_id, sent before `offset_date`; or at the newest), moved by `add_offset`
        (negative: towards newer messages), and holds at most `limit` (<= 100) messages. `min_id`
        and `max_id` are exclusive bounds applied before the offset arithmetic. `count` is the
        chat's total. A page holding the whole history is plain messages.Messages, as on Telegram.
        """
        st = self._resolve_input_peer(req.peer)
        self._check_access(st)
        ids = st.history.ids
        lo = bisect.bisect_right(ids, req.min_id) if req.min_id else 0
        hi = bisect.bisect_left(ids, req.max_id) if req.max_id else len(ids)
        hi = max(hi, lo)
        n = hi - lo
        offset_date = date_or_none(req.offset_date)
        if req.offset_id:
            # Descending position of the first id < offset_id = how many ids in range are >= it.
            pos = hi - max(lo, min(hi, bisect.bisect_left(ids, req.offset_id)))
        elif offset_date is not None:
            pos = 0
            while pos < n and st.history.msgs[ids[hi - 1 - pos]].date >= offset_date:
                pos += 1
        else:
            pos = 0
        limit = max(0, min(req.limit, HISTORY_PAGE_MAX))
        start = max(pos + req.add_offset, 0)
        end = min(pos + req.add_offset + limit, n)
        messages = [st.history.msgs[ids[hi - 1 - i]] for i in range(start, end)]
        total = len(ids)
        self.history_calls.append(
            HistoryCall(
                peer=st.marked,
                offset_id=req.offset_id,
                offset_date=offset_date,
                add_offset=req.add_offset,
                limit=req.limit,
                max_id=req.max_id,
                min_id=req.min_id,
                returned_ids=tuple(m.id for m in messages),
                count=total,
            )
        )
        users, chats = self._entities(messages, [st])
        offset_given = bool(req.offset_id or offset_date)
        if isinstance(st, _ChannelState):
            return types.messages.ChannelMessages(
                pts=st.pts,
                count=total,
                messages=messages,
                topics=[],
                chats=chats,
                users=users,
                offset_id_offset=start if offset_given else None,
            )
        if len(messages) == total:
            return types.messages.Messages(messages=messages, topics=[], chats=chats, users=users)
        return types.messages.MessagesSlice(
            count=total,
            messages=messages,
            topics=[],
            chats=chats,
            users=users,
            offset_id_offset=start if offset_given else None,
        )

    @staticmethod
    def _input_message_id(item: Any) -> int | None:
        if isinstance(item, types.InputMessageID):
            return int(item.id)
        return None

    def _by_ids(self, st_of: Callable[[int], _PeerState | None], items: Sequence[Any], peer: Any) -> list[Any]:
        """Messages for a getMessages call, in the order asked (MessageEmpty or nothing for misses).

        One entry per message returned, not per id asked: an existing message may be left out
        (`omit_fraction`), so a client must match results by id, never by position.
        """
        out = []
        for item in items:
            msg_id = self._input_message_id(item)
            st = None if msg_id is None else st_of(msg_id)
            msg = None if st is None or msg_id is None else st.history.msgs.get(msg_id)
            if msg is not None:
                if self.omit_fraction and self._omit_rng.random() < self.omit_fraction:
                    assert st is not None
                    self.omitted_ids.append((st.marked, msg.id))
                    continue
                out.append(msg)
            elif not self.omit_missing_messages:
                out.append(types.MessageEmpty(id=msg_id or 0, peer_id=peer))
        return out

    def _h_get_channel_messages(self, link: Link, req: Any) -> Any:
        ch = self._resolve_input_channel(req.channel)
        self._check_access(ch)
        if not req.id:
            raise _RpcFailure(400, "MESSAGE_IDS_EMPTY")
        messages = self._by_ids(lambda _id: ch, req.id, types.PeerChannel(ch.tl.id))
        users, chats = self._entities(messages, [ch])
        return types.messages.ChannelMessages(
            pts=ch.pts, count=len(messages), messages=messages, topics=[], chats=chats, users=users
        )

    def _account_owner(self, msg_id: int) -> _PeerState | None:
        """Which basic group or private chat holds account-wide message `msg_id` (visible ones only)."""
        for table in (self._chats, self._users):
            for st in table.values():
                if msg_id in st.history.msgs and not getattr(st, "revoked", False):
                    return st
        return None

    def _h_get_messages(self, link: Link, req: Any) -> Any:
        messages = self._by_ids(self._account_owner, req.id, None)
        users, chats = self._entities(messages)
        return types.messages.Messages(messages=messages, topics=[], chats=chats, users=users)

    def _dialog(self, st: _PeerState) -> Any:
        top = st.history.top()
        top_id = top.id if top is not None else 0
        return types.Dialog(
            peer=self._peer_tl(st),
            top_message=top_id,
            read_inbox_max_id=top_id,
            read_outbox_max_id=top_id,
            unread_count=0,
            unread_mentions_count=0,
            unread_reactions_count=0,
            unread_poll_votes_count=0,
            notify_settings=types.PeerNotifySettings(),
            pts=st.pts if isinstance(st, _ChannelState) else None,
        )

    def _dialog_order(self) -> list[_PeerState]:
        """Dialogs as Telegram lists them: by the date of their top message, newest first."""
        entries: list[_PeerState] = [ch for ch in self._channels.values() if not ch.revoked and ch.joined]
        entries += [c for c in self._chats.values() if not c.revoked]
        entries += [u for u in self._users.values() if len(u.history)]

        def key(st: _PeerState) -> tuple[datetime, int]:
            top = st.history.top()
            return (top.date, top.id) if top is not None else (datetime.min.replace(tzinfo=self._now().tzinfo), 0)

        return sorted(entries, key=key, reverse=True)

    def _h_get_dialogs(self, link: Link, req: Any) -> Any:
        if req.folder_id:  # nothing is archived in this world
            return types.messages.Dialogs(dialogs=[], messages=[], chats=[], users=[])
        order = self._dialog_order()
        start = 0
        offset_date = date_or_none(req.offset_date)
        if req.offset_peer is not None and not isinstance(req.offset_peer, types.InputPeerEmpty):
            anchor = self._resolve_input_peer(req.offset_peer)
            start = next((i + 1 for i, st in enumerate(order) if st is anchor), len(order))
        elif offset_date is not None or req.offset_id:
            bound = (offset_date or datetime.max.replace(tzinfo=self._now().tzinfo), req.offset_id or 2**31)
            start = next(
                (i for i, st in enumerate(order) if (top := st.history.top()) is None or (top.date, top.id) < bound),
                len(order),
            )
        page = order[start : start + max(0, min(req.limit, 100))]
        tops = [top for st in page if (top := st.history.top()) is not None]
        users, chats = self._entities(tops, page)
        dialogs = [self._dialog(st) for st in page]
        if start == 0 and len(page) == len(order):
            return types.messages.Dialogs(dialogs=dialogs, messages=tops, chats=chats, users=users)
        return types.messages.DialogsSlice(count=len(order), dialogs=dialogs, messages=tops, chats=chats, users=users)

    def _h_get_chats(self, link: Link, req: Any) -> Any:
        return types.messages.Chats(chats=[self._chat_tl(self._chats[i]) for i in req.id if i in self._chats])

    def _h_get_full_chat(self, link: Link, req: Any) -> Any:
        st = self._chats.get(req.chat_id)
        if st is None:
            raise _RpcFailure(400, "CHAT_ID_INVALID")
        self._check_access(st)
        creator, *others = st.members
        participants = [types.ChatParticipantCreator(user_id=creator)] + [
            types.ChatParticipant(user_id=u, inviter_id=creator, date=st.tl.date) for u in others
        ]
        full = types.ChatFull(
            id=st.tl.id,
            about="",
            participants=types.ChatParticipants(chat_id=st.tl.id, participants=participants, version=1),
            notify_settings=types.PeerNotifySettings(),
        )
        chats = [st.tl] + ([st.migrated_to.tl] if st.migrated_to is not None else [])
        users = [u for u in (self._user_tl(i) for i in st.members) if u is not None]
        return types.messages.ChatFull(full_chat=full, chats=chats, users=users)

    def _h_get_channels(self, link: Link, req: Any) -> Any:
        return types.messages.Chats(chats=[self._channel_tl(self._resolve_input_channel(c)) for c in req.id])

    def _h_get_full_channel(self, link: Link, req: Any) -> Any:
        ch = self._resolve_input_channel(req.channel)
        self._check_access(ch)
        top = ch.history.top()
        top_id = top.id if top is not None else 0
        full = types.ChannelFull(
            id=ch.tl.id,
            about=ch.about,
            read_inbox_max_id=top_id,
            read_outbox_max_id=top_id,
            unread_count=0,
            chat_photo=types.PhotoEmpty(id=0),
            notify_settings=types.PeerNotifySettings(),
            bot_info=[],
            pts=ch.pts,
            participants_count=len(ch.members),
            can_view_participants=bool(ch.tl.megagroup) or None,
            migrated_from_chat_id=ch.migrated_from.tl.id if ch.migrated_from is not None else None,
            migrated_from_max_id=ch.migrated_from_max_id,
            linked_chat_id=ch.linked.tl.id if ch.linked is not None else None,
        )
        chats = [ch.tl] + ([ch.migrated_from.tl] if ch.migrated_from is not None else [])
        chats += [self._channel_tl(ch.linked)] if ch.linked is not None else []
        return types.messages.ChatFull(full_chat=full, chats=chats, users=[])

    def _h_get_forum_topics(self, link: Link, req: Any) -> Any:
        """messages.getForumTopics as Telegram answers it: CHANNEL_FORUM_MISSING outside forums; topics by
        their last activity, newest first, paged by (offset_date, offset_id, offset_topic), at most 100 a page
        whatever `limit` asks; `q` filters titles; the topics' last messages and their peers come along."""
        st = self._resolve_input_peer(req.peer)
        self._check_access(st)
        if not isinstance(st, _ChannelState) or not st.tl.forum:
            raise _RpcFailure(400, "CHANNEL_FORUM_MISSING")
        last = {t: t for t in st.topics}
        for msg in st.history.msgs.values():
            header = getattr(msg, "reply_to", None)
            if getattr(header, "forum_topic", None):
                topic = header.reply_to_top_id or header.reply_to_msg_id
                last[topic] = max(last.get(topic, 0), msg.id)
            elif msg.id not in st.topics:
                last[1] = max(last[1], msg.id) if 1 in last else msg.id
        ordered = sorted(
            (t for t in st.topics.values() if not req.q or req.q.lower() in t.title.lower()),
            key=lambda t: last[t.id],
            reverse=True,
        )
        count = len(ordered)
        if req.offset_topic:
            ids = [t.id for t in ordered]
            ordered = ordered[ids.index(req.offset_topic) + 1 :] if req.offset_topic in ids else []
        page = ordered[: max(0, min(req.limit or 100, 100))]
        tops = {last[t.id]: st.history.msgs[last[t.id]] for t in page if last[t.id] in st.history.msgs}
        topics = [
            types.ForumTopic(
                id=t.id,
                date=t.date,
                peer=types.PeerChannel(st.tl.id),
                title=t.title,
                icon_color=t.icon_color,
                top_message=last[t.id],
                read_inbox_max_id=last[t.id],
                read_outbox_max_id=last[t.id],
                unread_count=0,
                unread_mentions_count=0,
                unread_reactions_count=0,
                unread_poll_votes_count=0,
                from_id=types.PeerUser(t.creator),
                notify_settings=types.PeerNotifySettings(),
            )
            for t in page
        ]
        messages = list(tops.values())
        users, chats = self._entities(messages, [st])
        return types.messages.ForumTopics(
            count=count,
            topics=topics,
            messages=messages,
            chats=chats,
            users=users,
            pts=st.pts,
        )

    def _h_read_history(self, link: Link, req: Any) -> Any:
        return types.messages.AffectedMessages(pts=self.pts, pts_count=0)

    def _h_init_takeout(self, link: Link, req: Any) -> Any:
        """account.initTakeoutSession: a takeout id, or TAKEOUT_INIT_DELAY while the user has not confirmed."""
        if self.takeout_delay:
            raise _RpcFailure(420, f"TAKEOUT_INIT_DELAY_{int(self.takeout_delay)}")
        self.takeouts += 1
        return types.account.Takeout(id=self.takeouts)

    def _h_finish_takeout(self, link: Link, req: Any) -> bool:
        self.takeouts_finished += 1
        return True

    def _h_join_channel(self, link: Link, req: Any) -> Any:
        """channels.joinChannel: public channels only (private ones need an invite), answered with Updates."""
        ch = self._resolve_input_channel(req.channel)
        self._check_access(ch)
        if ch.joined:
            raise _RpcFailure(400, "USER_ALREADY_PARTICIPANT")
        if ch.tl.join_request:
            if self.me.id not in ch.join_requests:
                ch.join_requests.append(self.me.id)
            raise _RpcFailure(400, "INVITE_REQUEST_SENT")
        return self._join(ch)

    def _join(self, ch: _ChannelState) -> Any:
        ch.joined = True
        ch.tl.left = None
        ch.members.append(self.me.id)
        ch.tl.participants_count = len(ch.members)
        return types.Updates(
            updates=[types.UpdateChannel(channel_id=ch.tl.id)], users=[], chats=[ch.tl], date=self._now(), seq=0
        )

    def _h_get_file(self, link: Link, req: Any) -> Any:
        """upload.getFile: a part of a photo's or document's bytes, with Telegram's alignment rules."""
        location = req.location
        stored = self._files.get(int(getattr(location, "id", 0) or 0))
        thumb = getattr(location, "thumb_size", "")
        if (
            not isinstance(location, types.InputDocumentFileLocation | types.InputPhotoFileLocation)
            or stored is None
            or location.access_hash != stored.access_hash
            or (isinstance(location, types.InputPhotoFileLocation) and thumb not in stored.thumb_sizes)
        ):
            raise _RpcFailure(400, "LOCATION_INVALID")
        if stored.dc_id != self.dc_id:
            raise _RpcFailure(303, f"FILE_MIGRATE_{stored.dc_id}")
        if location.file_reference != stored.file_reference:
            raise _RpcFailure(400, "FILE_REFERENCE_EXPIRED")
        if req.offset < 0 or req.offset % _FILE_PART_ALIGN:
            raise _RpcFailure(400, "OFFSET_INVALID")
        crosses = req.offset // _FILE_PART_MAX != (req.offset + req.limit - 1) // _FILE_PART_MAX
        if req.limit <= 0 or req.limit % _FILE_PART_ALIGN or _FILE_PART_MAX % req.limit or crosses:
            raise _RpcFailure(400, "LIMIT_INVALID")
        self.file_requests.append((location.id, req.offset, req.limit))
        part = stored.data[req.offset : req.offset + req.limit]
        stored.served += 1
        if stored.expire_after is not None and stored.served >= stored.expire_after:
            stored.expire_after = None
            self.expire_file_reference(location.id)
        return types.upload.File(type=types.storage.FileUnknown(), mtime=0, bytes=part)

    def _invite(self, invite: str) -> tuple[_ChatState | _ChannelState, bool]:
        found = self._invites.get(invite)
        if found is None:
            raise _RpcFailure(400, "INVITE_HASH_INVALID")
        return found

    def _h_check_chat_invite(self, link: Link, req: Any) -> Any:
        st, request_needed = self._invite(req.hash)
        if self._is_member(st):
            return types.ChatInviteAlready(chat=self._channel_tl(st) if isinstance(st, _ChannelState) else st.tl)
        channel = isinstance(st, _ChannelState)
        return types.ChatInvite(
            title=st.tl.title,
            photo=types.PhotoEmpty(id=0),
            participants_count=len(st.members),
            color=0,
            channel=channel or None,
            broadcast=(channel and bool(st.tl.broadcast)) or None,
            megagroup=(channel and bool(st.tl.megagroup)) or None,
            public=bool(getattr(st.tl, "username", None)) or None,
            request_needed=request_needed or None,
        )

    def _h_import_chat_invite(self, link: Link, req: Any) -> Any:
        st, request_needed = self._invite(req.hash)
        if self._is_member(st):
            raise _RpcFailure(400, "USER_ALREADY_PARTICIPANT")
        if request_needed:
            if isinstance(st, _ChannelState) and self.me.id not in st.join_requests:
                st.join_requests.append(self.me.id)
            raise _RpcFailure(400, "INVITE_REQUEST_SENT")
        if isinstance(st, _ChannelState):
            return self._join(st)
        st.members.append(self.me.id)
        st.tl.participants_count = len(st.members)
        return types.Updates(updates=[], users=[], chats=[st.tl], date=self._now(), seq=0)

    def _h_resolve_username(self, link: Link, req: Any) -> Any:
        st = self._usernames.get(req.username.lstrip("@").lower())
        if st is None:
            raise _RpcFailure(400, "USERNAME_NOT_OCCUPIED")
        users, chats = self._entities((), [st])
        return types.contacts.ResolvedPeer(peer=self._peer_tl(st), chats=chats, users=users)

    # endregion

    # region Login: auth.sendCode, auth.signIn, two-step verification (SRP), auth.logOut

    def _init_login(self) -> None:
        self.login_codes: list[str] = []
        """Every login code sent (what arrives in the account's other apps), newest last."""
        self._sent_codes: dict[str, login.SentCode] = {}
        self._password: login.SrpPassword | None = None
        self._awaiting_password: set[bytes] = set()

    def set_password(self, password: str | None, *, hint: str | None = None) -> None:
        """Turn two-step verification on with `password` (None: off). The world keeps only the SRP verifier."""
        self._password = None if password is None else login.SrpPassword.create(password, self._rng, hint)

    def expire_login_codes(self) -> None:
        """Every login code sent so far stops working (PHONE_CODE_EXPIRED), as after Telegram's timeout."""
        for sent in self._sent_codes.values():
            sent.expired = True

    @staticmethod
    def _valid_phone(phone: str) -> bool:
        # E.164: at most 15 digits, no leading zero; Telethon sends digits only.
        return phone.isdigit() and 7 <= len(phone) <= 15 and not phone.startswith("0")

    def _h_send_code(self, link: Link, req: Any) -> Any:
        if not self._valid_phone(req.phone_number):
            raise _RpcFailure(400, "PHONE_NUMBER_INVALID")
        code = f"{self._rng.randrange(10**5):05d}"
        phone_code_hash = self._rng.randbytes(9).hex()
        self._sent_codes[phone_code_hash] = login.SentCode(req.phone_number, code)
        self.login_codes.append(code)
        return types.auth.SentCode(
            type=types.auth.SentCodeTypeApp(length=len(code)),
            phone_code_hash=phone_code_hash,
            next_type=types.auth.CodeTypeSms(),
            timeout=120,
        )

    def _h_sign_in(self, link: Link, req: Any) -> Any:
        if not req.phone_code_hash:
            raise _RpcFailure(400, "PHONE_CODE_HASH_EMPTY")
        if not req.phone_code:
            raise _RpcFailure(400, "PHONE_CODE_EMPTY")
        sent = self._sent_codes.get(req.phone_code_hash)
        if sent is None or sent.phone != req.phone_number:
            raise _RpcFailure(400, "PHONE_NUMBER_INVALID")
        if sent.expired:
            raise _RpcFailure(400, "PHONE_CODE_EXPIRED")
        if req.phone_code != sent.code:
            raise _RpcFailure(400, "PHONE_CODE_INVALID")
        del self._sent_codes[req.phone_code_hash]
        if sent.phone != self.me.phone:
            return types.auth.AuthorizationSignUpRequired()
        if self._password is not None:
            self._awaiting_password.add(self._key_of(link))
            raise _RpcFailure(401, "SESSION_PASSWORD_NEEDED")
        return self._log_in(link)

    def _h_get_password(self, link: Link, req: Any) -> Any:
        # What a client would use to set a new password (it appends its own random bytes to salt1).
        new_algo = types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
            salt1=self._rng.randbytes(8),
            salt2=self._rng.randbytes(16),
            g=login.GENERATOR,
            p=login.TELEGRAM_PRIME.to_bytes(256, "big"),
        )
        common = {
            "new_algo": new_algo,
            "new_secure_algo": types.SecurePasswordKdfAlgoSHA512(salt=self._rng.randbytes(8)),
            "secure_random": self._rng.randbytes(256),
        }
        if self._password is None:
            return types.account.Password(has_password=False, **common)
        challenge = self._password.challenge(self._rng)
        return types.account.Password(
            has_password=True,
            current_algo=self._password.algo,
            srp_B=challenge.srp_b.to_bytes(256, "big"),
            srp_id=challenge.srp_id,
            hint=self._password.hint,
            **common,
        )

    def _h_check_password(self, link: Link, req: Any) -> Any:
        key = self._key_of(link)
        if self._password is None:
            raise _RpcFailure(400, "PASSWORD_EMPTY")
        srp = req.password
        if not isinstance(srp, types.InputCheckPasswordSRP) or not self._password.known(srp.srp_id):
            raise _RpcFailure(400, "SRP_ID_INVALID")
        if key not in self._awaiting_password and key not in self._authorized_keys:
            raise _RpcFailure(401, "AUTH_KEY_UNREGISTERED")
        if not self._password.verify(srp.srp_id, srp.A, srp.M1):
            raise _RpcFailure(400, "PASSWORD_HASH_INVALID")
        self._awaiting_password.discard(key)
        return self._log_in(link)

    def _h_log_out(self, link: Link, req: Any) -> Any:
        self._authorized_keys.discard(self._key_of(link))
        return types.auth.LoggedOut()

    @staticmethod
    def _key_of(link: Link) -> bytes:
        key = link.auth_key
        if key is None:  # the sender always has a key before it sends anything
            raise _RpcFailure(401, "AUTH_KEY_UNREGISTERED")
        return key

    def _log_in(self, link: Link) -> Any:
        self._authorized_keys.add(self._key_of(link))
        return types.auth.Authorization(user=self.me)

    # endregion
