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
MAX_CONNECTIONS = 16
"""Connections served at once: a kubelet's three probes and a scraper or two need a handful."""
IDLE_TIMEOUT = 5.0
"""Seconds a connection may take to send its request and to take the answer: a probe's timeout is shorter."""


class HttpServer(Service):
    """Serves fixed routes on one port; each route is a plain function called per request.

    Every connection answers one request and closes. Past `max_connections` open connections a new one gets
    503 within a second, and a connection that stays silent (or reads slowly) longer than `idle_timeout` is
    closed, so a stray client can neither exhaust the process nor starve the probes for long.
    """

    def __init__(
        self,
        routes: Mapping[str, Route],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.routes = dict(routes)
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._open: dict[asyncio.StreamWriter, asyncio.Task[None]] = {}
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen; with port 0 the chosen port is in `self.port` afterwards."""
        if self._server is None:
            # The stream limit caps what one request may buffer before the header check refuses it.
            self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=_MAX_HEADER_BYTES + 4)
            self.port = self._server.sockets[0].getsockname()[1]
            log.info("serving /metrics, /healthz and /readyz on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and drop the connections still open (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        # Aborting the sockets ends each handler through its own error path; cancelling them instead would
        # make asyncio log every cancelled connection as an unhandled exception.
        handlers = list(self._open.values())
        for writer in list(self._open):
            writer.transport.abort()
        if handlers:
            await asyncio.wait(handlers, timeout=self.idle_timeout)

    @property
    def open_connections(self) -> int:
        """Connections being served right now."""
        return len(self._open)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - asyncio runs every connection handler in a task
        self._open[writer] = task
        try:
            busy = len(self._open) > self.max_connections
            try:
                # The request is read even when busy: closing with unread input would reset the connection
                # before the client sees the 503.
                async with asyncio.timeout(min(self.idle_timeout, 1.0) if busy else self.idle_timeout):
                    head = await reader.readuntil(b"\r\n\r\n")
                response = (503, "text/plain", b"too many connections\n") if busy else self._respond(head)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
                response = 400, "text/plain", b"bad request\n"
            await self._answer(writer, response)
        finally:
            del self._open[writer]

    async def _answer(self, writer: asyncio.StreamWriter, response: Response) -> None:
        """Write the response and close; a client that does not take it within the idle timeout is dropped."""
        status, ctype, body = response
        header = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        try:
            async with asyncio.timeout(self.idle_timeout):
                writer.write(header.encode() + body)
                await writer.drain()
        except TimeoutError:
            writer.transport.abort()  # close() would keep the socket until the client read the rest
            return
        except ConnectionError:
            pass
        writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError):
            async with asyncio.timeout(self.idle_timeout):
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
