"""Scenario 7: edits, deletes and reaction changes made while the emitter was down reach a consumer once.

Twice, once per way of stopping: a forked child backfills a broadcast channel, a supergroup and a basic group
(no live posts) until Kafka holds every group's backfill and update position, and is stopped by SIGTERM (it
drains and exits 0) or SIGKILL. The child worked on a copy of the world; the parent then edits, deletes and
reacts in its own copy (the truth) without pushing updates, and restarts the emitter in-process on a NEW
StringSession, so nothing survives but what the child committed. It must publish every change exactly once:
catch-ups from the stored positions (Telegram keeps 100 updates: a group changed more answers "too long")
and the rescan on start (the only way to see reaction changes made while away).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from multiprocessing.process import BaseProcess
from typing import Any, Final

from aiokafka.admin import AIOKafkaAdminClient

from emitter.clock import ScaledClock
from emitter.protocols import Batch
from emitter.records import EventType
from emitter.settings import Settings
from reliability.common import (
    SPEED,
    Broker,
    Child,
    LivePosts,
    Row,
    ScenarioError,
    Shared,
    committed_cursors,
    finish_when,
    fresh_settings,
    log,
    new_ids_by_group,
    read_committed,
    sigkill,
    topics_of,
)
from tests.change_world import Key, change_kind, flat, make_changes, three_groups
from tests.faketelegram import FakeTelegram

KINDS: Final = ("EDIT", "DELETE", "REACTIONS")
HISTORY: Final = 800
"""Messages per group; the changes fall among each group's newest `POOL` (inside the 500-message rescan)."""
POOL: Final = 400
RESTART_WITHIN: Final = 90.0
"""Seconds the restarted emitter has to commit every change (a few suffice); past them, the rest counts as lost."""
GRACE: Final = 5.0
"""Seconds past `emitter.drain_timeout` the parent waits for a SIGTERMed child to exit."""


def _world(seed: int) -> tuple[FakeTelegram, list[Any], list[str | int]]:
    fake = FakeTelegram(seed=seed, monotonic=ScaledClock(SPEED).monotonic)
    chats, groups = three_groups(fake, HISTORY)
    return fake, chats, groups


async def _wait_committed(settings: Settings, last: Mapping[int, int], proc: BaseProcess, within: float) -> None:
    """Until Kafka holds every group's cursor at its last message, with an update position to catch up from."""
    deadline = time.monotonic() + within
    while True:
        # Only once the child created the cursor topic: reading a missing one raises CancelledError (aiokafka's
        # consumer stopped before its coordinator task ran; the emitter's reader assumes it exists).
        cursors = await committed_cursors(settings) if await _topic_exists(settings) else {}
        if all(g in cursors and cursors[g].cursor >= n and cursors[g].pts is not None for g, n in last.items()):
            return
        if not proc.is_alive():
            raise ScenarioError(f"the emitter exited (code {proc.exitcode}) before its backfill was committed")
        if time.monotonic() > deadline:
            raise ScenarioError(f"the backfill and positions were not committed within {within:.0f} s")
        await asyncio.sleep(0.3)


