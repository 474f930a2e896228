"""TgData's incremental delivery: poll_for_messages and on_new_message handlers, each message exactly once."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from emitter.protocols import MessageInfo
from emitter.tgdata import Row, TgData
from emitter.trackers import SqliteTracker
from tests.faketelegram import FakeTelegram, wait_until


class SetTracker:
    """A tgdata-style tracker that remembers every id (not cursor-based): TgData must work with it too."""

    def __init__(self) -> None:
        self.ids: set[tuple[int, int]] = set()

    async def is_processed(self, message_id: int, group_id: int) -> bool:
        return (group_id, message_id) in self.ids

    async def mark_processed(self, message_info: MessageInfo) -> None:
        self.ids.add((message_info.group_id, message_info.message_id))

    async def mark_batch_processed(self, messages: Sequence[MessageInfo]) -> None:
        for info in messages:
            await self.mark_processed(info)


@pytest.fixture
def fake() -> FakeTelegram:
    """A supergroup with 50 messages of history."""
    world = FakeTelegram(seed=3)
    world.post_many(world.add_channel("Busy", username="busy", megagroup=True), 50)
    return world


def ids_of(rows: pd.DataFrame) -> list[int]:
    return [int(i) for i in rows["MessageId"]]


async def post_in_waves(fake: FakeTelegram, total: int, wave: int = 100) -> None:
    """Post `total` live messages in waves, yielding between them so that polls and sweeps interleave."""
    for _ in range(total // wave):
        fake.burst("@busy", wave)
        await asyncio.sleep(0.02)


async def test_polling_delivers_a_burst_of_2000_exactly_once(fake: FakeTelegram) -> None:
    """2,000 messages posted while polling (10% of live updates dropped) reach the callback once each."""
    history = fake.message_ids("@busy")
    seen: list[int] = []
    polls_with_rows = 0

    async def collect(rows: pd.DataFrame) -> None:
        nonlocal polls_with_rows
        polls_with_rows += 1
        seen.extend(ids_of(rows))

    async with TgData(client=fake.client(flood_sleep_threshold=0)) as tg:
        polling = asyncio.create_task(tg.poll_for_messages("@busy", interval=0.05, callback=collect))
        await wait_until(lambda: fake.count("GetHistoryRequest") >= 2, within=10)  # started, newest probed
        fake.faults.drop_updates(0.10, seed=7)
        await post_in_waves(fake, 2_000)
        expected = [i for i in fake.message_ids("@busy") if i not in history]
        await wait_until(lambda: len(seen) >= len(expected), within=60, message=f"{len(seen)} of {len(expected)}")
        tg.stop()
        await asyncio.wait_for(polling, 10)
    assert len(expected) == 2_000
    assert Counter(seen) == Counter(expected), "every new message once, none of the history"
    assert polls_with_rows > 1, "the burst spanned several polls"


async def test_a_failing_callback_gets_the_same_messages_again(
    fake: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    """The cursor moves only after the callback returns: a raising callback sees the messages again."""
    calls: list[list[int]] = []

    def callback(rows: pd.DataFrame) -> None:
        calls.append(ids_of(rows))
        if len(calls) == 1:
            raise RuntimeError("sink down")

    async with TgData(client=fake.client()) as tg:
        with caplog.at_level(logging.ERROR, "emitter.tgdata"):
            await tg.poll_for_messages("@busy", interval=0.01, callback=callback, max_iterations=3, after_id=40)
    assert calls == [list(range(41, 52)), list(range(41, 52))], "ids 1 (channel created) to 51"
    assert "sink down" in caplog.text


async def test_after_id_zero_delivers_the_whole_history(fake: FakeTelegram) -> None:
    """after_id=0 starts at the beginning; a plain (sync) callback works; polls without news call nothing."""
    calls: list[list[int]] = []
    async with TgData(client=fake.client()) as tg:
        await tg.poll_for_messages("@busy", 0.01, lambda rows: calls.append(ids_of(rows)), 2, after_id=0)
    assert calls == [fake.message_ids("@busy")]


async def test_polling_with_an_id_set_tracker(fake: FakeTelegram) -> None:
    """A tracker that is not cursor-based filters what it has seen; new messages still arrive once."""
    tracker = SetTracker()
    gid = fake.peer_id("@busy")
    await tracker.mark_batch_processed([MessageInfo(i, gid) for i in range(1, 46)])
    seen: list[int] = []
    async with TgData(client=fake.client(), tracker=tracker) as tg:
        await tg.poll_for_messages("@busy", 0.01, lambda rows: seen.extend(ids_of(rows)), 1, after_id=0)
        fake.burst("@busy", 30)
        await tg.poll_for_messages("@busy", 0.01, lambda rows: seen.extend(ids_of(rows)), 1, after_id=0)
    assert seen == fake.message_ids("@busy")[45:]
    assert (gid, 80) in tracker.ids


async def test_polling_resumes_after_a_restart_with_a_persistent_tracker(fake: FakeTelegram, tmp_path: Path) -> None:
    """With a SQLite tracker, a new process delivers exactly what was posted while none was polling."""
    db = tmp_path / "tracker.db"
    first: list[int] = []
    async with TgData(client=fake.client(), tracker=SqliteTracker(db)) as tg:
        await tg.poll_for_messages("@busy", 0.01, lambda rows: first.extend(ids_of(rows)), 1, after_id=0)
    fake.post_many("@busy", 150)  # while down: no live update reaches anyone
    second: list[int] = []
    async with TgData(client=fake.client(), tracker=SqliteTracker(db)) as tg:
        await tg.poll_for_messages("@busy", 0.01, lambda rows: second.extend(ids_of(rows)), 1)
    assert first == fake.message_ids("@busy")[:51]
    assert second == fake.message_ids("@busy")[51:]


async def run_handlers(tg: TgData) -> asyncio.Task[None]:
    task = asyncio.create_task(tg.run_with_event_loop())
    await asyncio.sleep(0)
    return task


async def test_handlers_get_a_burst_with_dropped_updates_exactly_once(fake: FakeTelegram) -> None:
    """2,000 live messages with 10% of updates dropped: each reaches the handler once (sweeps fill gaps)."""
    history = fake.message_ids("@busy")
    rows: list[Row] = []
    async with TgData(client=fake.client(flood_sleep_threshold=0), sweep_interval=0.3) as tg:

        @tg.on_new_message("@busy")
        async def handle(row: Row) -> None:
            rows.append(row)

        running = await run_handlers(tg)
        await wait_until(lambda: fake.count("GetHistoryRequest") >= 2, within=10)  # newest probed, walk begun
        fake.faults.drop_updates(0.10, seed=11)
        await post_in_waves(fake, 2_000)
        expected = [i for i in fake.message_ids("@busy") if i not in history]
        await wait_until(lambda: len(rows) >= len(expected), within=60, message=f"{len(rows)} of {len(expected)}")
        await asyncio.sleep(0.5)  # one more sweep: it must not deliver anything twice
        tg.stop()
        await asyncio.wait_for(running, 10)
    assert fake.faults.dropped_updates > 100
    assert Counter(int(r["MessageId"]) for r in rows) == Counter(expected)
    assert rows[0]["GroupId"] == fake.peer_id("@busy")
    assert rows[0]["Date"].tzinfo is not None


async def test_handlers_resume_after_a_restart_and_errors_do_not_stop_them(
    fake: FakeTelegram, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A restarted process with the same tracker gets what was posted while it was down; a raising handler
    is logged and later messages still come; stop() from a handler ends the run."""
    db = tmp_path / "tracker.db"
    got: list[int] = []

    async def run_until(count: int) -> None:
        async with TgData(client=fake.client(), tracker=SqliteTracker(db), sweep_interval=0.2) as tg:

            @tg.on_new_message()  # every group of the account
            async def handle(row: Row) -> None:
                got.append(int(row["MessageId"]))
                if len(got) == 3:
                    raise ValueError("handler bug")
                if len(got) >= count:
                    tg.stop()

            running = await run_handlers(tg)
            await wait_until(lambda: fake.count("GetHistoryRequest") >= 2, within=10)
            return await asyncio.wait_for(running, 30)

    first = asyncio.create_task(run_until(5))
    await wait_until(lambda: fake.count("GetHistoryRequest") >= 2, within=10)
    fake.burst("@busy", 5)
    with caplog.at_level(logging.ERROR, "emitter.tgdata"):
        await asyncio.wait_for(first, 30)
    assert "handler bug" in caplog.text
    fake.post_many("@busy", 20)  # while down
    fake.reset_counters()
    second = asyncio.create_task(run_until(25))
    await wait_until(lambda: len(got) >= 25, within=30)
    await asyncio.wait_for(second, 30)
    assert got == fake.message_ids("@busy")[51:]


async def test_run_without_handlers_is_refused(fake: FakeTelegram) -> None:
    """run_with_event_loop with no handler registered is a mistake, said at once."""
    async with TgData(client=fake.client()) as tg:
        with pytest.raises(ValueError, match="on_new_message"):
            await tg.run_with_event_loop()


async def test_cancelling_the_run_stops_it(fake: FakeTelegram) -> None:
    """Cancelling run_with_event_loop ends it and removes its live handlers."""
    client = fake.client()
    async with TgData(client=client) as tg:
        tg.on_new_message("@busy")(_ignore)
        running = await run_handlers(tg)
        await wait_until(lambda: fake.count("GetHistoryRequest") >= 2, within=10)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert client.list_event_handlers() == []


async def _ignore(_row: Row) -> Any:
    return None
