"""What every scenario shares: sizes, the broker, fresh topics, the emitter's wiring, RSS and statistics."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from opentelemetry.trace import Tracer
from telethon import TelegramClient

from emitter.app import create_monitor
from emitter.kafka_sink import KafkaSink
from emitter.protocols import Batch, MessageSource
from emitter.settings import Settings, load_settings
from emitter.telegram_client import client_options
from emitter.telegram_gateway import RequestGateway
from emitter.telegram_source import TelegramSource
from tests.faketelegram import FakeTelegram

ROOT: Final = Path(__file__).resolve().parents[1]
MB: Final = 1_000_000
"""Throughput in MB/s uses decimal megabytes, as Kafka's ProducerPerformance prints them."""
MIB: Final = 1024 * 1024
"""Memory in MB uses binary megabytes (what `ps` and /proc report in kB of 1024 bytes)."""

_WORDS: Final = (
    "kafka", "cursor", "avro", "telegram", "backfill", "partition", "offset", "schema", "replica", "transaction",
    "broker", "consumer", "group", "channel", "message", "the", "a", "of", "and", "is", "to", "in", "we", "see",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each scenario runs; `--quick` swaps in tiny ones."""

    backfill: int
    channels: int
    latency_rates: tuple[int, ...]
    latency_seconds: float
    memory: int
    memory_telegram: int
    cold_groups: int
    efficiency: int
    profile: int
    encode: int
    export: int


DEFAULT_SIZES: Final = Sizes(
    backfill=100_000,
    channels=3,
    latency_rates=(200, 2_000),
    latency_seconds=10.0,
    memory=1_000_000,
    memory_telegram=1_000_000,
    cold_groups=10_000,
    efficiency=10_000,
    profile=100_000,
    encode=20_000,
    export=1_000_000,
)
QUICK_SIZES: Final = Sizes(
    backfill=2_000,
    channels=3,
    latency_rates=(200, 2_000),
    latency_seconds=1.0,
    memory=20_000,
    memory_telegram=5_000,
    cold_groups=500,
    efficiency=1_000,
    profile=2_000,
    encode=2_000,
    export=5_000,
)


@dataclass
class Context:
    """One bench run's options, and what scenarios leave for the report besides their rows."""

    bootstrap: str
    runs: int
    sizes: Sizes
    quick: bool = False
    notes: dict[str, list[str]] = field(default_factory=dict)
    """How each scenario measured its figures, by scenario name (the report's method section)."""
    sections: dict[str, str] = field(default_factory=dict)
    """Extra report sections (title → markdown), such as the hot path."""
    topics: list[str] = field(default_factory=list)
    """Topics the running scenario created; deleted when it ends (and nothing else is)."""

    def note(self, scenario: str, text: str) -> None:
        """Add a line to the scenario's method notes."""
        self.notes.setdefault(scenario, []).append(text)

    def fresh_settings(self, **emitter: Any) -> Settings:
        """Settings for the local broker with new uuid-named topics and identity (emitter keys override)."""
        tag = uuid.uuid4().hex[:10]
        topic, cursors = f"bench-{tag}", f"bench-cursors-{tag}"
        self.topics += [topic, cursors]
        return load_settings(
            None,
            {
                "kafka": {
                    "bootstrap_servers": self.bootstrap,
                    "topic": topic,
                    "cursor_topic": cursors,
                    "transactional_id_prefix": f"bench-{tag}",
                },
                "emitter": {"instance": f"bench-{tag}", **emitter},
            },
        )

    def fresh_topic(self) -> str:
        """A new uuid topic name, registered for deletion."""
        name = f"bench-{uuid.uuid4().hex[:10]}"
        self.topics.append(name)
        return name


def log(message: str) -> None:
    """Progress on stderr, so that stdout carries the table alone."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values: Iterable[float]) -> float:
    """The median (NaN for no values, so a failed measurement shows instead of raising)."""
    items = list(values)
    return statistics.median(items) if items else float("nan")


def reachable(address: str) -> bool:
    """Whether something accepts TCP connections at host:port."""
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def ensure_broker(bootstrap: str) -> None:
    """Start the local broker with dev/kafka unless something already answers at `bootstrap`."""
    if reachable(bootstrap):
        return
    log(f"nothing answers at {bootstrap}: starting the local broker (dev/kafka start)")
    subprocess.run([str(ROOT / "dev" / "kafka"), "start"], check=True, timeout=600)  # noqa: S603 - our own script
    if not reachable(bootstrap):
        raise RuntimeError(f"Kafka is not reachable at {bootstrap} after dev/kafka start")


async def create_topic(bootstrap: str, name: str, partitions: int, *, compact: bool = False) -> None:
    """Create one topic (the broker does not auto-create) and wait until its leaders are known."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        configs = {"cleanup.policy": "compact"} if compact else {}
        response = await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)])
        for topic, code, message in response.topic_errors:
            if code not in (0, 36):  # 36: already exists
                raise RuntimeError(f"cannot create topic {topic}: Kafka error {code} ({message})")
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: Sequence[str]) -> None:
    """Delete the bench's own topics (unknown ones are ignored), so repeated runs do not fill the disk."""
    if not names:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(Exception):  # a topic that was never created is fine
            await admin.delete_topics(list(names))
    finally:
        await admin.close()


