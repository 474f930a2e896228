"""The media stage's own decisions, on the fake Telegram and the real SeaweedFS: what it skips and why, the
byte budget across a page's concurrent downloads, and one download for a file a page carries several times."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from telethon import types
from types_aiobotocore_s3 import S3Client

from emitter.clock import ScaledClock
from emitter.media_stage import MediaStats
from emitter.settings import MediaSettings, Settings
from emitter.telegram_gateway import RequestGateway
from tests.faketelegram import FakeTelegram, wait_until
from tests.integration.kafka_read import read_committed
from tests.integration.s3_server import BUCKET, delete_prefix, faulty_proxy, media_settings, s3, s3_endpoint
from tests.integration.telegram_harness import SPEED, emitter

__all__ = ["s3", "s3_endpoint"]  # the fixtures, imported so that pytest finds them

pytestmark = pytest.mark.integration


@pytest.fixture
async def prefixes(s3: S3Client) -> AsyncIterator[list[str]]:
    """Prefixes a test used, emptied afterwards."""
    used: list[str] = []
    yield used
    for prefix in used:
        await delete_prefix(s3, BUCKET, prefix)


async def run_world(
    fake: FakeTelegram, settings: Settings, media: MediaSettings
) -> tuple[MediaStats, dict[int, dict[str, Any]]]:
    """Backfill @stage with media on; the stage's counters and each committed NEW record's media by id."""
    clock = ScaledClock(SPEED)
    gid, last = fake.peer_id("@stage"), fake.message_ids("@stage")[-1]
    async with emitter(
        fake, settings, ["@stage"], timer=clock, gateway=RequestGateway(clock=clock), media=media
    ) as run:
        await wait_until(lambda: run.monitor.tracker.cursor(gid).cursor >= last, within=120, interval=0.2)
        assert run.source.media is not None
        stats = run.source.media.stats
    got = await read_committed(settings.kafka.bootstrap_servers[0], settings.kafka.topic)  # type: ignore[index]
    return stats, {r["message_id"]: r["media"] for _, r in got if r["event_type"] == "NEW" and r["media"]}


async def test_skipped_media_are_counted_by_reason_and_the_budget_holds_across_a_page(
    settings: Settings, s3_endpoint: str, prefixes: list[str]
) -> None:
    """One page: a voice note (type not stored), a file above max_bytes and five files of which the day's
    budget holds two: three budget skips although all five download at once, each reason counted."""
    rng = random.Random(5)
    fake = FakeTelegram(seed=5, monotonic=ScaledClock(SPEED).monotonic)
    channel = fake.add_channel("Stage", username="stage")
    voice = fake.post(
        channel,
        "voice",
        media=fake.add_file(
            rng.randbytes(5_000),
            mime_type="audio/ogg",
            attributes=[types.DocumentAttributeAudio(duration=1, voice=True)],
        ),
    ).id
    large = fake.post(channel, "large", media=fake.add_file(rng.randbytes(900_000), mime_type="application/zip")).id
    files = [
        fake.post(channel, f"file {n}", media=fake.add_file(rng.randbytes(300_000), mime_type="application/pdf")).id
        for n in range(5)
    ]
    media = media_settings(
        s3_endpoint,
        types="photo,document",
        max_bytes=800_000,
        bytes_per_day=700_000,
        download_concurrency=5,
    )
    prefixes.append(media.prefix)

    stats, got = await run_world(fake, settings, media)

    assert dict(stats.skipped) == {"type_not_stored": 1, "too_large": 1, "budget": 3}
    stored = [m for m in files if got[m]["storage_uri"] is not None]
    assert len(stored) == 2, "the budget holds two of the five files"
    assert stats.stored == 2 and stats.bytes_downloaded == 600_000
    assert got[voice]["storage_uri"] is None and got[large]["storage_uri"] is None
    assert {f for f, _, _ in fake.file_requests} == {fake_file_id(fake, channel, m) for m in stored}, (
        "skipped files are never asked for"
    )


async def test_a_file_a_page_carries_three_times_is_downloaded_once(
    settings: Settings, s3_endpoint: str, prefixes: list[str]
) -> None:
    """The same Telegram file posted three times in one page: one download, three records naming one object."""
    rng = random.Random(6)
    fake = FakeTelegram(seed=6, monotonic=ScaledClock(SPEED).monotonic)
    channel = fake.add_channel("Stage", username="stage")
    photo = fake.add_file(rng.randbytes(150_000), photo=True)
    again = [fake.post(channel, "again", media=photo).id for _ in range(3)]
    other = fake.post(channel, "other", media=fake.add_file(rng.randbytes(50_000), photo=True)).id
    media = media_settings(s3_endpoint, download_concurrency=4)
    prefixes.append(media.prefix)

    stats, got = await run_world(fake, settings, media)

    assert len({got[m]["storage_uri"] for m in again}) == 1 and got[again[0]]["storage_uri"] is not None
    assert got[other]["storage_uri"] not in (None, got[again[0]]["storage_uri"])
    asked = [offset for f, offset, _ in fake.file_requests if f == photo.photo.id]
    assert asked and len(asked) == len(set(asked)), "each part of the repeated photo asked once"
    assert stats.stored == 4 and stats.known == 2 and not stats.skipped


def fake_file_id(fake: FakeTelegram, channel: Any, message_id: int) -> int:
    """The Telegram file id of a message's document."""
    message = next(m for m in fake.messages(channel) if m.id == message_id)
    return int(message.media.document.id)


