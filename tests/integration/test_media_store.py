"""MediaStore against a real S3-compatible server (SeaweedFS from dev/s3): content-addressed, once, durable."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from types_aiobotocore_s3 import S3Client

from emitter.errors import RetriableError
from emitter.media_store import MediaStore, MediaStoreError
from emitter.settings import MediaSettings
from tests.integration.s3_server import (
    BUCKET,
    SECRET_KEY,
    delete_prefix,
    faulty_proxy,
    media_settings,
    s3,
    s3_endpoint,
)

__all__ = ["s3", "s3_endpoint"]  # the fixtures, imported so that pytest finds them

pytestmark = pytest.mark.integration

MiB = 2**20


async def next_second() -> None:
    """Return once the wall clock has entered its next second (upload dates have whole seconds)."""
    now = datetime.now(UTC)
    await asyncio.sleep((now.replace(microsecond=0) + timedelta(seconds=1) - now).total_seconds())


def write_random(path: Path, size: int) -> str:
    """A file of `size` random bytes; its SHA-256."""
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
async def media(s3_endpoint: str, s3: S3Client) -> AsyncIterator[MediaSettings]:
    """A store's settings under a fresh prefix of the test bucket, emptied afterwards."""
    settings = media_settings(s3_endpoint)
    yield settings
    await delete_prefix(s3, BUCKET, settings.prefix)


@pytest.fixture
async def fresh_bucket(s3: S3Client) -> AsyncIterator[str]:
    """The name of a bucket that does not exist yet; deleted afterwards if a test created it."""
    name = f"emitter-test-{uuid.uuid4().hex[:12]}"
    yield name
    buckets = await s3.list_buckets()
    if any(b.get("Name") == name for b in buckets.get("Buckets", [])):
        await delete_prefix(s3, name, "")
        await s3.delete_bucket(Bucket=name)


async def count_objects(s3: S3Client, prefix: str) -> int:
    """Objects stored under `prefix`."""
    listing = await s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return len(listing.get("Contents", []))


async def open_uploads(s3: S3Client, prefix: str) -> list[str]:
    """Keys of the incomplete multipart uploads under `prefix`."""
    uploads = await s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
    return [u.get("Key", "") for u in uploads.get("Uploads", [])]


async def test_a_30_mb_file_goes_up_in_parts_and_reads_back_identical(
    media: MediaSettings, s3: S3Client, tmp_path: Path
) -> None:
    """A 30 MB file is uploaded in 8 MiB parts under media/<sha256> and reads back byte-identical."""
    path = tmp_path / "video.mp4"
    digest = write_random(path, 30 * 10**6)
    async with MediaStore(media) as store:
        stored = await store.put_file(path, digest, 30 * 10**6)
        assert await store.exists(digest)
    key = f"{media.prefix}media/{digest}"
    assert stored.uri == f"s3://{BUCKET}/{key}"
    assert (stored.sha256, stored.size) == (digest, 30 * 10**6)
    head = await s3.head_object(Bucket=BUCKET, Key=key)
    assert head.get("ETag", "").strip('"').endswith("-4")  # S3's multipart ETag: md5 of the part md5s, "-<parts>"
    assert head.get("Metadata", {}).get("sha256") == digest
    body = await s3.get_object(Bucket=BUCKET, Key=key)
    async with body["Body"] as stream:
        assert hashlib.sha256(await stream.read()).hexdigest() == digest
    assert await open_uploads(s3, media.prefix) == []


async def test_a_small_file_is_one_put(media: MediaSettings, s3: S3Client, tmp_path: Path) -> None:
    """A file below the part size is stored with a single PUT (its ETag is its plain MD5)."""
    path = tmp_path / "photo.jpg"
    data = os.urandom(150_000)
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    async with MediaStore(media) as store:
        await store.put_file(path, digest, len(data))
    head = await s3.head_object(Bucket=BUCKET, Key=f"{media.prefix}media/{digest}")
    assert head.get("ETag", "").strip('"') == hashlib.md5(data, usedforsecurity=False).hexdigest()