# --- memory -------------------------------------------------------------------------------------------------


def rss_bytes() -> int:
    """This process's resident set size (psutil if installed, else /proc/self/status)."""
    try:
        psutil = importlib.import_module("psutil")  # optional, and untyped: hence no plain import
        return int(psutil.Process().memory_info().rss)
    except ImportError:
        return _status_kb("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """The kernel's high-water mark of this process's RSS (VmHWM)."""
    return _status_kb("VmHWM") * 1024


def _status_kb(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} missing from /proc/self/status")


class RssSampler:
    """Samples RSS every `interval` seconds on a thread: the event loop may be too busy to sample on time."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(rss_bytes())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(rss_bytes())
            self._stop.wait(self.interval)

    @property
    def peak(self) -> int:
        """The highest sample."""
        return max(self.samples, default=0)


# --- the fake world and the emitter's real path -------------------------------------------------------------


def message_text(i: int) -> str:
    """Deterministic text of 3 to 40 words (about 130 characters on average), like a chat message."""
    rng = random.Random(i)
    return " ".join(rng.choices(_WORDS, k=rng.randint(3, 40)))


def build_world(
    channels: int, total: int, *, seed: int = 7, prefix: str = "bench", **world: Any
) -> tuple[FakeTelegram, list[str]]:
    """A fake Telegram with `total` messages spread over `channels` supergroups; returns it and the usernames.

    Answers travel as bytes (the fake's default), so Telethon parses every page as it would from the network.
    `world` goes to FakeTelegram (the remote fake's address, say).
    """
    # Throughput of our code: Telegram's limits are the politeness scenario's subject, not this one's.
    fake = FakeTelegram(seed=seed, rate_limits=None, **world)
    names = []
    per = -(-total // channels)
    for i in range(channels):
        name = f"{prefix}_{i}"
        channel = fake.add_channel(f"Bench {i}", username=name, megagroup=True)
        fake.post_many(channel, min(per, total - i * per), text=message_text)
        names.append("@" + name)
    return fake, names


@dataclass(slots=True)
class Backfill:
    """One backfill through the real path, seen through the monitor's commit hook."""

    records: int
    seconds: float
    """From `Monitor.run()` (sink start, cursor restore, connect) to the end of the last commit."""
    cpu_seconds: float
    batch_sizes: list[int]

    @property
    def rate(self) -> float:
        """Records per second."""
        return self.records / self.seconds if self.seconds > 0 else float("nan")


async def telegram_backfill(
    fake: FakeTelegram | TelegramClient,
    groups: Sequence[str],
    settings: Settings,
    *,
    tracer: Tracer | None = None,
    on_commit: Callable[[Batch], None] | None = None,
) -> Backfill:
    """Backfill `groups` of the fake world into Kafka the way `emitter backfill` does, and time it.

    The monitor is built by `emitter.app.create_monitor` so batch size, timeout and in-flight bound are the
    production defaults; only the source is pointed at the fake world: an in-process one, or a client of the
    remote fake's (`bench.remote_fake`, over TCP).
    """
    client = fake.client(**client_options()) if isinstance(fake, FakeTelegram) else fake
    # Throughput of the emitter's own code, not of Telegram's limits: the gateway sends without pacing here
    # (the politeness scenario measures pacing against the fake's limits).
    source = TelegramSource(
        client, list(groups), follow=False, own_client=True, tracer=tracer, gateway=RequestGateway(paced=False)
    )
    return await timed_backfill(source, settings, tracer=tracer, on_commit=on_commit)


async def timed_backfill(
    source: MessageSource,
    settings: Settings,
    *,
    tracer: Tracer | None = None,
    on_commit: Callable[[Batch], None] | None = None,
) -> Backfill:
    """Run `source` to its end through a monitor from `create_monitor` into a KafkaSink, timed.

    From `Monitor.run()` (sink start and topic creation, producer init, cursor restore, source start) to the
    end of the last commit.
    """
    sink = KafkaSink(settings.kafka, settings.emitter.instance, tracer=tracer)
    monitor = create_monitor(settings, source, sink)
    sizes: list[int] = []
    last = 0.0

    def committed(batch: Batch) -> None:
        nonlocal last
        last = time.perf_counter()
        sizes.append(len(batch.events))
        if on_commit is not None:
            on_commit(batch)

    monitor.on_commit = committed
    cpu, started = time.process_time(), time.perf_counter()
    stats = await monitor.run()
    if stats.failed:
        raise RuntimeError(f"backfill failed: {stats.failed}")
    return Backfill(stats.published, last - started, time.process_time() - cpu, sizes)


async def read_values(bootstrap: str, topic: str) -> list[tuple[bytes, bytes]]:
    """(key, value) of every committed record of `topic`, read after the timed part."""
    from tests.integration.kafka_read import read_committed  # noqa: PLC0415 - keeps test helpers out of imports

    return [(key, value) for key, value in await read_committed(bootstrap, topic, raw=True)]


def run(coro: Any) -> Any:
    """`asyncio.run`, one fresh loop per measurement (nothing lingers between scenarios)."""
    return asyncio.run(coro)
