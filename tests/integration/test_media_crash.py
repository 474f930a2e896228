"""SIGKILL in the middle of a multipart upload, then a restart: no record without its object, no orphan upload.

The emitter runs with media on in a forked child (a copy of the world as the parent holds it). Its store talks
to SeaweedFS through a proxy in the parent that holds the second part of the large file's upload unanswered,
so the child is surely mid-upload when the parent kills it: the multipart upload is open, and the page that
names the file is not committed. The restart (same settings, a new session of the same world) must abort that
orphan when its store starts, upload the file again and publish every message once, each media record naming
an object that exists with the record's SHA-256.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from emitter.clock import ScaledClock
from emitter.kafka_sink import KafkaSink
from emitter.media_store import _CLOCK_RESOLUTION
from emitter.monitor import Monitor
from emitter.settings import MediaSettings, Settings
from emitter.telegram_client import client_options
from emitter.telegram_gateway import RequestGateway
from emitter.telegram_source import TelegramSource
from tests.faketelegram import FakeTelegram, wait_until
from tests.integration.kafka_read import read_committed
from tests.integration.s3_server import BUCKET, delete_prefix, faulty_proxy, media_settings, raw_s3, s3_endpoint
from tests.integration.telegram_harness import SPEED, emitter

__all__ = ["s3_endpoint"]  # the fixture, imported so that pytest finds it

pytestmark = pytest.mark.integration

MB = 2**20
BIG = 12 * MB
"""Three parts of media.part_size's minimum (5 MiB): the second is the one held."""


async def open_uploads(endpoint: str, prefix: str) -> list[dict[str, Any]]:
    async with raw_s3(endpoint) as s3:
        listed = await s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
        return [dict(u) for u in listed.get("Uploads", [])]


async def media_records(settings: Settings) -> list[dict[str, Any]]:
    """Committed NEW records of the test topic (read_committed), in consumer order."""
    got = await read_committed(settings.kafka.bootstrap_servers[0], settings.kafka.topic)  # type: ignore[index]
    return [r for _, r in got if r["event_type"] == "NEW"]


async def unresolved(endpoint: str, records: list[dict[str, Any]]) -> list[int]:
    """Ids of media records whose URI names no object, or an object with other bytes than the record's SHA-256."""
    bad = []
    async with raw_s3(endpoint) as s3:
        for r in records:
            media = r["media"]
            if media is None:
                continue
            bucket, _, key = (media["storage_uri"] or "").removeprefix("s3://").partition("/")
            try:
                answer = await s3.get_object(Bucket=bucket, Key=key)
            except s3.exceptions.NoSuchKey:
                bad.append(r["message_id"])
                continue
            async with answer["Body"] as body:
                if hashlib.sha256(await body.read()).hexdigest() != media["sha256"]:
                    bad.append(r["message_id"])
    return bad


def _child(fake: FakeTelegram, settings: Settings, media: MediaSettings, session: str) -> None:
    """The emitter with media on, until killed."""

    async def main() -> None:
        clock = ScaledClock(SPEED)
        source = TelegramSource(
            fake.client(session, **client_options()),
            ["@gallery"],
            own_client=True,
            timer=clock,
            gateway=RequestGateway(clock=clock),
            media=media,
        )
        await Monitor(source, KafkaSink(settings.kafka, settings.emitter.instance), batch_timeout=0.05).run()

    asyncio.run(main())


def _world() -> tuple[FakeTelegram, dict[int, bytes], int]:
    """A channel of 230 posts: small photos in the first page of 100, a 12 MiB file and more photos after."""
    rng = random.Random(41)
    fake = FakeTelegram(seed=41, monotonic=ScaledClock(SPEED).monotonic)
    channel = fake.add_channel("Gallery", username="gallery")
    contents: dict[int, bytes] = {}

    def post(data: bytes, **kwargs: Any) -> int:
        message = fake.post(channel, "with media", media=fake.add_file(data, **kwargs))
        contents[message.id] = data
        return int(message.id)

    for n in range(5):
        post(rng.randbytes(rng.randrange(20_000, 200_000)), photo=n % 2 == 0, mime_type="image/jpeg")
    fake.post_many(channel, 140)
    big_id = post(rng.randbytes(BIG), mime_type="application/zip", file_name="big.zip")
    for _ in range(4):
        post(rng.randbytes(rng.randrange(20_000, 200_000)), photo=True)
    fake.post_many(channel, 80)
    return fake, contents, big_id


