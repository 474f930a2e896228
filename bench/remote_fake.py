"""The fake Telegram in a process of its own, serving MTProto on a TCP port: Telegram is not in the emitter's process.

    python -m bench.remote_fake latency                          # one supergroup @live with 10 messages
    python -m bench.remote_fake backfill CHANNELS TOTAL PREFIX   # `bench.common.build_world(CHANNELS, TOTAL)`

The child builds its world (the same seeds and content the in-process benches used), listens with
`MTProtoListener` on 127.0.0.1 (an ephemeral port unless `--port`), prints one JSON line
``{"port": P, "groups": [...], "messages": N}`` and then answers one JSON line per command line on stdin:

- ``{"op": "session"}`` → ``{"session": S}``: a fresh logged-in StringSession for this world's address.
- ``{"op": "post", "count": N, "rate": R}`` → posts N messages to the first group at R a second, each text
  stamped with CLOCK_MONOTONIC at its post (`bench.probe.stamp_text`); answers when done with the seconds spent
  inside `FakeTelegram.post` and the posting wall time. The poster runs here, so posting is the fake's own CPU.
- ``{"op": "drop", "fraction": F, "seed": S}`` → drop that share of live updates from now on.
- ``{"op": "counters"}`` → requests per method, dropped updates and this process's CPU seconds.
- ``{"op": "reset"}`` → forget the request counters; ``{"op": "quit"}`` → stop.

`RemoteFake` is the parent's side: an async context manager that starts the child and speaks the protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any, Final

from telethon import TelegramClient
from telethon.crypto import aes, libssl
from telethon.sessions import StringSession

from bench.common import build_world
from bench.probe import stamp_text
from emitter.telegram_client import client_options
from tests.faketelegram import FakeTelegram
from tests.faketelegram.tcp import MTProtoListener

API_ID: Final = 12345
API_HASH: Final = "0123456789abcdef0123456789abcdef"
TICK: Final = 0.005
"""The poster wakes every 5 ms and posts what is due, so posts spread evenly over each second."""
LATENCY_SEED: Final = 11
"""The live-latency world's seed (the one the in-process bench used)."""
LATENCY_HISTORY: Final = 10


def latency_world() -> tuple[FakeTelegram, list[str]]:
    """One supergroup @live with a short history, as the latency bench always built it."""
    # The socket serialises every answer and update: no need for the fake to round-trip them in process too.
    fake = FakeTelegram(seed=LATENCY_SEED, rate_limits=None, roundtrip=False, dc_address="127.0.0.1")
    channel = fake.add_channel("Live", username="live", megagroup=True)
    fake.post_many(channel, LATENCY_HISTORY)
    return fake, ["@live"]


def aes_backend() -> str:
    """Which AES-IGE implementation Telethon uses in this process: every MTProto message goes through it."""
    if aes.cryptg is not None:
        return "cryptg"
    if libssl.decrypt_ige is not None:
        return "libssl through ctypes"
    return "pyaes (pure Python)"


class _Server:
    """The child's side: the world, its listener, and the command loop."""

    def __init__(self, fake: FakeTelegram, groups: list[str], port: int) -> None:
        self.fake = fake
        self.groups = groups
        self.listener = MTProtoListener(fake, port=port)

    async def run(self) -> None:
        async with self.listener:
            self.fake.dc_port = self.listener.bound_port  # sessions name the port actually bound
            _say(
                {
                    "port": self.fake.dc_port,
                    "groups": self.groups,
                    "messages": sum(len(self.fake.message_ids(g)) for g in self.groups),
                }
            )
            reader = await _stdin_reader()
            while line := await reader.readline():
                command = json.loads(line)
                if command["op"] == "quit":
                    break
                _say(await self.handle(command))

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        op = command["op"]
        if op == "session":
            return {"session": self.fake.new_session().save()}
        if op == "post":
            return await self.post(int(command["count"]), float(command["rate"]))
        if op == "drop":
            self.fake.faults.drop_updates(float(command["fraction"]), seed=int(command["seed"]))
            return {"ok": True}
        if op == "counters":
            return {
                "requests": dict(self.fake.request_counts),
                "dropped": self.fake.faults.dropped_updates,
                "cpu": time.process_time(),
            }
        if op == "reset":
            self.fake.reset_counters()
            return {"ok": True}
        return {"error": f"unknown op {op!r}: expected session, post, drop, counters, reset or quit"}

    async def post(self, count: int, rate: float) -> dict[str, Any]:
        """Post `count` stamped messages at `rate` a second to the first group."""
        channel = self.groups[0]
        loop = asyncio.get_running_loop()
        start, started = loop.time(), time.perf_counter()
        sent, inside = 0, 0.0
        while sent < count:
            due = min(count, int((loop.time() - start) * rate) + 1)
            while sent < due:
                before = time.perf_counter()
                self.fake.post(channel, stamp_text(time.monotonic_ns()))
                inside += time.perf_counter() - before
                sent += 1
            await asyncio.sleep(TICK)
        return {"posted": sent, "inside": inside, "seconds": time.perf_counter() - started}


