"""Scenario 4: Telegram's faults together, in one long run of one emitter.

- 10 % of live updates dropped on their way to the client, for the whole run;
- one disconnect of the whole network (`set_online(False)`) for 30 s of wall time (3 s with --quick);
- FloodWaits of 5 s and 120 s during a backfill: with the production `flood_sleep_threshold` (60 s) Telethon
  sleeps the 5 s one itself, in real time; the 120 s one reaches the emitter, whose injected sleep waits it
  out at 1/60 scale (2 s of wall time);
- lost access to one group (it went private): that group is judged on the messages it held before the loss,
  and must be reported failed while the others go on;
- a basic group that migrates to a supergroup: both the old and the new group's ids must arrive.

The emitter runs in this process (nothing is killed), with a client built like `make_client` builds it.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from typing import Any

from emitter.app import create_monitor
from emitter.clock import ScaledClock
from emitter.kafka_sink import KafkaSink
from emitter.monitor import Monitor
from emitter.telegram_client import client_options
from emitter.telegram_source import TelegramSource
from reliability.common import (
    Broker,
    Row,
    ScenarioError,
    accepted_all,
    fresh_settings,
    log,
    new_ids_by_group,
    read_committed,
    topics_of,
)
from tests.faketelegram import FakeTelegram

SPEED = 60
"""Telegram seconds per wall second for the request gateway (pacing and FloodWaits)."""
OUTAGE = 30.0
"""Seconds of wall time the network is down (a tenth of it with --quick)."""
SWEEP_INTERVAL = 5.0
"""Shorter than the 30 s default, so a run of about a minute sees several timed sweeps."""


async def _until(predicate: Any, within: float, what: str, task: asyncio.Task[Any]) -> None:
    """Wait for `predicate()`; ScenarioError after `within` s or if the emitter's task ended."""
    deadline = time.monotonic() + within
    while not predicate():
        if task.done():
            raise ScenarioError(f"the emitter stopped while waiting for {what}: {task.exception()!r}")
        if time.monotonic() > deadline:
            raise ScenarioError(f"{what}: not within {within:.0f} s")
        await asyncio.sleep(0.05)


class Poster:
    """Posts live messages into a changing set of groups, about `rate` a second, until stopped."""

    def __init__(self, fake: FakeTelegram, targets: list[int], rate: float, seed: int) -> None:
        self.fake, self.targets, self.rate = fake, targets, rate
        self.rng = random.Random(seed)  # noqa: S311 - reproducible traffic
        self.count = 0
        self.stopped = False

    async def run(self) -> None:
        """Post until `stopped`; `targets` may change in between (a migration, a lost group)."""
        while not self.stopped:
            self.fake.post(self.rng.choice(self.targets), f"live {self.count}")
            self.count += 1
            await asyncio.sleep(1 / self.rate)


def run(broker: Broker, row: Row, *, seed: int, quick: bool) -> None:
    """One emitter, every Telegram fault at once; every message delivered exactly once."""
    asyncio.run(_run(broker, row, seed=seed, quick=quick))