async def test_the_same_file_twice_is_stored_once(
    media: MediaSettings, s3: S3Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same bytes put twice, even by a second store (a restart), make one object and are sent once."""
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    digest = write_random(first, 9 * MiB)
    second.write_bytes(first.read_bytes())  # posted again in another group: another download, same bytes
    caplog.set_level(logging.INFO, logger="emitter.media")
    async with MediaStore(media) as store:
        one = await store.put_file(first, digest, 9 * MiB)
        two = await store.put_file(second, digest, 9 * MiB)
        assert (store.stats.uploaded, store.stats.skipped, store.stats.bytes_uploaded) == (1, 1, 9 * MiB)
    async with MediaStore(media) as restarted:
        three = await restarted.put_file(second, digest, 9 * MiB)
        assert (restarted.stats.uploaded, restarted.stats.skipped) == (0, 1)
    assert one == two == three
    assert await count_objects(s3, media.prefix) == 1
    assert sum("already stored" in r.getMessage() for r in caplog.records) == 2


async def test_an_upload_left_open_by_a_crash_is_aborted_on_start(
    media: MediaSettings, s3: S3Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A multipart upload abandoned mid-way (a crash) is aborted by the next start, which logs how many."""
    key = f"{media.prefix}media/{'ab' * 32}"
    created = await s3.create_multipart_upload(Bucket=BUCKET, Key=key)
    await s3.upload_part(Bucket=BUCKET, Key=key, UploadId=created["UploadId"], PartNumber=1, Body=b"x" * (5 * MiB))
    assert await open_uploads(s3, media.prefix) == [key]
    await next_second()  # a restart takes longer than that: S3 dates uploads to the second
    caplog.set_level(logging.INFO, logger="emitter.media")
    async with MediaStore(media) as store:
        assert store.stats.aborted_incomplete == 1
    assert await open_uploads(s3, media.prefix) == []
    assert any("aborted 1 incomplete multipart upload" in r.getMessage() for r in caplog.records)


async def test_an_upload_of_others_begun_after_start_is_left_alone(media: MediaSettings, s3: S3Client) -> None:
    """Only uploads initiated before the store started are aborted: one begun since may be in flight."""
    async with MediaStore(media) as store:
        key = f"{media.prefix}media/{'cd' * 32}"
        await s3.create_multipart_upload(Bucket=BUCKET, Key=key)
        assert await store.abort_incomplete() == 0
        assert await open_uploads(s3, media.prefix) == [key]


async def test_bytes_that_do_not_match_their_sha256_are_not_stored(
    media: MediaSettings, s3: S3Client, tmp_path: Path
) -> None:
    """A file whose bytes are not the SHA-256 given is refused, and its multipart upload aborted."""
    path = tmp_path / "damaged.bin"
    write_random(path, 11 * MiB)
    wrong = "0" * 64
    async with MediaStore(media) as store:
        with pytest.raises(ValueError, match="SHA-256"):
            await store.put_file(path, wrong, 11 * MiB)
        assert not await store.exists(wrong)
    assert await open_uploads(s3, media.prefix) == []


async def test_wrong_credentials_are_one_line_naming_the_access_key(s3_endpoint: str) -> None:
    """A refused secret key fails start with one line naming the access key id, never the secret."""
    wrong = "not-the-secret"
    settings = media_settings(s3_endpoint, access_key_id="emitter-dev", secret_access_key=wrong)
    with pytest.raises(MediaStoreError) as caught:
        await MediaStore(settings).start()
    message = str(caught.value)
    assert "'emitter-dev'" in message
    assert wrong not in message + repr(caught.value)
    assert SECRET_KEY not in message
    assert "\n" not in message


async def test_unknown_access_key_is_refused(s3_endpoint: str) -> None:
    """An access key id the server does not know fails start with the one line naming it."""
    unknown = {"access_key_id": "nobody", "secret_access_key": "whatever"}
    settings = media_settings(s3_endpoint, **unknown)
    with pytest.raises(MediaStoreError, match="refused access key id 'nobody'"):
        await MediaStore(settings).start()


async def test_a_missing_bucket_is_created(s3_endpoint: str, s3: S3Client, fresh_bucket: str, tmp_path: Path) -> None:
    """With media.create_bucket (the default) a missing bucket is created on start and written to."""
    path = tmp_path / "voice.ogg"
    digest = write_random(path, 1000)
    async with MediaStore(media_settings(s3_endpoint, bucket=fresh_bucket, prefix="")) as store:
        stored = await store.put_file(path, digest, 1000)
    assert stored.uri == f"s3://{fresh_bucket}/media/{digest}"
    await s3.head_object(Bucket=fresh_bucket, Key=f"media/{digest}")


async def test_a_missing_bucket_is_fatal_without_create_bucket(
    s3_endpoint: str, s3: S3Client, fresh_bucket: str
) -> None:
    """With media.create_bucket false a missing bucket is one fatal line, and nothing is created."""
    settings = media_settings(s3_endpoint, bucket=fresh_bucket, create_bucket=False)
    with pytest.raises(MediaStoreError, match=f"media bucket '{fresh_bucket}' does not exist"):
        await MediaStore(settings).start()
    buckets = await s3.list_buckets()
    assert fresh_bucket not in [b.get("Name") for b in buckets.get("Buckets", [])]


async def test_start_and_stop_are_idempotent(media: MediaSettings) -> None:
    """start twice and stop twice are harmless; the repr names the access key, not the secret."""
    store = MediaStore(media)
    await store.start()
    await store.start()
    assert SECRET_KEY not in repr(store)
    await store.stop()
    await store.stop()


async def test_an_unreachable_store_is_retried_then_retriable(tmp_path: Path) -> None:
    """Nothing listening at the endpoint: the start is retried with backoff, then fails as retriable."""
    nowhere = {"endpoint_url": "http://127.0.0.1:1", "access_key_id": "k", "secret_access_key": "s"}
    settings = media_settings("", **nowhere)
    store = MediaStore(settings, attempts=3, backoff=0.01)
    with pytest.raises(RetriableError, match="unreachable"):
        await store.start()
    assert store.stats.retries == 2


async def test_failed_parts_are_sent_again_not_the_whole_file(
    media: MediaSettings, s3: S3Client, tmp_path: Path
) -> None:
    """A part whose connection drops and one the server fails are each retried; other parts go once."""
    path = tmp_path / "document.pdf"
    digest = write_random(path, 20 * MiB)  # three parts
    with faulty_proxy([("partNumber=2", "drop"), ("partNumber=3", "500")]) as proxy:
        async with MediaStore(media.model_copy(update={"endpoint_url": proxy.url}), backoff=0.01) as store:
            await store.put_file(path, digest, 20 * MiB)
            assert store.stats.retries >= 1  # the 500; aiohttp itself resends once on a dropped kept-alive connection
    parts = [q for r in proxy.requests for q in r.partition("?")[2].split("&") if q.startswith("partNumber=")]
    assert (parts.count("partNumber=1"), parts.count("partNumber=3")) == (1, 2)
    assert parts.count("partNumber=2") >= 2
    body = await s3.get_object(Bucket=BUCKET, Key=f"{media.prefix}media/{digest}")
    async with body["Body"] as stream:
        assert hashlib.sha256(await stream.read()).hexdigest() == digest


async def test_a_part_failing_every_time_aborts_the_upload(media: MediaSettings, s3: S3Client, tmp_path: Path) -> None:
    """A part that fails on every try makes put_file raise, and the multipart upload is aborted first."""
    path = tmp_path / "video.mp4"
    digest = write_random(path, 12 * MiB)
    with faulty_proxy([("partNumber=2", "500")] * 3) as proxy:
        store = MediaStore(media.model_copy(update={"endpoint_url": proxy.url}), attempts=3, backoff=0.01)
        async with store:
            with pytest.raises(ClientError, match="InternalError"):
                await store.put_file(path, digest, 12 * MiB)
    assert any(r.startswith("DELETE ") and "uploadId=" in r for r in proxy.requests)
    assert await open_uploads(s3, media.prefix) == []
    with pytest.raises(ClientError):
        await s3.head_object(Bucket=BUCKET, Key=f"{media.prefix}media/{digest}")


async def test_an_upload_aborted_by_a_peer_starts_again(media: MediaSettings, s3: S3Client, tmp_path: Path) -> None:
    """When a part finds its upload gone (a peer's start aborted it), the file is uploaded anew and stored."""
    path = tmp_path / "audio.mp3"
    digest = write_random(path, 17 * MiB)
    with faulty_proxy([("partNumber=2", "gone")]) as proxy:
        async with MediaStore(media.model_copy(update={"endpoint_url": proxy.url}), backoff=0.01) as store:
            stored = await store.put_file(path, digest, 17 * MiB)
    creates = [r for r in proxy.requests if r.startswith("POST ") and r.endswith("?uploads")]
    parts = [q for r in proxy.requests for q in r.partition("?")[2].split("&") if q.startswith("partNumber=")]
    assert len(creates) == 2
    assert parts.count("partNumber=1") == 2
    head = await s3.head_object(Bucket=BUCKET, Key=f"{media.prefix}media/{digest}")
    assert head.get("ContentLength") == stored.size
    assert await open_uploads(s3, media.prefix) == []