async def _topic_exists(settings: Settings) -> bool:
    """Whether the cursor topic exists yet (`emitter.cursor_reader.read_cursors` cannot read a missing one)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        return settings.kafka.cursor_topic in await admin.list_topics()
    finally:
        await admin.close()


def _stop(proc: BaseProcess, how: str, settings: Settings) -> bool:
    """Stop the child; for SIGTERM, whether it drained and exited 0 within the bound."""
    if how == "SIGKILL":
        sigkill(proc)
        return True
    try:
        os.kill(proc.pid or 0, signal.SIGTERM)
        proc.join(settings.emitter.drain_timeout + GRACE)
        return bool(proc.exitcode == 0)
    finally:
        sigkill(proc)


def _round(broker: Broker, row: Row, how: str, plan: Mapping[str, int], seed: int) -> str:
    """One stop and restart; adds its change records to the tally and returns its cell of the details."""
    fake, chats, groups = _world(seed)
    peers = [fake.peer_id(c) for c in chats]
    settings = fresh_settings(broker.bootstrap)
    row.topics += topics_of(settings)
    shared = Shared()
    child = Child(fake, settings, fake.new_session().save(), groups, shared, LivePosts(peers, seed, 0), rate=0)
    proc = child.start()
    try:
        last = {p: fake.message_ids(p)[-1] for p in peers}
        asyncio.run(_wait_committed(settings, last, proc, 180))
    except BaseException:
        sigkill(proc)
        raise
    drained = _stop(proc, how, settings)
    if how == "SIGTERM":
        row.check("SIGTERM: the child drained and exited 0 within emitter.drain_timeout", drained)
    backfilled = {p: fake.message_ids(p) for p in peers}
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    expected = make_changes(fake, chats, plan, rng, pool=POOL, push=False)
    committed: set[tuple[int, str, int]] = set()

    def on_commit(batch: Batch) -> None:
        for e in batch.events:
            if e.event_type is not EventType.NEW:
                committed.add((e.group.id, change_kind(e.event_type, e.change), e.message_id))

    wanted = flat(expected)
    monitor = asyncio.run(
        finish_when(
            fake,
            settings,
            fake.new_session().save(),
            groups,
            lambda _: wanted <= committed,
            what="commit every change",
            within=RESTART_WITHIN,
            on_commit=on_commit,
            give_up=True,  # what is missing shows as lost
        )
    )
    consumed = asyncio.run(read_committed(broker.bootstrap, settings.kafka.topic))
    got: dict[Key, list[int]] = defaultdict(list)
    for c in consumed:
        r = c.record()
        if r["event_type"] != EventType.NEW:
            got[(r["group"]["id"], change_kind(r["event_type"], r["change"]))].append(r["message_id"])
    for key in expected.keys() | got.keys():
        row.tally.add(expected.get(key, ()), got.get(key, []))
    news = new_ids_by_group(consumed)
    row.check(f"{how}: every NEW once", all(sorted(news.get(p, [])) == ids for p, ids in backfilled.items()))
    stats: Any = getattr(monitor.source, "stats", None)
    log(f"changes after {how}: {sum(len(v) for v in got.values())} change records; source {stats}")
    found = f" (catch-ups {stats.catch_ups}, too long {stats.too_long}, rescans {stats.rescans})" if stats else ""
    return f"{how}: " + ", ".join(_cell(kind, expected, got) for kind in KINDS) + found


def _cell(kind: str, expected: Mapping[Key, Sequence[int]], got: Mapping[Key, Sequence[int]]) -> str:
    """'EDIT 200/200' (received/sent), then lost and duplicated when there are any."""
    sent = {(g, i) for (g, k), ids in expected.items() if k == kind for i in ids}
    seen = Counter((g, i) for (g, k), ids in got.items() if k == kind for i in ids)
    lost, dup = len(sent - seen.keys()), sum(n - 1 for n in seen.values())
    extra = (f" {lost} lost" if lost else "") + (f" {dup} dup" if dup else "")
    return f"{kind} {sum(seen.values())}/{len(sent)}{extra}"


def run(broker: Broker, row: Row, *, seed: int, quick: bool) -> None:
    """SIGTERM, then SIGKILL a backfilled emitter; change its world while it is down; restart and count."""
    del quick  # full size takes seconds, and only it takes a group past Telegram's 100 updates ("too long")
    plan = {"EDIT": 200, "DELETE": 100, "REACTIONS": 50}
    cells = [_round(broker, row, how, plan, seed + n) for n, how in enumerate(("SIGTERM", "SIGKILL"))]
    row.notes.append("; ".join(cells) + f" (3 groups of {HISTORY}, new session on restart)")
