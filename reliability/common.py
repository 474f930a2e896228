"""What every reliability scenario shares: its own broker, fresh topics, forked emitters, the read-back and
the tally of lost and duplicated messages.

The emitter under test runs on the in-process Telegram (`tests.faketelegram`). Scenarios that kill or signal
the emitter run it in a *forked* child: the child starts with an exact copy of the parent's world, posts live
messages into its copy, and the parent replays the same posts into its own copy afterwards, so both worlds
hold the same message ids and the parent can say what a consumer must have seen.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import multiprocessing
import os
import platform
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from emitter.app import create_monitor, run
from emitter.clock import ScaledClock
from emitter.codec import decode
from emitter.cursor import GroupCursor
from emitter.kafka_sink import KafkaSink
from emitter.monitor import Monitor
from emitter.protocols import Batch, CursorView, Page
from emitter.records import Source
from emitter.settings import Settings, load_settings
from emitter.telegram_client import client_options
from emitter.telegram_source import TelegramSource
from tests.faketelegram import FakeTelegram

ROOT: Final = Path(__file__).resolve().parents[1]
CACHE: Final = Path(os.environ.get("EMITTER_CACHE", Path.home() / ".cache" / "telegram-emitter"))
FORK: Final = multiprocessing.get_context("fork")
"""Fork, not spawn: the child must start from the parent's world as it is, which no pickle can carry."""


SPEED = 50
"""Telegram seconds per wall second for the request gateway: production pacing (about one history request a
second) at full time would make these scenarios' backfills take minutes. Sweep intervals are wall seconds."""


class ScenarioError(Exception):
    """A scenario could not go on (a deadline passed, a child died): its row fails with this message."""