async def _run(broker: Broker, row: Row, *, seed: int, quick: bool) -> None:
    outage = OUTAGE / 10 if quick else OUTAGE
    scale = 1 if quick else 3
    fake = FakeTelegram(seed=seed, monotonic=ScaledClock(SPEED).monotonic)
    busy = fake.add_channel("Busy", username="busy", megagroup=True)
    fake.post_many(busy, 1_000 * scale)
    limited = fake.add_channel("Limited", username="limited")
    fake.post_many(limited, 2_500 * scale)
    doomed = fake.add_channel("Doomed", username="doomed", megagroup=True)
    fake.post_many(doomed, 300 * scale)
    basic = fake.add_chat("Growing")
    fake.post_many(basic, 200 * scale)
    ids = {name: fake.peer_id(p) for name, p in (("busy", busy), ("limited", limited), ("doomed", doomed))}
    ids["basic"] = fake.peer_id(basic)

    # FloodWaits on the 6th and the 20th history request of the rate-limited channel's backfill.
    def nth_history_of_limited(n: int) -> Any:
        counter = itertools.count(1)
        return lambda req: getattr(req.peer, "channel_id", None) == limited.id and next(counter) == n

    fake.faults.flood_wait("GetHistoryRequest", 5, when=nth_history_of_limited(6), times=1)
    fake.faults.flood_wait("GetHistoryRequest", 120, when=nth_history_of_limited(20), times=1)
    fake.faults.drop_updates(0.10, seed=seed)

    settings = fresh_settings(broker.bootstrap)
    row.topics += topics_of(settings)
    client = fake.client(**client_options())
    specs: list[str | int] = ["@busy", "@limited", "@doomed", ids["basic"]]
    source = TelegramSource(
        client, specs, sweep_interval=SWEEP_INTERVAL * SPEED, own_client=True, timer=ScaledClock(SPEED)
    )
    monitor = create_monitor(settings, source, KafkaSink(settings.kafka, settings.emitter.instance))
    task = asyncio.create_task(monitor.run())
    poster = Poster(fake, [ids["busy"]] * 5 + [ids["limited"], ids["doomed"], ids["basic"], ids["basic"]], 40.0, seed)
    posting = asyncio.create_task(poster.run())
    try:
        expected = await _script(
            fake, monitor=monitor, source=source, poster=poster, task=task, ids=ids, outage=outage, row=row
        )
    finally:
        poster.stopped = True
        await posting
        monitor.request_stop()
        await asyncio.wait_for(task, 60)

    got = new_ids_by_group(await read_committed(broker.bootstrap, settings.kafka.topic))
    row.tally.add_all(expected, got)
    waits = source.gateway.stats.flood_waits["messages.GetHistory"]
    row.check("both FloodWaits were held by the gateway", waits >= 2 and source.stats.flood_wait_seconds >= 125)
    row.check("the 5 s FloodWait fired", sum(1 for f in fake.faults.fired if "FLOOD_WAIT_5" in f.message) == 1)
    row.notes.append(
        f"{fake.faults.dropped_updates} updates dropped, {source.stats.reconnects} reconnect(s), "
        f"{source.stats.sweeps} sweeps, {poster.count} live posts; FloodWaits of 5 s and 120 s held by the "
        f"gateway at 1/{SPEED} scale ({waits} history waits); outage {outage:.0f} s of wall time"
    )


async def _script(
    fake: FakeTelegram,
    *,
    monitor: Monitor,
    source: TelegramSource,
    poster: Poster,
    task: asyncio.Task[Any],
    ids: dict[str, int],
    outage: float,
    row: Row,
) -> dict[int, list[int]]:
    """The faults, one after the other while traffic flows; returns what a consumer must see per group."""
    expected: dict[int, list[int]] = {}
    await _until(lambda: monitor.ready, 60, "the emitter to be ready", task)
    await _until(lambda: len(fake.faults.fired) >= 2, 120, "both FloodWaits", task)

    # Lost access: first let the emitter publish what the group holds, then take the group away.
    poster.targets = [t for t in poster.targets if t != ids["doomed"]]
    expected[ids["doomed"]] = fake.message_ids(ids["doomed"])
    await _until(lambda: accepted_all(monitor, {ids["doomed"]: expected[ids["doomed"]]}), 120, "the group", task)
    fake.revoke_access(ids["doomed"])
    log("access to one group revoked")
    await _until(lambda: ids["doomed"] in monitor.stats.failed, 60, "the lost group to be reported", task)
    row.check("the lost group is reported failed", "ChannelPrivate" in monitor.stats.failed[ids["doomed"]])
    row.check("/readyz names the lost group", ids["doomed"] in monitor.status()["failed"])

    # Migration: later posts go to the new supergroup.
    supergroup = fake.peer_id(fake.migrate(ids["basic"]))
    poster.targets = [supergroup if t == ids["basic"] else t for t in poster.targets]
    log("basic group migrated to a supergroup")
    await asyncio.sleep(2.0)

    # The whole network goes away; posts go on meanwhile (nobody receives their updates).
    fake.set_online(False)
    seen_down = False
    down_until = time.monotonic() + outage
    while time.monotonic() < down_until:
        seen_down = seen_down or not monitor.status().get("source_connected", True)
        await asyncio.sleep(0.1)
    fake.set_online(True)
    log(f"network back after {outage:.0f} s")
    # The transport's real state, not Telethon's "not disconnected by the user" (which stays true throughout).
    row.notes.append(f"/readyz source_connected during the outage: {'false seen' if seen_down else 'stayed true'}")
    row.check("/readyz source_connected was false during the outage", seen_down)
    await _until(lambda: monitor.status().get("source_connected", False), 60, "Telegram to reconnect", task)
    row.notes.append("/readyz source_connected true again after the outage")
    await asyncio.sleep(3.0)

    poster.stopped = True
    for name in ("busy", "limited", "basic"):
        expected[ids[name]] = fake.message_ids(ids[name])
    expected[supergroup] = fake.message_ids(supergroup)
    others = {g: v for g, v in expected.items() if g != ids["doomed"]}
    await _until(lambda: accepted_all(monitor, others), 120, "every message of the healthy groups", task)
    row.check("only the lost group failed", set(monitor.stats.failed) == {ids["doomed"]})
    return expected
