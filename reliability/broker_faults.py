"""Scenario 3: the broker is killed (kill -9) and restarted several times during a large backfill with live
traffic. The emitter must keep running, report the outage on /readyz (503) and recover (200), and in the end
a read_committed consumer sees every message exactly once.

The emitter runs in a forked child through `emitter.app.run` with `telemetry.http_port` set, as the CLI runs
it; the parent polls /readyz on a thread while it kills and restarts the broker.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from multiprocessing.process import BaseProcess

from emitter.clock import ScaledClock
from reliability.common import (
    SPEED,
    Broker,
    Child,
    LivePosts,
    Row,
    Shared,
    free_port,
    fresh_settings,
    log,
    new_ids_by_group,
    read_committed,
    sigkill,
    topics_of,
    wait_for,
)
from tests.faketelegram import FakeTelegram

NOTICE_WITHIN = 15.0
"""Seconds after a kill by which /readyz must answer 503; the broker stays down that long if it does not."""


class Readiness:
    """/readyz polled every 100 ms on a thread: the statuses seen, and how often they flipped."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.seen: list[int | None] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="readyz", daemon=True)

    def __enter__(self) -> Readiness:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def get(self, path: str) -> tuple[int | None, bytes]:
        """Status and body of GET `path` (None when nothing answers)."""
        try:
            with urllib.request.urlopen(self.base + path, timeout=2) as response:  # noqa: S310 - http://127.0.0.1 only
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            return e.code, b""
        except OSError:
            return None, b""

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.seen.append(self.get("/readyz")[0])
            self._stop.wait(0.1)

    @property
    def last(self) -> int | None:
        """The latest status."""
        return self.seen[-1] if self.seen else None

    def flips(self) -> tuple[int, int]:
        """(200 → 503, 503 → 200) transitions seen after the first 200: start-up is no outage."""
        statuses = [s for s in self.seen if s in (200, 503)]
        statuses = statuses[statuses.index(200) :] if 200 in statuses else []
        pairs = list(itertools.pairwise(statuses))
        return pairs.count((200, 503)), pairs.count((503, 200))


def poll(predicate: Callable[[], bool], within: float) -> bool:
    """Whether `predicate` held within `within` seconds (polled every 10 ms)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _outage(broker: Broker, ready: Readiness, rng: random.Random, proc: BaseProcess) -> tuple[float | None, float]:
    """Kill the broker, keep it down a few seconds (longer while /readyz does not notice), restart it.

    Returns when /readyz said 503 (None: not within NOTICE_WITHIN) and how long until it said 200 again.
    """
    down_at = time.monotonic()
    broker.kill()
    time.sleep(rng.uniform(2.0, 5.0))
    noticed = poll(lambda: ready.last == 503, NOTICE_WITHIN - (time.monotonic() - down_at))
    noticed_after = time.monotonic() - down_at if noticed else None
    broker.start()
    wait_for(lambda: ready.last == 200, 120, "/readyz 200 after the restart", proc=proc)
    return noticed_after, time.monotonic() - down_at


def _world(seed: int, history: int) -> tuple[FakeTelegram, list[str | int], list[int]]:
    """A channel with a long history to backfill, and a supergroup that mostly gets the live traffic."""
    fake = FakeTelegram(seed=seed, monotonic=ScaledClock(SPEED).monotonic)
    archive = fake.add_channel("Archive", username="archive")
    fake.post_many(archive, history)
    chat = fake.add_channel("Chat", username="chat", megagroup=True)
    fake.post_many(chat, 100)
    return fake, ["@archive", "@chat"], [fake.peer_id(archive), fake.peer_id(chat)]


def run(broker: Broker, row: Row, *, seed: int, quick: bool) -> None:
    """Backfill `history` messages (plus live posts) while the broker is killed `kills` times."""
    history, kills = (5_000, 1) if quick else (50_000, 3)
    row.scenario += f" x{kills}"
    rng = random.Random(seed)  # noqa: S311 - reproducible kill moments
    fake, groups, peers = _world(seed, history)
    port = free_port()
    settings = fresh_settings(broker.bootstrap, telemetry={"http_port": port, "http_host": "127.0.0.1"})
    row.topics += topics_of(settings)
    shared = Shared()
    posts = LivePosts([peers[1]] * 3 + [peers[0]], seed)  # live traffic mostly in the chat, some in the archive
    proc = Child(fake, settings, fake.new_session().save(), groups, shared, posts, rate=50.0).start()
    noticed_in: list[float | None] = []
    outages: list[float] = []
    try:
        with Readiness(port) as ready:
            for k in range(1, kills + 1):
                # Spread the kills over the backfill: each at a seeded point near k/(kills+1) of it.
                at = int(history * (k / (kills + 1) + rng.uniform(-0.05, 0.05)))
                wait_for(lambda at=at: shared.committed.value >= at, 300, f"{at} messages committed", proc=proc)
                noticed, outage = _outage(broker, ready, rng, proc)
                log(f"broker back; {shared.committed.value} messages committed so far")
                noticed_in.append(noticed)
                outages.append(outage)
            wait_for(lambda: shared.following.value >= len(groups), 300, "the backfill to end", proc=proc)
            time.sleep(1.0)  # live traffic after the last outage too
            shared.stop_posting.value = 1
            wait_for(lambda: bool(shared.posting_done.value), 30, "the live posts to stop", proc=proc)
            posts.replay(fake, shared)
            expected = {p: fake.message_ids(p) for p in peers}
            total = sum(map(len, expected.values()))
            wait_for(lambda: shared.committed.value >= total, 180, f"{total} messages committed", proc=proc)
            row.check("/readyz 200 at the end", ready.last == 200)
            metrics = ready.get("/metrics")[1].decode()
            down, up = ready.flips()
        row.check("the emitter kept running (no exit)", proc.is_alive())
        os.kill(proc.pid or 0, signal.SIGTERM)
        proc.join(60)
        row.check("exit code 0 after SIGTERM", proc.exitcode == 0)
    finally:
        sigkill(proc)
    got = new_ids_by_group(asyncio.run(read_committed(broker.bootstrap, settings.kafka.topic)))
    row.tally.add_all(expected, got)
    row.check(f"/readyz 503 within {NOTICE_WITHIN:.0f} s of every kill", None not in noticed_in)
    failures = re.search(r"^emitter_transaction_failures_total (\S+)$", metrics, re.MULTILINE)
    retried = f"{float(failures.group(1)):.0f}" if failures else "?"
    row.notes += [
        f"/readyz went 503 {down}x and back to 200 {up}x",
        "503 seen " + ", ".join("never" if s is None else f"after {s:.1f} s" for s in noticed_in),
        "kill → 200 again " + ", ".join(f"{s:.0f} s" for s in outages),
        f"failed transactions retried: {retried}",
        f"{posts.replayed} live posts",
    ]
