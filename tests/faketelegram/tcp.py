"""The fake Telegram on a TCP port, speaking MTProto 2.0 to an unpatched Telethon client.

For tests where the network path itself is under test (a proxy): the client runs Telethon's real
`MTProtoSender` and `ConnectionTcpFull` (the default transport) over a real socket. The listener speaks enough
of the protocol for a session that already holds an auth key the world knows (`FakeTelegram.new_session` with
the DC address pointed here): the abridged-free "full" TCP framing (length, sequence number, CRC32), MTProto
2.0 encryption with the shared key in both directions (msg_key with x=0 from the client, x=8 from the server),
`bad_server_salt` for a client that does not know the salt yet (as Telegram answers a fresh connection),
message containers, gzip-packed requests and acknowledgements, and answers every request with the world's
own handlers, so faults, flood limits and updates behave as they do in process. No key exchange: a key the
world does not know gets the transport error -404, as from Telegram.

Every accepted connection's peer address is recorded (`peers`), which is what tells a proxied connection from
a direct one. Not modelled on the socket: AUTH_KEY_DUPLICATED (a reconnect's old socket may still look open
for a moment, which would revoke the key falsely) and the transport's obfuscation (MTProxy's connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import time
from hashlib import sha256
from typing import TYPE_CHECKING, Any
from zlib import crc32

from telethon.crypto import AES, AuthKey
from telethon.extensions import BinaryReader
from telethon.network.mtprotostate import MTProtoState
from telethon.tl import TLRequest, types
from telethon.tl.core import GzipPacked, MessageContainer, RpcResult, TLMessage

from ._tl import serialize_result
from .sender import Link, Settle

if TYPE_CHECKING:
    from .world import FakeTelegram

_log = logging.getLogger(__name__)
_RPC_RESULT = 0xF35C6D01
_BAD_SERVER_SALT = 48  # error_code of bad_server_salt: the salt is wrong or missing


class TcpLink(Link):
    """One client connection on the socket, as the world sees a link: deliveries become encrypted packets."""

    def __init__(self, listener: MTProtoListener, writer: asyncio.StreamWriter) -> None:
        # Not Link.__init__: there is no in-process sender on the other end, only bytes.
        self.sender = None
        self.alive = True
        self.receives_updates = True
        self._listener = listener
        self._writer = writer
        self._key: AuthKey | None = None
        self._session_id = 0
        self._send_counter = 0
        self._sequence = 0
        self._last_msg_id = 0
        self._loop = asyncio.get_running_loop()

    @property
    def auth_key(self) -> bytes | None:
        """The key this connection's messages are encrypted with (None before its first message)."""
        return self._key.key if self._key is not None else None

    def deliver(self, item: Any, latency: float = 0.0) -> None:
        """Send what the world answers or pushes, optionally after a network delay."""
        if latency > 0:
            self._loop.call_later(latency, self._send_item, item)
        else:
            self._send_item(item)

    def cut(self, error: BaseException) -> None:
        """Break the connection: the client sees the socket close."""
        self.close()

    def close(self) -> None:
        """End the connection; nothing more is sent."""
        self.alive = False
        self._writer.close()

    def _send_item(self, item: Any) -> None:
        if not self.alive:
            return
        if isinstance(item, bytes):  # a transport error: the bare 4-byte packet
            self._write_packet(item)
        elif isinstance(item, Settle):
            self._send_settle(item)
        elif isinstance(item, TLMessage):
            self.send_object(_object_bytes(item.obj), content_related=not isinstance(item.obj, types.Pong))

    def _send_settle(self, item: Settle) -> None:
        # Settle carries what the fake could not put on the wire in process; on a socket it must be bytes.
        if item.error is None:
            body = struct.pack("<Iq", _RPC_RESULT, item.msg_id) + serialize_result(item.result)
        else:
            message = getattr(item.error, "message", None) or f"FAKETELEGRAM_FAILURE {type(item.error).__name__}"
            body = struct.pack("<Iq", _RPC_RESULT, item.msg_id) + bytes(types.RpcError(500, message))
        self.send_object(body, content_related=True)

    def send_object(self, body: bytes, *, content_related: bool) -> None:
        """Encrypt one server message (x=8) and write it in the full TCP framing."""
        assert self._key is not None
        msg_id = self._new_msg_id()
        seq_no = self._sequence * 2 + 1 if content_related else self._sequence * 2
        self._sequence += int(content_related)
        data = struct.pack("<qqqii", self._listener.salt, self._session_id, msg_id, seq_no, len(body)) + body
        padding = os.urandom(-(len(data) + 12) % 16 + 12)
        key = self._key.key
        msg_key = sha256(key[96 : 96 + 32] + data + padding).digest()[8:24]
        aes_key, aes_iv = MTProtoState._calc_key(key, msg_key, False)
        self._write_packet(
            struct.pack("<Q", self._key.key_id) + msg_key + AES.encrypt_ige(data + padding, aes_key, aes_iv)
        )

    def _new_msg_id(self) -> int:
        # Server message ids are odd (1 mod 4 for answers; Telethon checks only oddness) and near real time:
        # Telethon ignores messages more than 300 s old or 30 s in the future by its own clock.
        now = time.time()
        msg_id = (int(now) << 32) | (int((now % 1) * 2**30) << 2) | 1
        msg_id = max(msg_id, self._last_msg_id + 4)
        self._last_msg_id = msg_id
        return msg_id

    def _write_packet(self, body: bytes) -> None:
        head = struct.pack("<ii", len(body) + 12, self._send_counter) + body
        self._send_counter += 1
        self._writer.write(head + struct.pack("<I", crc32(head)))

    def receive(self, body: bytes) -> None:
        """One packet from the client: decrypt it and hand its requests to the world."""
        key_id = struct.unpack("<Q", body[:8])[0]
        key = self._listener.key_for(key_id)
        if key is None:
            self._listener.world.transport_errors.append(-404)
            self._write_packet(struct.pack("<i", -404))
            return
        self._key = key
        msg_key = body[8:24]
        aes_key, aes_iv = MTProtoState._calc_key(key.key, msg_key, True)
        plain = AES.decrypt_ige(body[24:], aes_key, aes_iv)
        if sha256(key.key[88 : 88 + 32] + plain).digest()[8:24] != msg_key:
            raise ConnectionError("msg_key does not match the message: not our key's client")
        salt, self._session_id, msg_id, seq_no, length = struct.unpack("<qqqii", plain[:32])
        if salt != self._listener.salt:
            self._listener.bad_salts += 1
            self.send_object(
                bytes(types.BadServerSalt(msg_id, seq_no, _BAD_SERVER_SALT, self._listener.salt)), content_related=False
            )
            return
        self._listener.world_receive(self, msg_id, BinaryReader(plain[32 : 32 + length]).tgread_object())


