"""The Kafka sink against the real broker: transactions, cursors, topics, decoding by consumers."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import time
from pathlib import Path

import avro.io
import avro.schema
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from emitter.codec import MESSAGE_SCHEMA_FILE
from emitter.demo_source import DemoSource, demo_group
from emitter.kafka_sink import KafkaSink
from emitter.monitor import Monitor
from emitter.settings import Settings
from tests.integration.conftest import emitter_cmd
from tests.integration.kafka_read import new_ids_by_group, read_committed


async def test_demo_run_publishes_each_id_once_in_order(settings: Settings, kafka: str) -> None:
    """A demo run lands every message once per group, in id order, keyed by group, cursors committed."""
    sink = KafkaSink(settings.kafka, settings.emitter.instance)
    stats = await Monitor(DemoSource(2, history=400, rate=1000, limit=450), sink, batch_size=100).run()
    records = await read_committed(kafka, settings.kafka.topic)
    assert len(records) == stats.published
    ids = new_ids_by_group(records)
    assert ids == {demo_group(1).id: list(range(1, 451)), demo_group(2).id: list(range(1, 451))}
    cursors = await KafkaSink(settings.kafka, settings.emitter.instance).load_cursors()
    assert {gid: c.cursor for gid, c in cursors.items()} == {demo_group(1).id: 450, demo_group(2).id: 450}


async def test_restart_resumes_from_the_compacted_cursor(settings: Settings, kafka: str) -> None:
    """A second emitter of the same identity restores cursors from Kafka and publishes only new ids."""
    await Monitor(DemoSource(1, history=200, rate=1000, limit=200), KafkaSink(settings.kafka, "x")).run()
    await Monitor(DemoSource(1, history=300, rate=1000, limit=300), KafkaSink(settings.kafka, "x")).run()
    ids = new_ids_by_group(await read_committed(kafka, settings.kafka.topic))
    assert ids[demo_group(1).id] == list(range(1, 301))


async def test_records_decode_with_the_official_avro_package(settings: Settings, kafka: str) -> None:
    """Bytes read from Kafka decode with an independent Avro implementation and the .avsc alone."""
    await Monitor(DemoSource(1, history=30, rate=1000, limit=30), KafkaSink(settings.kafka, "y")).run()
    raw = await read_committed(kafka, settings.kafka.topic, raw=True)
    schema = avro.schema.parse(MESSAGE_SCHEMA_FILE.read_text())
    reader = avro.io.DatumReader(schema)
    decoded = [reader.read(avro.io.BinaryDecoder(io.BytesIO(value[10:]))) for _, value in raw]
    assert all(value[:2] == b"\xc3\x01" for _, value in raw)
    assert sorted(r["message_id"] for r in decoded if r["event_type"] == "NEW") == list(range(1, 31))
    assert {r["group"]["id"] for r in decoded} == {demo_group(1).id}


async def test_cursor_topic_without_compaction_is_refused(
    settings: Settings, kafka: str, cli_env: dict[str, str]
) -> None:
    """A pre-created cursor topic with cleanup.policy=delete stops the emitter with one clear line."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(settings.kafka.cursor_topic, 1, 1, topic_configs={"cleanup.policy": "delete"})]
        )
    finally:
        await admin.close()
    proc = subprocess.run(
        emitter_cmd("run", "--demo-limit", "5"), env=cli_env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("emitter: fatal: cursor topic")
    assert "cleanup.policy=delete: expected compact" in last
    assert "Traceback" not in proc.stderr


def _wait_for_records(kafka: str, topic: str, at_least: int, deadline: float) -> int:
    import asyncio  # noqa: PLC0415 - a synchronous helper for subprocess tests

    while time.monotonic() < deadline:
        n = len(asyncio.run(read_committed(kafka, topic, raw=True)))
        if n >= at_least:
            return n
        time.sleep(0.2)
    raise AssertionError(f"fewer than {at_least} records in {topic} before the deadline")


def test_second_instance_fences_the_first(kafka: str, cli_env: dict[str, str], names: dict[str, str]) -> None:
    """Starting a second emitter with the same identity stops the first with a clear error; no duplicates."""
    import asyncio  # noqa: PLC0415

    args = ("run", "--demo-history", "0", "--demo-rate", "50", "--demo-groups", "2")
    first = subprocess.Popen(emitter_cmd(*args), env=cli_env, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_records(kafka, names["topic"], 10, time.monotonic() + 60)
        second = subprocess.Popen(emitter_cmd(*args), env=cli_env, stderr=subprocess.PIPE, text=True)
        try:
            _, first_err = first.communicate(timeout=60)
            assert first.returncode == 1
            assert "another emitter took over transactional id" in first_err.strip().splitlines()[-1]
            before = len(asyncio.run(read_committed(kafka, names["topic"], raw=True)))
            _wait_for_records(kafka, names["topic"], before + 10, time.monotonic() + 60)
        finally:
            second.send_signal(signal.SIGTERM)
            second.communicate(timeout=60)
        assert second.returncode == 0
    finally:
        first.kill()
        first.wait()
    ids = new_ids_by_group(asyncio.run(read_committed(kafka, names["topic"])))
    for group_ids in ids.values():
        assert group_ids == list(range(1, len(group_ids) + 1)), "each id once, in order"


def test_sigterm_commits_and_exits_zero(kafka: str, cli_env: dict[str, str], names: dict[str, str]) -> None:
    """SIGTERM during a run drains, commits, and exits 0; what landed is a gapless prefix per group."""
    import asyncio  # noqa: PLC0415

    proc = subprocess.Popen(
        emitter_cmd("run", "--demo-history", "5000", "--demo-rate", "100"),
        env=cli_env,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_records(kafka, names["topic"], 1, time.monotonic() + 60)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    ids = new_ids_by_group(asyncio.run(read_committed(kafka, names["topic"])))
    assert ids, "something was committed"
    for group_ids in ids.values():
        assert group_ids == list(range(1, len(group_ids) + 1))
    summary = json.dumps(err.strip().splitlines()[-1])
    assert "published" in summary


def test_check_reports_kafka_and_cursors(cli_env: dict[str, str], tmp_path: Path) -> None:
    """`emitter check` validates the configuration and reaches the broker."""
    proc = subprocess.run(emitter_cmd("check"), env=cli_env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "configuration: ok" in proc.stdout
    assert "kafka: ok" in proc.stdout


async def test_oversized_records_are_truncated_or_dead_lettered(settings: Settings, kafka: str) -> None:
    """A record over max_record_bytes is published cut and flagged, or sent to the dead-letter topic; no stall."""
    from emitter.protocols import Page  # noqa: PLC0415
    from emitter.records import Source  # noqa: PLC0415
    from emitter.testing import ListSource  # noqa: PLC0415
    from tests.factories import GROUP, event  # noqa: PLC0415

    huge = event(2, text="y" * 3_000_000, source=Source.BACKFILL)
    pages = {GROUP: [Page(GROUP, [event(1), huge, event(3)], walked_to=3)]}
    for policy in ("truncate", "dead-letter"):
        kafka_settings = settings.kafka.model_copy(
            update={"oversize_policy": policy, "topic": f"{settings.kafka.topic}-{policy}", "max_record_bytes": 200_000}
        )
        stats = await Monitor(ListSource(pages), KafkaSink(kafka_settings, policy)).run()
        assert stats.published == 3
        main = await read_committed(kafka, kafka_settings.topic)
        if policy == "truncate":
            assert [r["message_id"] for _, r in main] == [1, 2, 3]
            assert main[1][1]["truncated"] is True
            assert len(main[1][1]["text"]) < 200_000
        else:
            assert [r["message_id"] for _, r in main] == [1, 3]
            dlq = await read_committed(kafka, kafka_settings.dead_letter_topic)
            assert [r["message_id"] for _, r in dlq][-1] == 2
