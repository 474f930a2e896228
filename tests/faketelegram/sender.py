"""The stand-in for Telethon's `MTProtoSender`: a connection to the in-process `FakeTelegram`.

Why a subclass and not a from-scratch object: everything the real sender does *above* the socket is
kept, so it stays under test. Requests still go through the real `send()` (`RequestState`, the
`MessagePacker` that assigns msg_ids and serialises every request), answers come back as real
`TLMessage(RpcResult(...))` handled by the real `_process_message` / `_handle_rpc_result` (which parses
the body with `request.read_result` and turns errors into exceptions with `rpc_message_to_error`),
updates go through the real `_handle_update` into the client's `_updates_queue`, and a broken
connection runs the real `_start_reconnect` / `_reconnect` (retries, delay, re-sending pending
requests, the client's auto-reconnect callback).

Replaced are only the parts that touch the network: `_connect` (no TCP, no auth-key exchange),
`_send_loop` (hands packed requests to the world instead of encrypting them onto a socket),
`_recv_loop` (reads the world's answers from an in-memory queue instead of decrypting a socket) and
`_transport_connected`. A transport error (Telegram's 4-byte packet such as -404, "auth key unknown") arrives
as raw bytes and goes through the real `MTProtoState.decrypt_message_data`, which raises the real
`InvalidBufferError`, handled exactly as the real `_recv_loop` handles it (-404: disconnect for good with
`AuthKeyNotFound`). These are private methods of Telethon 1.45; if Telethon renames them, the
fake breaks loudly (the client would try to reach the real Telegram, which the tests' lack of network
turns into connection errors).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from telethon import helpers
from telethon.crypto import AuthKey
from telethon.errors import AuthKeyNotFound, InvalidBufferError, SecurityError, TypeNotFoundError
from telethon.network import MTProtoSender
from telethon.tl import TLRequest

if TYPE_CHECKING:
    from .world import FakeTelegram

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class Settle:
    """An answer delivered without bytes (round-trip off, or a failure inside the fake itself).

    The real sender only knows byte bodies; this carries a ready object or exception to the future.
    """

    msg_id: int
    result: Any = None
    error: BaseException | None = None


def transport_error(code: int) -> bytes:
    """The body of a transport error packet as Telegram sends it: the negative code, 4 bytes little-endian."""
    return struct.pack("<i", -abs(code))


class Link:
    """One live connection between a sender and the world: an inbox of what the server sends."""

    def __init__(self, sender: FakeSender) -> None:
        self.sender = sender
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.alive = True
        # Cleared when the connection is initialised with invokeWithoutUpdates, as Telegram does.
        self.receives_updates = True
        self._loop = asyncio.get_running_loop()

    @property
    def auth_key(self) -> bytes | None:
        """The key this connection is encrypted with (what identifies the session to Telegram)."""
        key: bytes | None = self.sender.auth_key.key
        return key

    def deliver(self, item: Any, latency: float = 0.0) -> None:
        """Queue something for the client to receive, optionally after a network delay."""
        if not self.alive:
            return
        if latency > 0:
            self._loop.call_later(latency, self._put, item)
        else:
            self.inbox.put_nowait(item)

    def _put(self, item: Any) -> None:
        if self.alive:  # a connection cut while the answer was in flight loses it
            self.inbox.put_nowait(item)

    def cut(self, error: BaseException) -> None:
        """Break the connection as a network failure would: unread answers are lost."""
        self.close()
        self.inbox.put_nowait(error)

    def close(self) -> None:
        """End the connection; nothing more is delivered."""
        self.alive = False
        while not self.inbox.empty():
            self.inbox.get_nowait()


class FakeSender(MTProtoSender):  # type: ignore[misc]  # Telethon is untyped
    """`MTProtoSender` whose network is a `FakeTelegram` world. Build it through the world's helpers."""

    def __init__(self, auth_key: AuthKey | None, *, world: FakeTelegram, **kwargs: Any) -> None:
        super().__init__(auth_key, **kwargs)
        self._world = world
        self._link: Link | None = None

    @property
    def link(self) -> Link | None:
        """The current connection to the world (None while disconnected)."""
        return self._link

    async def _connect(self) -> None:
        """Open a link to the world, retrying like the real `_connect` retries TCP connects."""
        self._log.info("Connecting to FakeTelegram...")
        if self._link is not None:  # a reconnect after e.g. a missed ping: drop the old link first
            self._world._close_link(self._link)
            self._link = None

        link: Link | None = None
        for attempt in helpers.retry_range(self._retries):
            try:
                link = self._world._open_link(self)
            except OSError as e:
                self._log.warning("Attempt %d at connecting failed: %s: %s", attempt, type(e).__name__, e)
                await asyncio.sleep(self._delay)
                continue
            break
        if link is None:
            raise ConnectionError(f"Connection to Telegram failed {self._retries} time(s)")

        if not self.auth_key:
            # The real sender runs the DH exchange here; a fresh key is unknown to the world, so a
            # session without a key ends up logged out, as it would against Telegram.
            self.auth_key.key = self._world._fresh_auth_key()
            if self._auth_key_callback:
                await self._auth_key_callback(self.auth_key)

        self._link = link
        loop = helpers.get_running_loop()
        self._send_loop_handle = loop.create_task(self._send_loop())
        self._recv_loop_handle = loop.create_task(self._recv_loop())

        # Same as the real `_connect`: `disconnected` only completes on a final disconnection, so a
        # new future replaces a completed one. The attribute is name-mangled in MTProtoSender.
        if self._disconnected.done():
            self._MTProtoSender__disconnected = loop.create_future()
        self._log.info("Connection to FakeTelegram complete!")

    async def _disconnect(self, error: BaseException | None = None) -> None:
        if self._link is not None:
            self._world._close_link(self._link)
            self._link = None
        await super()._disconnect(error)

    def _transport_connected(self) -> bool:
        return not self._reconnecting and self._link is not None and self._link.alive

    async def _send_loop(self) -> None:
        """Hand packed requests to the world (the real loop encrypts them onto the socket)."""
        link = self._link
        assert link is not None
        while self._user_connected and not self._reconnecting:
            # The fake server needs no acknowledgements; the real loop would send MsgsAck here.
            self._pending_ack.clear()
            batch, data = await self._send_queue.get()
            if not data:
                continue
            states = [s for item in batch for s in (item if isinstance(item, list) else [item])]
            # As in the real loop: sent requests are pending until answered, and re-sent after a
            # reconnect if the answer never came.
            for state in states:
                if isinstance(state.request, TLRequest):
                    self._pending_state[state.msg_id] = state
            if not link.alive:
                self._log.info("Connection closed while sending data")
                self._start_reconnect(ConnectionResetError("FakeTelegram closed the connection"))
                return
            self._world._transmit(link, states)

    async def _recv_loop(self) -> None:
        """Read what the world sent and process it like the real loop processes decrypted messages."""
        link = self._link
        assert link is not None
        while self._user_connected and not self._reconnecting:
            item = await link.inbox.get()
            if isinstance(item, BaseException):
                # What the real loop does on IOError from the socket.
                self._log.info("Connection closed while receiving data: %s", item)
                self._start_reconnect(item)
                return
            if isinstance(item, bytes):
                if not await self._receive_packet(item):
                    return
                continue
            try:
                if isinstance(item, Settle):
                    self._settle(item)
                else:
                    await self._process_message(item)
            except Exception:
                self._log.exception("Unhandled error while processing msgs")

    async def _receive_packet(self, body: bytes) -> bool:
        """Handle a raw packet body as the real `_recv_loop` does after `connection.recv()`.

        Returns whether the loop goes on. Only transport errors travel as raw bytes, so the real
        decryption always raises; the except clauses are the real loop's, in its order.
        """
        try:
            message = self._state.decrypt_message_data(body)
        except (TypeNotFoundError, SecurityError) as e:
            self._log.warning("Ignoring a received message that does not decode: %s", e)
            return True
        except BufferError as e:
            if isinstance(e, InvalidBufferError) and e.code == 404:
                self._log.info("Server does not know about the current auth key; the session may need to be recreated")
                await self._disconnect(error=AuthKeyNotFound())
            else:
                self._log.warning("Invalid buffer %s", e)
                self._start_reconnect(e)
            return False
        except Exception as e:
            self._log.exception("Unhandled error while decrypting data")
            self._start_reconnect(e)
            return False
        if message is not None:
            await self._process_message(message)
        return True

    def _settle(self, item: Settle) -> None:
        state = self._pending_state.pop(item.msg_id, None)
        if state is None or state.future.done():
            return
        if item.error is not None:
            state.future.set_exception(item.error)
        else:
            self._store_own_updates(item.result)
            state.future.set_result(item.result)
