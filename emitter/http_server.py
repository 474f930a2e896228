"""A tiny HTTP/1.1 server for /metrics, /healthz and /readyz (probes and scrapes need nothing more)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from emitter.lifecycle import Service

log = logging.getLogger("emitter.http")

Response = tuple[int, str, bytes]
"""Status, content type, body."""
Route = Callable[[], Response]

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable", 400: "Bad Request"}
_MAX_HEADER_BYTES = 16 * 1024


class HttpServer(Service):
    """Serves fixed routes on one port; each route is a plain function called per request."""

    def __init__(self, routes: Mapping[str, Route], *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.routes = dict(routes)
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen; with port 0 the chosen port is in `self.port` afterwards."""
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)
            self.port = self._server.sockets[0].getsockname()[1]
            log.info("serving /metrics, /healthz and /readyz on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
            status, ctype, body = self._respond(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            status, ctype, body = 400, "text/plain", b"bad request\n"
        header = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            writer.write(header.encode() + body)
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    def _respond(self, head: bytes) -> Response:
        if len(head) > _MAX_HEADER_BYTES:
            return 400, "text/plain", b"request too large\n"
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3:
            return 400, "text/plain", b"bad request\n"
        method, target, _version = parts
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"only GET\n"
        route = self.routes.get(target.split("?", 1)[0])
        if route is None:
            return 404, "text/plain", b"not found\n"
        return route()