def _checked(head: bytes, rest: bytes) -> bytes:
    """The body of one full-framing packet whose CRC32 (over length, sequence number and body) matches."""
    if crc32(head + rest[:-4]) != struct.unpack("<I", rest[-4:])[0]:
        raise ConnectionError("bad CRC32 in a packet from the client")
    return rest[:-4]


def _object_bytes(obj: Any) -> bytes:
    if isinstance(obj, RpcResult):
        body = obj.body if obj.body is not None else bytes(obj.error)
        return struct.pack("<Iq", _RPC_RESULT, obj.req_msg_id) + body
    return bytes(obj)


class MTProtoListener:
    """`FakeTelegram` on 127.0.0.1:`port` for unpatched clients; an async context manager."""

    def __init__(self, world: FakeTelegram, *, host: str = "127.0.0.1", port: int = 21443) -> None:
        self.world = world
        self.host = host
        self.port = port
        self.salt = struct.unpack("<q", os.urandom(8))[0]
        self.peers: list[tuple[str, int]] = []
        """The peer address of every connection accepted, oldest first."""
        self.bad_salts = 0
        """How many messages came with a wrong salt (answered with bad_server_salt and resent by the client)."""
        self._server: asyncio.Server | None = None
        self._links: set[TcpLink] = set()

    async def __aenter__(self) -> MTProtoListener:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen (idempotent)."""
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)

    async def stop(self) -> None:
        """Close every connection and stop listening (idempotent)."""
        server, self._server = self._server, None
        for link in list(self._links):
            self.world._close_link(link)
        if server is not None:
            server.close()
            await server.wait_closed()

    @property
    def bound_port(self) -> int:
        """The port actually listened on (the one chosen by the system when `port` was 0)."""
        if self._server is None:
            raise RuntimeError("the listener is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def key_for(self, key_id: int) -> AuthKey | None:
        """The auth key the world knows under `key_id` (logged in or dead: a dead key still decrypts)."""
        for key in (*self.world._authorized_keys, *self.world._dead_keys):
            auth = AuthKey(key)
            if auth.key_id == key_id:
                return auth
        return None

    def world_receive(self, link: TcpLink, msg_id: int, obj: Any) -> None:
        """Hand one decrypted message (a container, a gzip-packed request, a request, or an ack) to the world."""
        if isinstance(obj, MessageContainer):
            for inner in obj.messages:
                self.world_receive(link, inner.msg_id, inner.obj)
        elif isinstance(obj, GzipPacked):
            self.world_receive(link, msg_id, BinaryReader(obj.data).tgread_object())
        elif isinstance(obj, TLRequest):
            self.world._answer(link, msg_id, obj)
        # Anything else (msgs_ack, ...) needs no answer.

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        self.peers.append((peer[0], peer[1]))
        if not self.world._online:
            writer.close()
            return
        link = TcpLink(self, writer)
        self._links.add(link)
        self.world._links.append(link)
        try:
            while link.alive:
                head = await reader.readexactly(8)
                length, _seq = struct.unpack("<ii", head)
                rest = await reader.readexactly(length - 8)
                link.receive(_checked(head, rest))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            _log.info("a client connection from %s ended: %s", peer, e)
        finally:
            self._links.discard(link)
            self.world._close_link(link)
            with contextlib.suppress(ConnectionError):
                writer.close()
