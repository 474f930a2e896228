"""Transactions without surprises on the shared broker: restoring past another identity's open transaction,
and a commit cancelled half-way."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.client import AIOKafkaClient

from emitter.cursor import GroupCursor
from emitter.errors import RetriableError
from emitter.kafka_sink import KafkaSink
from emitter.protocols import Batch
from emitter.settings import Settings
from tests.factories import GROUP, event
from tests.faketelegram import wait_until
from tests.integration.conftest import emitter_cmd
from tests.integration.kafka_read import new_ids_by_group, read_committed

LIMIT = 3000
"""Messages per demo group in the two-identity test."""


async def held_back(bootstrap: str, topic: str) -> dict[int, int]:
    """Per partition of `topic`, how far the last stable offset lags the high watermark (0: nothing open)."""
    committed = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    everything = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_uncommitted")
    await committed.start()
    await everything.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(everything.partitions_for_topic(topic) or ())]
        if not tps:
            await everything._client.force_metadata_update()
            tps = [TopicPartition(topic, p) for p in sorted(everything.partitions_for_topic(topic) or ())]
        lso = await committed.end_offsets(tps)
        hw = await everything.end_offsets(tps)
        return {tp.partition: hw[tp] - lso[tp] for tp in tps}
    finally:
        await committed.stop()
        await everything.stop()


async def _count(kafka: str, topic: str) -> int:
    return len(await read_committed(kafka, topic, raw=True))


async def test_restart_reads_past_another_identitys_open_transaction(
    kafka: str, cli_env: dict[str, str], names: dict[str, str], tmp_path: Path
) -> None:
    """Identity A, SIGKILLed and restarted while identity B holds a transaction open on the shared cursor
    topic, waits for it, restores its newest cursors and publishes nothing twice."""
    args = ("run", "--demo-groups", "2", "--demo-history", "1500", "--demo-rate", "300")
    args += ("--demo-limit", str(LIMIT), "--batch-size", "50")
    log = tmp_path / "a.log"
    with log.open("ab") as err:
        first = subprocess.Popen(emitter_cmd(*args), env=cli_env, stderr=err)  # noqa: ASYNC220 - returns at once
    other = AIOKafkaProducer(bootstrap_servers=kafka, transactional_id=f"{names['prefix']}-b")
    await other.start()
    try:
        await wait_until(lambda: _count(kafka, names["topic"]), within=60, interval=0.2)
        await other.begin_transaction()
        await (await other.send(names["cursor_topic"], key=b"b:1", value=GroupCursor(1, 5).to_bytes()))
        opened = await _count(kafka, names["topic"])
        # A commits well past B's open transaction before it dies: those cursors lie beyond the LSO.
        await wait_until(lambda: _more(kafka, names["topic"], opened + 400), within=60, interval=0.2)
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = await _count(kafka, names["topic"])
        skip = log.stat().st_size
        with log.open("ab") as err:
            second = subprocess.Popen(emitter_cmd(*args), env=cli_env, stderr=err)  # noqa: ASYNC220 - same
        try:
            await wait_until(lambda: "waiting for another identity" in log.read_text()[skip:], within=60)
            waited_from = time.monotonic()
            assert second.poll() is None, "A went on without waiting"
            await other.abort_transaction()
            assert await asyncio.to_thread(second.wait, 180) == 0, log.read_text()[-3000:]
        finally:
            second.kill()
        waited = time.monotonic() - waited_from
    finally:
        first.kill()
        await other.stop()
    records = await read_committed(kafka, names["topic"])
    counts = Counter((int(k), r["event_type"], r["message_id"]) for k, r in records)
    duplicates = sum(n - 1 for n in counts.values())
    ids = new_ids_by_group(records)
    assert duplicates == 0
    assert all(group_ids == list(range(1, LIMIT + 1)) for group_ids in ids.values()), "each id once, in order"
    print(
        f"killed after {killed_at} records, {killed_at - opened} of them committed past B's open transaction; the "
        f"restart logged its wait and finished {waited:.1f} s after B ended; {len(records)} records, {duplicates} dup"
    )


async def _more(kafka: str, topic: str, at_least: int) -> bool:
    return await _count(kafka, topic) >= at_least


@pytest.mark.parametrize("phase", ["sending", "committing"])
async def test_cancelled_commit_aborts_and_leaves_a_clean_producer(settings: Settings, kafka: str, phase: str) -> None:
    """A commit cancelled while sending or inside commit_transaction never reuses that producer: the next
    commit succeeds on a new one, and after stop() nothing holds read_committed consumers back."""
    sink = KafkaSink(settings.kafka, settings.emitter.instance)
    await sink.start()
    try:
        await sink.commit(Batch([event(1)], {GROUP.id: GroupCursor(GROUP.id, 1)}))
        producer = sink._producer
        assert producer is not None
        entered = asyncio.Event()
        if phase == "committing":
            real = producer.commit_transaction

            async def commit_transaction() -> None:
                entered.set()
                await real()

            producer.commit_transaction = commit_transaction  # type: ignore[method-assign]
        big = Batch([event(i, text="x" * 2000) for i in range(2, 3000)], {GROUP.id: GroupCursor(GROUP.id, 2999)})
        task = asyncio.create_task(sink.commit(big))
        if phase == "committing":
            await asyncio.wait_for(entered.wait(), 30)
        else:
            await wait_until(lambda: sink._open_since is not None, within=30, interval=0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sink._producer is None, "the cancelled producer must not be used again"
        await sink.commit(Batch([event(3000)], {GROUP.id: GroupCursor(GROUP.id, 3000)}))
        assert sink._producer is not producer
    finally:
        started = time.monotonic()
        await sink.stop()
        stopped_in = time.monotonic() - started
    lag = await held_back(kafka, settings.kafka.topic)
    cursors = await KafkaSink(settings.kafka, settings.emitter.instance).load_cursors()
    ids = [r["message_id"] for _, r in await read_committed(kafka, settings.kafka.topic)]
    assert set(lag.values()) == {0}, f"an open transaction holds consumers back: {lag}"
    assert cursors[GROUP.id].cursor == 3000
    assert ids[0] == 1 and ids[-1] == 3000 and len(ids) == len(set(ids))
    print(f"{phase}: stop took {stopped_in:.2f} s; {len(ids)} records committed, LSO lag {lag}")


async def test_a_producer_started_while_the_metadata_names_no_broker_is_retried(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new producer whose metadata names no broker (a KRaft broker fenced for a moment after a pause) fails
    the commit as a retriable outage, not with aiokafka's assertion, and the next commit goes through."""
    sink = KafkaSink(settings.kafka, settings.emitter.instance)
    await sink.start()
    try:
        await sink.commit(Batch([event(1)], {GROUP.id: GroupCursor(GROUP.id, 1)}))
        producer, sink._producer = sink._producer, None  # as after a failed or expired transaction
        assert producer is not None
        await producer.stop()
        with monkeypatch.context() as patched:
            patched.setattr(AIOKafkaClient, "get_random_node", lambda _self: None)
            with pytest.raises(RetriableError, match="metadata named no broker"):
                await sink.commit(Batch([event(2)], {GROUP.id: GroupCursor(GROUP.id, 2)}))
        assert sink._producer is None
        await sink.commit(Batch([event(2)], {GROUP.id: GroupCursor(GROUP.id, 2)}))
    finally:
        await sink.stop()
    ids = [r["message_id"] for _, r in await read_committed(settings.kafka.bootstrap_servers, settings.kafka.topic)]
    assert ids == [1, 2]


def test_replication_factor_above_the_brokers_is_a_config_error(cli_env: dict[str, str], tmp_path: Path) -> None:
    """Topics the broker refuses to create as configured (3 replicas on one broker): exit 2, one line naming
    the settings, no traceback."""
    env = {**cli_env, "EMITTER_KAFKA__REPLICATION_FACTOR": "3"}
    done = subprocess.run(
        emitter_cmd("run", "--demo-limit", "5"), env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2, done.stderr[-3000:]
    assert last.startswith("emitter: error: Kafka refused to create topic"), last
    assert "kafka.replication_factor" in last
    assert "Traceback" not in done.stderr
    print(last)


async def test_cursors_of_a_cursor_topic_that_does_not_exist_yet_are_none(settings: Settings) -> None:
    """A fresh cluster has no cursor topic: reading cursors returns nothing (it used to raise CancelledError)."""
    from emitter.cursor_reader import read_cursors  # noqa: PLC0415 - this test only

    assert await read_cursors(settings.kafka, settings.emitter.instance) == {}
