"""Exactly-once under SIGKILL: an export of 10,000+ messages, the emitter killed at random moments."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
from pathlib import Path

from emitter.cursor import GroupCursor
from emitter.export_source import ExportSource
from tests.exports import make_export
from tests.integration.conftest import emitter_cmd
from tests.integration.kafka_read import new_ids_by_group, read_committed

KILLS = 4


async def _expected_ids(path: Path) -> dict[int, list[int]]:
    """Every message id of the export per group, ascending: what a consumer must see, once each."""
    out: dict[int, list[int]] = {}
    async with ExportSource(path) as source:
        for group in await source.groups():
            start = GroupCursor(group.id)
            out[group.id] = [e.message_id async for p in source.pages(group, lambda _gid, s=start: s) for e in p.events]
    return out


def _wait_for_line(log: Path, needle: str, skip: int, deadline: float, proc: subprocess.Popen[bytes]) -> bool:
    """Poll the log file (from byte `skip`) until `needle` shows up; False if the process ended first."""
    while time.monotonic() < deadline:
        if needle in log.read_text(errors="replace")[skip:]:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    raise AssertionError(f"{needle!r} not logged before the deadline")


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    kafka: str, cli_env: dict[str, str], names: dict[str, str], tmp_path: Path
) -> None:
    """Killed with SIGKILL 4 times mid-run and restarted: each id lands exactly once, in order, per group."""
    export = make_export(
        tmp_path / "export",
        chats=[("public_supergroup", 5, 6000), ("private_group", 7, 2500), ("public_channel", 6, 2500)],
        deleted_every=11,
        with_migrated=True,
    )
    expected = asyncio.run(_expected_ids(export))
    assert sum(len(v) for v in expected.values()) >= 10_000
    seed = int(os.environ.get("TEST_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    print(f"seed={seed}")
    args = ("run", "--source", "export", "--export-path", str(export), "--batch-size", "10", "--log-level", "DEBUG")
    log = tmp_path / "emitter.log"
    kills = 0
    runs = 0
    while True:
        runs += 1
        assert runs <= KILLS + 1, "more runs than kills: a restart made no progress"
        skip = log.stat().st_size if log.exists() else 0
        with log.open("ab") as err:
            proc = subprocess.Popen(emitter_cmd(*args), env=cli_env, stderr=err, stdout=subprocess.DEVNULL)
        if kills < KILLS and _wait_for_line(log, "committed", skip, time.monotonic() + 120, proc):
            time.sleep(rng.uniform(0.0, 0.03))  # a whole run takes well under a second now
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                print(f"run {runs}: killed")
                continue
        assert proc.wait(timeout=300) == 0, log.read_text()[-2000:]
        break
    assert kills >= 3, f"only {kills} kills landed before the emitter finished (seed {seed})"
    got = new_ids_by_group(asyncio.run(read_committed(kafka, names["topic"])))
    assert set(got) == set(expected)
    for group_id, ids in expected.items():
        assert got[group_id] == ids, f"group {group_id}: lost or duplicated ids"
    print(f"{kills} kills over {runs} runs; {sum(map(len, got.values()))} messages exactly once")
