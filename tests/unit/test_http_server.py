"""The probe and metrics server over real sockets: what a stray or hostile client can and cannot do to it."""

from __future__ import annotations

import asyncio
import time

from emitter.http_server import HttpServer, Response


def ok() -> Response:
    """A route that always answers."""
    return 200, "text/plain", b"ok\n"


async def get(port: int, path: str = "/healthz") -> bytes:
    """One GET over a fresh connection; the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    return answer


async def test_connections_past_the_limit_get_503_and_the_limit_frees_again() -> None:
    """With max_connections held open by silent clients, a new one gets 503; once they go, 200 again."""
    async with HttpServer({"/healthz": ok}, max_connections=3, idle_timeout=30) as server:
        silent = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
        deadline = time.monotonic() + 5
        while server.open_connections < 3:  # the server has accepted all three
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert (await get(server.port)).startswith(b"HTTP/1.1 503 ")
        for _, writer in silent:
            writer.close()
            await writer.wait_closed()
        deadline = time.monotonic() + 5
        while server.open_connections:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert (await get(server.port)).startswith(b"HTTP/1.1 200 ")


async def test_a_silent_connection_is_closed_after_the_idle_timeout() -> None:
    """A client that connects and sends nothing is answered 400 and dropped after idle_timeout, not held."""
    async with HttpServer({"/healthz": ok}, idle_timeout=0.3) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        started = time.monotonic()
        answer = await asyncio.wait_for(reader.read(), 5)
        took = time.monotonic() - started
        writer.close()
        await writer.wait_closed()
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert 0.25 <= took < 3


async def test_an_oversized_request_head_is_refused() -> None:
    """A request head past 16 KiB gets 400 instead of being buffered."""
    async with HttpServer({"/healthz": ok}, idle_timeout=5) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"a" * 20_000)
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await writer.wait_closed()
        assert answer.startswith(b"HTTP/1.1 400 ")


async def test_the_server_binds_only_the_host_it_is_given() -> None:
    """Bound to 127.0.0.1, the server is not reachable on another loopback address."""
    async with HttpServer({"/healthz": ok}, host="127.0.0.1") as server:
        assert (await get(server.port)).startswith(b"HTTP/1.1 200 ")
        try:
            await asyncio.wait_for(asyncio.open_connection("127.0.0.2", server.port), 2)
        except OSError:
            pass
        else:
            raise AssertionError("the server answered on 127.0.0.2")