def test_sigkill_mid_upload_then_restart_leaves_no_record_without_object_and_no_orphan(
    settings: Settings, s3_endpoint: str
) -> None:
    """Killed while a multipart upload is open: what was committed resolves; the restart aborts the orphan
    (counted once), stores the file again and publishes every message exactly once."""
    fake, contents, big_id = _world()
    gid = fake.peer_id("@gallery")
    last = fake.message_ids("@gallery")[-1]
    with faulty_proxy([("partNumber=2", "hold")]) as proxy:
        media = media_settings(proxy.url, part_size=5 * MB)
        try:
            child = multiprocessing.get_context("fork").Process(
                target=_child, args=(fake, settings, media, fake.new_session().save()), daemon=True
            )
            child.start()
            try:
                deadline = time.monotonic() + 180
                while not proxy.held.wait(0.05):
                    assert child.is_alive(), f"the emitter exited (code {child.exitcode}) before its upload"
                    assert time.monotonic() < deadline, "no second part of the large file's upload arrived"
                uploads = asyncio.run(open_uploads(s3_endpoint, media.prefix))
                assert len(uploads) == 1, uploads
                assert child.pid is not None
                os.kill(child.pid, signal.SIGKILL)
            finally:
                child.join(30)
            assert child.exitcode == -signal.SIGKILL
            proxy.release.set()

            before = asyncio.run(media_records(settings))
            with_media = [r["message_id"] for r in before if r["media"] is not None]
            assert with_media, "media records of the first page were committed before the kill"
            assert big_id not in {r["message_id"] for r in before}, "the page of the unfinished upload is uncommitted"
            assert asyncio.run(unresolved(s3_endpoint, before)) == [], "a committed record names a missing object"

            # The store aborts only uploads begun in an earlier second than its start (servers report whole
            # seconds, and a peer's in-flight upload must survive): a real restart takes longer than that.
            initiated = uploads[0]["Initiated"]
            while datetime.now(UTC) < initiated + 2 * _CLOCK_RESOLUTION:
                time.sleep(0.05)

            aborted, metrics = asyncio.run(_restart(fake, settings, media, gid, last))

            after = asyncio.run(media_records(settings))
            assert Counter(r["message_id"] for r in after) == Counter(fake.message_ids("@gallery")), "each once"
            stored = {r["message_id"]: r["media"] for r in after if r["media"] is not None}
            assert stored.keys() == contents.keys()
            for mid, m in stored.items():
                assert m["sha256"] == hashlib.sha256(contents[mid]).hexdigest(), mid
                assert m["stored_size"] == len(contents[mid]), mid
            assert asyncio.run(unresolved(s3_endpoint, after)) == []
            assert asyncio.run(open_uploads(s3_endpoint, media.prefix)) == [], "no multipart upload left open"
            assert aborted == 1, "the restart aborted the killed emitter's upload"
            assert metrics["emitter_media_aborted_uploads"] == 1
            assert metrics["emitter_media_uploads"] >= 1  # at least the large file, uploaded again
        finally:

            async def clean() -> None:
                async with raw_s3(s3_endpoint) as s3:
                    await delete_prefix(s3, BUCKET, media.prefix)

            asyncio.run(clean())


async def _restart(
    fake: FakeTelegram, settings: Settings, media: MediaSettings, gid: int, last: int
) -> tuple[int, dict[str, float]]:
    """Run the emitter again on the parent's world until it published `last`; (uploads aborted, media counters)."""
    clock = ScaledClock(SPEED)
    async with emitter(
        fake, settings, ["@gallery"], timer=clock, gateway=RequestGateway(clock=clock), media=media
    ) as run:
        run.monitor.metrics.bind_telegram(run.source)  # as `emitter run` does
        await wait_until(lambda: run.monitor.tracker.cursor(gid).cursor >= last, within=180, interval=0.2)
        assert run.source.media is not None
        aborted = run.source.media.store.stats.aborted_incomplete
        families = text_string_to_metric_families(run.monitor.metrics.render().decode())
        metrics = {
            s.name.removesuffix("_total"): s.value
            for f in families
            if f.name.startswith("emitter_media")
            for s in f.samples
        }
    return aborted, metrics