async def _stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class RemoteFake:
    """The parent's handle on a fake Telegram child process; an async context manager (idempotent stop)."""

    def __init__(self, *world: str) -> None:
        self.world = world
        self.port = 0
        self.groups: list[str] = []
        self.messages = 0
        """Messages in the world's groups when it was built."""
        self.pid = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> RemoteFake:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the child and wait until it listens (idempotent)."""
        if self._proc is not None:
            return
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.remote_fake",
            *self.world,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**24,  # a counters answer is one line
        )
        self.pid = self._proc.pid
        hello = await self._read(600)  # a world of a million messages takes minutes to build
        self.port, self.groups, self.messages = hello["port"], hello["groups"], hello["messages"]

    async def stop(self) -> None:
        """Ask the child to quit and wait for it (idempotent)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        try:
            proc.stdin.write(b'{"op": "quit"}\n')
            await proc.stdin.drain()
            proc.stdin.close()
            await asyncio.wait_for(proc.wait(), 30)
        except (ConnectionError, TimeoutError):
            proc.kill()
            await proc.wait()

    async def call(self, op: str, within: float = 60, **args: Any) -> dict[str, Any]:
        """Send one command and return its answer (one command at a time)."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise RuntimeError("the remote fake is not running")
        async with self._lock:
            proc.stdin.write(json.dumps({"op": op, **args}).encode() + b"\n")
            await proc.stdin.drain()
            answer = await self._read(within)
        if "error" in answer:
            raise RuntimeError(f"remote fake: {answer['error']}")
        return answer

    async def client(self) -> TelegramClient:
        """A real TelegramClient with production options on a fresh session of the child's world, over TCP."""
        session = (await self.call("session"))["session"]
        return TelegramClient(StringSession(session), API_ID, API_HASH, **client_options())

    async def post(self, count: int, rate: float) -> dict[str, Any]:
        """Post `count` stamped live messages at `rate` a second (in the child); returns when all are posted."""
        return await self.call("post", within=count / rate + 120, count=count, rate=rate)

    async def _read(self, within: float) -> dict[str, Any]:
        assert self._proc is not None
        assert self._proc.stdout is not None
        async with asyncio.timeout(within):
            line = await self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the remote fake exited ({await self._proc.wait()}) before answering")
        answer: dict[str, Any] = json.loads(line)
        return answer


def main(argv: list[str]) -> None:
    """Entry point: see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m bench.remote_fake")
    parser.add_argument("world", choices=("latency", "backfill"))
    parser.add_argument("args", nargs="*", help="backfill: CHANNELS TOTAL PREFIX")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: any free one)")
    args = parser.parse_args(argv)
    if args.world == "latency":
        fake, groups = latency_world()
    else:
        channels, total, prefix = args.args
        fake, groups = build_world(int(channels), int(total), prefix=prefix, roundtrip=False, dc_address="127.0.0.1")
    asyncio.run(_Server(fake, groups, args.port).run())


if __name__ == "__main__":
    main(sys.argv[1:])