def log(message: str) -> None:
    """Progress on stderr, so that stdout carries the table alone."""
    print(f"[reliability {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the broker -----------------------------------------------------------------------------------------------


class Broker:
    """This suite's own single-node Kafka (dev/kafka on separate ports and state), which it may kill.

    Other work uses the broker on 9092 at the same time, so everything here is bound to `state_dir`: the pid
    it kills is read from that directory and checked against the process's command line first.
    """

    def __init__(self, port: int = 29092, controller_port: int = 29093, state_dir: Path | None = None) -> None:
        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        self.state_dir = state_dir or CACHE / "kafka-reliability"
        self.env = {
            **os.environ,
            "KAFKA_PORT": str(port),
            "KAFKA_CONTROLLER_PORT": str(controller_port),
            "KAFKA_STATE_DIR": str(self.state_dir),
        }

    def _script(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own script, fixed arguments
            [str(ROOT / "dev" / "kafka"), command],
            check=False,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def running(self) -> bool:
        """Whether this broker answers (dev/kafka status)."""
        return self._script("status", 30).returncode == 0

    def start(self) -> float:
        """Start it (a no-op when it runs) and return the seconds until it was ready."""
        started = time.monotonic()
        done = self._script("start", 300)
        if done.returncode != 0:
            raise ScenarioError(f"dev/kafka start failed on port {self.port}: {done.stderr.strip()[-500:]}")
        return time.monotonic() - started

    def stop(self) -> None:
        """Stop it cleanly."""
        self._script("stop", 120)

    def kill(self) -> None:
        """kill -9 the broker, as a crashed machine would leave it (no controlled shutdown)."""
        pid = int((self.state_dir / "kafka.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        if str(self.state_dir) not in cmdline:  # never anyone else's broker, whatever the pid file says
            raise ScenarioError(f"pid {pid} is not the broker of {self.state_dir}: refusing to kill it")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


# --- settings, topics, reading back ---------------------------------------------------------------------------


def fresh_settings(bootstrap: str, **sections: Mapping[str, Any]) -> Settings:
    """Settings with new uuid-named topics and identity on `bootstrap`; `sections` override keys per section."""
    tag = uuid.uuid4().hex[:10]
    values: dict[str, dict[str, Any]] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topic": f"rel-{tag}",
            "cursor_topic": f"rel-cursors-{tag}",
            "dead_letter_topic": f"rel-dlq-{tag}",
            "transactional_id_prefix": f"rel-{tag}",
        },
        "emitter": {"instance": f"rel-{tag}"},
    }
    for section, keys in sections.items():
        values.setdefault(section, {}).update(keys)
    return load_settings(None, values)


def topics_of(settings: Settings) -> list[str]:
    """The topics an emitter with these settings creates."""
    k = settings.kafka
    return [k.topic, k.cursor_topic, k.dead_letter_topic]


async def delete_topics(bootstrap: str, names: Sequence[str]) -> None:
    """Delete a scenario's topics (missing ones are fine), so repeated runs do not fill the broker's disk."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [n for n in names if n in existing]
        if wanted:
            await admin.delete_topics(wanted)
    finally:
        await admin.close()


@dataclass(frozen=True, slots=True)
class Consumed:
    """One committed record as a consumer receives it."""

    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]

    def record(self) -> dict[str, Any]:
        """The decoded Avro value."""
        return decode(self.value)


async def read_committed(bootstrap: str, *topics: str) -> list[Consumed]:
    """Every committed record of `topics`, read with isolation_level=read_committed to the end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed", group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # topics created a moment ago may be unknown yet
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[Consumed] = []
        pending = {tp for tp in tps if end[tp] > 0}
        while pending:
            chunk = await consumer.getmany(*pending, timeout_ms=1000, max_records=20_000)
            for tp, records in chunk.items():
                out += [Consumed(tp.topic, r.key, r.value, dict(r.headers)) for r in records]
            pending = {tp for tp in pending if await consumer.position(tp) < end[tp]}
        return out
    finally:
        await consumer.stop()


def new_ids_by_group(records: Iterable[Consumed]) -> dict[int, list[int]]:
    """Message ids of NEW events per group, in the order a consumer reads them."""
    out: dict[int, list[int]] = defaultdict(list)
    for consumed in records:
        record = consumed.record()
        if record["event_type"] == "NEW":
            out[record["group"]["id"]].append(record["message_id"])
    return dict(out)


async def committed_cursors(settings: Settings) -> dict[int, GroupCursor]:
    """The instance's committed cursors, read as a restarting emitter reads them (no producer, no fencing)."""
    return await KafkaSink(settings.kafka, settings.emitter.instance).load_cursors()


# --- the verdict ----------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Sent versus received NEW events, summed over groups."""

    sent: int = 0
    received: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    """Ids a consumer saw that the world never held (a replay out of step, or a wrong group)."""

    def add(self, expected: Iterable[int], got: Sequence[int]) -> None:
        """Count one group: `expected` each once, `got` as a consumer read them."""
        want = set(expected)
        seen = Counter(got)
        self.sent += len(want)
        self.received += len(got)
        self.lost += len(want - seen.keys())
        self.duplicated += sum(n - 1 for n in seen.values())
        self.unexpected += len(seen.keys() - want)

    def add_all(self, expected: Mapping[int, Sequence[int]], got: Mapping[int, Sequence[int]]) -> None:
        """Count every group; groups a consumer saw but nobody expected count as unexpected."""
        for gid, ids in expected.items():
            self.add(ids, got.get(gid, []))
        for gid in got.keys() - expected.keys():
            self.add((), got[gid])


@dataclass
class Row:
    """One line of the table: the tally, the scenario's own checks, and what it measured."""

    scenario: str
    tally: Tally = field(default_factory=Tally)
    checks: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    topics: list[str] = field(default_factory=list)
    """Topics the scenario created, deleted after the run."""

    def check(self, name: str, ok: bool) -> bool:
        """Record a pass/fail condition besides "nothing lost or duplicated"."""
        self.checks[name] = self.checks.get(name, True) and ok
        return ok

    @property
    def passed(self) -> bool:
        """Exactly once, every check held, and nothing aborted the scenario."""
        t = self.tally
        return (
            self.error is None
            and t.sent > 0
            and not (t.lost or t.duplicated or t.unexpected)
            and all(self.checks.values())
        )

    @property
    def details(self) -> str:
        """What the table prints after the verdict: failed checks first, then the measurements."""
        parts = [f"ERROR {self.error}"] if self.error else []
        parts += [f"FAILED: {name}" for name, ok in self.checks.items() if not ok]
        if self.tally.unexpected:
            parts.append(f"{self.tally.unexpected} unexpected ids")
        return "; ".join(parts + self.notes)


# --- forked emitters ------------------------------------------------------------------------------------------


class Shared:
    """Counters a forked emitter shares with the parent: shared memory, so they outlive a SIGKILL."""

    def __init__(self) -> None:
        self.posted = FORK.RawValue("q", 0)
        """Live posts started, over all children (bumped *before* posting, see `LivePosts`)."""
        self.committed = FORK.RawValue("q", 0)
        """Events committed by the current child."""
        self.following = FORK.RawValue("i", 0)
        """Groups of the current child whose backfill walk ended (they follow now)."""
        self.backfilling = FORK.RawValue("i", 1)
        """1 until the current child's backfill is committed: every group follows and a commit held no backfill."""
        self.sweeping = FORK.RawValue("i", 0)
        """Sweeps running right now in the current child."""
        self.in_txn = FORK.RawValue("i", 0)
        """1 while the current child's sink is inside `commit` (a Kafka transaction is open)."""
        self.stop_posting = FORK.RawValue("i", 0)
        self.posting_done = FORK.RawValue("i", 0)

    def new_child(self) -> None:
        """Reset the per-child counters before forking the next child."""
        for value in (self.committed, self.following, self.sweeping, self.in_txn, self.stop_posting, self.posting_done):
            value.value = 0
        self.backfilling.value = 1


class ObservedSource(TelegramSource):
    """The real Telegram source, telling the parent when a group follows and when a sweep runs."""

    def __init__(self, shared: Shared, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared = shared

    async def _follow(self, state: Any, cursor: CursorView) -> AsyncIterator[Page]:
        self.shared.following.value += 1
        async for page in super()._follow(state, cursor):
            yield page

    async def _sweep(self, state: Any, cursor: CursorView) -> AsyncIterator[Page]:
        self.shared.sweeping.value += 1
        try:
            async for page in super()._sweep(state, cursor):
                yield page
        finally:
            self.shared.sweeping.value -= 1


class ObservedSink(KafkaSink):
    """The real Kafka sink, telling the parent while a transaction is open."""

    def __init__(self, shared: Shared, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared = shared

    async def commit(self, batch: Batch) -> None:
        self.shared.in_txn.value = 1
        try:
            await super().commit(batch)
        finally:
            self.shared.in_txn.value = 0


class LivePosts:
    """A deterministic sequence of live posts: children post them, the parent replays the same ones.

    `Shared.posted` is bumped before each post, so a child killed between the two leaves the parent one
    message the child never made (harmless: the next emitter publishes it) rather than one it cannot know of.
    """

    def __init__(self, peers: Sequence[int], seed: int, count: int = 200_000) -> None:
        rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
        self.ops = [peers[rng.randrange(len(peers))] for _ in range(count)]
        self.replayed = 0

    @staticmethod
    def text(i: int) -> str:
        """The text of post `i`."""
        return f"live {i}"

    async def post(self, fake: FakeTelegram, shared: Shared, rate: float, start: Callable[[], bool]) -> None:
        """In a child: once `start()` holds, post `rate` messages a second from where the last child stopped."""
        while not start():  # noqa: ASYNC110 - a condition of the monitor's, which offers no event to wait on
            await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        due = loop.time()
        i = shared.posted.value
        while i < len(self.ops) and not shared.stop_posting.value:
            shared.posted.value = i + 1
            fake.post(self.ops[i], self.text(i))
            i += 1
            due += 1 / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
        shared.posting_done.value = 1

    def replay(self, fake: FakeTelegram, shared: Shared) -> int:
        """In the parent: make the posts the children made (or were about to make); returns how many."""
        upto = shared.posted.value
        for i in range(self.replayed, upto):
            fake.post(self.ops[i], self.text(i), push=False)
        made, self.replayed = upto - self.replayed, upto
        return made


@dataclass
class Child:
    """How to run one forked emitter on the world as the parent holds it now."""

    fake: FakeTelegram
    settings: Settings
    session: str
    groups: list[str | int]
    shared: Shared
    posts: LivePosts
    rate: float = 100.0
    """Live posts per second (0: none)."""
    sweep_interval: float = 30.0
    drop: float = 0.0
    """Share of live updates the world drops on their way to the child."""
    seed: int = 0
    post_after_backfill: bool = False
    """Start posting only once every group follows (otherwise as soon as the emitter is ready)."""
    accepted_path: Path | None = None
    """Where the child writes its accepted cursors when it ends normally (for the SIGTERM scenario)."""

    def start(self) -> BaseProcess:
        """Fork the child (the parent's world is copied as it is at this moment)."""
        self.shared.new_child()
        proc = FORK.Process(target=self._main, name="emitter", daemon=True)
        proc.start()
        return proc

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        s = self.settings
        client = self.fake.client(self.session, **client_options())
        source = ObservedSource(
            self.shared,
            client,
            self.groups,
            sweep_interval=self.sweep_interval * SPEED,
            own_client=True,
            timer=ScaledClock(SPEED),
        )
        monitor = create_monitor(s, source, ObservedSink(self.shared, s.kafka, s.emitter.instance))
        monitor.on_commit = self._count
        if self.drop:
            self.fake.faults.drop_updates(self.drop, seed=self.seed)
        n = len(self.groups)
        ready = (lambda: self.shared.following.value >= n) if self.post_after_backfill else (lambda: monitor.ready)
        posting = asyncio.create_task(self.posts.post(self.fake, self.shared, self.rate, ready)) if self.rate else None
        try:
            await run(s, monitor)  # the CLI's own path: SIGTERM/SIGINT drain, /readyz when http_port is set
        finally:
            if posting is not None:
                posting.cancel()
        if self.accepted_path is not None:  # the tracker lists no groups publicly: its cursor map is the list
            accepted = {gid: monitor.tracker.cursor(gid).to_bytes().decode() for gid in monitor.tracker._cursors}
            self.accepted_path.write_text(json.dumps(accepted))

    def _count(self, batch: Batch) -> None:
        self.shared.committed.value += len(batch.events)
        if self.shared.following.value >= len(self.groups):
            self.shared.backfilling.value = int(any(e.source is Source.BACKFILL for e in batch.events))


def wait_for(predicate: Callable[[], bool], within: float, what: str, *, proc: BaseProcess | None = None) -> None:
    """Poll `predicate` every millisecond or so; ScenarioError after `within` s or if `proc` died first."""
    deadline = time.monotonic() + within
    while not predicate():
        if proc is not None and not proc.is_alive():
            raise ScenarioError(f"the emitter exited (code {proc.exitcode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise ScenarioError(f"{what}: not within {within:.0f} s")
        time.sleep(0.001)


def sigkill(proc: BaseProcess) -> None:
    """SIGKILL a child and reap it."""
    if proc.pid is not None and proc.is_alive():
        os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)


# --- finishing in-process -------------------------------------------------------------------------------------


def accepted_all(monitor: Monitor, expected: Mapping[int, Sequence[int]]) -> bool:
    """Whether the monitor has accepted (so a drain will commit) every expected id of every group."""
    for gid, ids in expected.items():
        cursor = monitor.tracker.cursor(gid)
        if any(not cursor.is_published(i) for i in ids):
            return False
    return True


async def finish(
    fake: FakeTelegram,
    settings: Settings,
    session: str,
    groups: list[str | int],
    expected: Mapping[int, Sequence[int]],
    *,
    within: float = 120.0,
) -> Monitor:
    """Restart the emitter in this process on the parent's world until it accepted `expected`, then drain it.

    Nothing is posted meanwhile; a short sweep interval lets it find what live delivery missed.
    """
    return await finish_when(
        fake, settings, session, groups, lambda m: accepted_all(m, expected), what="publish everything", within=within
    )


async def finish_when(
    fake: FakeTelegram,
    settings: Settings,
    session: str,
    groups: list[str | int],
    done: Callable[[Monitor], bool],
    *,
    what: str,
    within: float = 120.0,
    on_commit: Callable[[Batch], None] | None = None,
    give_up: bool = False,
) -> Monitor:
    """Restart the emitter in this process on the parent's world until `done(monitor)` holds, then drain it.

    `on_commit` sees every batch once Kafka committed it (a predicate on what was *committed*, not only
    accepted, needs it). Past `within` seconds: ScenarioError, or with `give_up` a drain all the same, so
    the caller can count what did arrive. Nothing is posted meanwhile; a short sweep interval lets it find
    what live delivery missed.
    """
    client = fake.client(session, **client_options())
    source = TelegramSource(client, groups, sweep_interval=0.5 * SPEED, own_client=True, timer=ScaledClock(SPEED))
    monitor = create_monitor(settings, source, KafkaSink(settings.kafka, settings.emitter.instance))
    monitor.on_commit = on_commit
    task = asyncio.create_task(monitor.run())
    try:
        deadline = time.monotonic() + within
        while not done(monitor):
            if task.done():
                raise ScenarioError(f"the restarted emitter ended before it could {what}: {task.exception()!r}")
            if time.monotonic() > deadline:
                if give_up:
                    log(f"the restarted emitter did not {what} within {within:.0f} s")
                    break
                raise ScenarioError(f"the restarted emitter did not {what} within {within:.0f} s")
            await asyncio.sleep(0.1)
    finally:
        monitor.request_stop()  # the drain commits everything accepted
        await asyncio.wait_for(task, 60)
    return monitor


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def machine() -> list[str]:
    """What the results depend on: cores, CPU, memory, Python, load."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown",
    )
    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line), "0")
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    kafka = re.search(r"<kafka.version>(.*)</kafka.version>", (ROOT / "dev" / "pom.xml").read_text())
    libraries = " / ".join(importlib.metadata.version(name) for name in ("aiokafka", "telethon", "fastavro"))
    return [
        f"cores (nproc): {os.cpu_count()}",
        f"CPU: {cpu}",
        f"RAM: {int(mem) / 1024 / 1024:.1f} GiB",
        f"kernel: {platform.release()}",
        f"Python: {platform.python_version()}",
        f"Kafka broker (dev/kafka): {kafka.group(1) if kafka else 'unknown'}",
        f"aiokafka / Telethon / fastavro: {libraries}",
        f"load average at the end (1/5/15 min): {load}",
    ]