async def test_the_spool_holds_no_more_files_than_download_slots_while_the_store_is_slow(
    settings: Settings, s3_endpoint: str, prefixes: list[str]
) -> None:
    """One download slot and three 6 MiB files: while the first file's upload hangs, the next download has not
    begun (the slot covers the upload), so the spool never holds more than max_bytes x download_concurrency."""
    rng = random.Random(7)
    fake = FakeTelegram(seed=7, monotonic=ScaledClock(SPEED).monotonic)
    channel = fake.add_channel("Stage", username="stage")
    for n in range(3):
        fake.post(channel, f"file {n}", media=fake.add_file(rng.randbytes(6 * 2**20), mime_type="application/zip"))
    clock = ScaledClock(SPEED)
    gid, last = fake.peer_id(channel), fake.message_ids(channel)[-1]
    with faulty_proxy([("partNumber=1", "hold")]) as proxy:
        media = media_settings(proxy.url, part_size=5 * 2**20, download_concurrency=1)
        prefixes.append(media.prefix)
        assert media.spool_dir is not None
        async with emitter(
            fake, settings, ["@stage"], timer=clock, gateway=RequestGateway(clock=clock), media=media
        ) as run:
            await wait_until(proxy.held.is_set, within=60, message="no upload reached the store")
            # What must not happen can only be watched for a while: a download starting as the upload hangs
            # would show within milliseconds.
            for _ in range(30):
                assert len({f for f, _, _ in fake.file_requests}) == 1, "a second download began mid-upload"
                assert len(list(media.spool_dir.iterdir())) <= 1
                await asyncio.sleep(0.05)
            proxy.release.set()  # the held part is dropped; the store sends it again
            await wait_until(lambda: run.monitor.tracker.cursor(gid).cursor >= last, within=120, interval=0.2)
            assert run.source.media is not None and run.source.media.stats.stored == 3
    assert list(media.spool_dir.iterdir()) == [], "stored files leave the spool"


async def test_a_download_that_cannot_finish_leaves_no_spool_file(
    settings: Settings, s3_endpoint: str, prefixes: list[str]
) -> None:
    """Telegram keeps answering FILE_REFERENCE_EXPIRED past the first part: the record goes out with metadata
    only, counted as download_failed, and its half-spooled file is removed rather than left on disk."""
    rng = random.Random(8)
    fake = FakeTelegram(seed=8, monotonic=ScaledClock(SPEED).monotonic)
    channel = fake.add_channel("Stage", username="stage")
    message = fake.post(channel, "file", media=fake.add_file(rng.randbytes(3 * 2**20), mime_type="application/zip"))
    fake.faults.rpc_error("upload.GetFile", "FILE_REFERENCE_EXPIRED", times=None, when=lambda r: r.offset >= 2**20)
    media = media_settings(s3_endpoint)
    prefixes.append(media.prefix)
    assert media.spool_dir is not None

    stats, got = await run_world(fake, settings, media)

    assert dict(stats.skipped) == {"download_failed": 1}
    assert got[message.id]["storage_uri"] is None
    assert any(o == 0 for _, o, _ in fake.file_requests), "the first part was downloaded"
    assert list(media.spool_dir.iterdir()) == []
