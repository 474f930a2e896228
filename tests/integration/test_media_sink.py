"""Media into the object store, end to end: Telegram (the fake) -> the emitter -> SeaweedFS and Kafka.

A record that names an object is committed only once the object is durable; the same bytes are one object
however often they are posted; a FloodWait and a cut connection in the middle of a large file resume it
where it stopped (the fake's request log shows every part asked once).
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from telethon import types
from types_aiobotocore_s3 import S3Client

from emitter.clock import ScaledClock
from emitter.settings import MediaSettings, Settings
from emitter.telegram_gateway import RequestGateway
from tests.faketelegram import FakeTelegram, wait_until
from tests.integration.kafka_read import read_committed
from tests.integration.s3_server import BUCKET, delete_prefix, media_settings, s3, s3_endpoint
from tests.integration.telegram_harness import SPEED, emitter

__all__ = ["s3", "s3_endpoint"]  # the fixtures, imported so that pytest finds them

pytestmark = pytest.mark.integration

MB = 2**20


@pytest.fixture
async def media(s3_endpoint: str, s3: S3Client) -> AsyncIterator[MediaSettings]:
    """Media settings under a fresh prefix of the test bucket, emptied afterwards."""
    settings = media_settings(s3_endpoint)
    yield settings
    await delete_prefix(s3, BUCKET, settings.prefix)


async def records(settings: Settings) -> list[dict[str, Any]]:
    return [r for _, r in await read_committed(settings.kafka.bootstrap_servers[0], settings.kafka.topic)]  # type: ignore[index]


async def object_keys(s3: S3Client, prefix: str) -> list[str]:
    listed = await s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", []) if "Key" in o]


async def test_fifty_media_messages_are_stored_once_each_and_every_uri_resolves(
    settings: Settings, media: MediaSettings, s3: S3Client
) -> None:
    """50 media posts (photos, a 30 MB document, a voice note, one photo posted 8 times, one file uploaded
    twice): one object per distinct content, byte-identical; every record's URI resolves; a FloodWait and a
    cut connection mid-document re-read no finished part."""
    rng = random.Random(14)
    clock = ScaledClock(SPEED)
    fake = FakeTelegram(seed=14, monotonic=clock.monotonic)
    channel = fake.add_channel("Pictures", username="pictures")
    contents: dict[int, bytes] = {}  # message id -> the bytes it carries

    def post(data: bytes, **kwargs: Any) -> int:
        message = fake.post(channel, "with media", media=fake.add_file(data, **kwargs))
        contents[message.id] = data
        fake.post(channel, "text between")
        return int(message.id)

    for n in range(38):
        post(rng.randbytes(rng.randrange(20_000, 300_000)), photo=n % 2 == 0, mime_type="image/jpeg")
    big = rng.randbytes(30 * MB)
    big_id = post(big, mime_type="application/zip", file_name="big.zip")
    post(
        rng.randbytes(40_000), mime_type="audio/ogg", attributes=[types.DocumentAttributeAudio(duration=3, voice=True)]
    )
    photo = rng.randbytes(120_000)
    same = fake.add_file(photo, photo=True)
    for _ in range(8):
        message = fake.post(channel, "the same photo again", media=same)
        contents[message.id] = photo
    twice = rng.randbytes(200_000)
    post(twice, mime_type="image/png")
    post(twice, mime_type="image/png")  # a second upload of the same bytes: another Telegram file
    assert len(contents) == 50
    big_file = next(m for m in fake.messages(channel) if m.id == big_id).media.document.id
    fake.faults.flood_wait_file(big_file, 90, after_parts=10)
    fake.faults.cut_connection("upload.GetFile", when=lambda r: r.location.id == big_file and r.offset == 20 * MB)

    async with emitter(
        fake, settings, ["@pictures"], timer=clock, gateway=RequestGateway(clock=clock), media=media
    ) as run:
        last = fake.message_ids(channel)[-1]
        gid = fake.peer_id(channel)
        await wait_until(lambda: run.monitor.tracker.cursor(gid).cursor >= last, within=180, interval=0.2)

    got = [r for r in await records(settings) if r["event_type"] == "NEW" and r["media"] is not None]
    assert Counter(r["message_id"] for r in got) == Counter(contents.keys()), "each media message once"
    for r in got:
        data = contents[r["message_id"]]
        assert r["media"]["sha256"] == hashlib.sha256(data).hexdigest(), r["message_id"]
        assert r["media"]["stored_size"] == len(data)
        bucket, _, key = r["media"]["storage_uri"].removeprefix("s3://").partition("/")
        assert bucket == BUCKET and key.startswith(media.prefix)
        answer = await s3.get_object(Bucket=bucket, Key=key)
        async with answer["Body"] as body:
            assert hashlib.sha256(await body.read()).hexdigest() == r["media"]["sha256"]
    distinct = {hashlib.sha256(d).hexdigest() for d in contents.values()}
    keys = await object_keys(s3, f"{media.prefix}media/")
    assert sorted(keys) == sorted(f"{media.prefix}media/{h}" for h in distinct), "one object per content"
    uploads = await s3.list_multipart_uploads(Bucket=BUCKET, Prefix=media.prefix)
    assert not uploads.get("Uploads"), "no upload left open"
    offsets = [offset for fid, offset, _ in fake.file_requests if fid == big_file]
    assert sorted(offsets) == sorted(set(offsets)) and len(offsets) == 30, "every part of the 30 MB file once"
    same_file = same.photo.id
    assert len({o for fid, o, _ in fake.file_requests if fid == same_file}) == len(
        [1 for fid, _, _ in fake.file_requests if fid == same_file]
    ), "the photo posted 8 times is downloaded once"


async def test_files_stored_by_an_earlier_run_are_not_downloaded_again(
    settings: Settings, media: MediaSettings, s3: S3Client
) -> None:
    """A second identity (fresh topics, the same bucket and prefix) backfilling the same channel finds every
    file in the store's index: its records carry the same URIs and it asks Telegram for no file part."""
    rng = random.Random(15)
    clock = ScaledClock(SPEED)
    fake = FakeTelegram(seed=15, monotonic=clock.monotonic)
    channel = fake.add_channel("Pictures", username="pictures")
    for _ in range(6):
        fake.post(channel, "a photo", media=fake.add_file(rng.randbytes(150_000), photo=True))
    gid, last = fake.peer_id(channel), fake.message_ids(channel)[-1]

    async def backfill(run_settings: Settings) -> dict[int, str]:
        async with emitter(
            fake, run_settings, ["@pictures"], timer=clock, gateway=RequestGateway(clock=clock), media=media
        ) as run:
            await wait_until(lambda: run.monitor.tracker.cursor(gid).cursor >= last, within=60, interval=0.1)
        return {r["message_id"]: r["media"]["storage_uri"] for r in await records(run_settings) if r["media"]}

    first = await backfill(settings)
    parts = len(fake.file_requests)
    assert parts >= 6 and len(first) == 6 and all(first.values())
    tag = uuid.uuid4().hex[:10]
    kafka = settings.kafka.model_copy(
        update={"topic": f"t-{tag}", "cursor_topic": f"c-{tag}", "transactional_id_prefix": f"te-{tag}"}
    )
    other = settings.model_copy(
        update={"kafka": kafka, "emitter": settings.emitter.model_copy(update={"instance": f"i-{tag}"})}
    )
    second = await backfill(other)
    assert second == first, "the same objects"
    assert len(fake.file_requests) == parts, "no file part asked again"
