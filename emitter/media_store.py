"""Media bytes in an S3-compatible bucket, stored once per content: a thin shell over aiobotocore.

Keys are content-addressed, ``<prefix>media/<sha256 hex>``, never Telegram's ids: the same bytes posted
twice, in two groups, or forwarded are one object, whereas Telegram gives a file re-uploaded by a user a new
``file_id`` and even a new ``file_unique_id`` is only unique per upload, not per content. The hash is of the
bytes we downloaded, so a consumer can check what it reads against the record's ``media.sha256``.

Uploads are multipart above ``part_size`` (one PUT below), every part sent with its Content-MD5, which the
server checks, and its ETag compared with the MD5 we computed; the SHA-256 of the parts is checked against the
caller's before the upload is completed, and a HEAD after completing proves the object is there before
`put_file` returns. A failed part is retried a bounded number of times; an upload that fails is aborted
before the error is raised.

A crash mid-upload leaves an incomplete multipart upload, which S3 keeps (and bills) until aborted: `start`
aborts every incomplete upload under the prefix initiated before it, and logs how many. Two identities
sharing a bucket and prefix therefore abort each other's in-flight uploads when one of them starts; the
other's upload of that part or its completion then fails with ``NoSuchUpload``, and it uploads that file
again from its first part, so nothing is lost, only some bytes sent twice. Give identities their own prefix
to avoid it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from emitter.errors import FatalError, RetriableError
from emitter.lifecycle import Service
from emitter.settings import MediaSettings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef, ListMultipartUploadsOutputTypeDef

log = logging.getLogger("emitter.media")

T = TypeVar("T")

_CLOCK_RESOLUTION = timedelta(seconds=1)
_DENIED = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "InvalidToken"})
_MISSING_BUCKET = frozenset({"NoSuchBucket", "404"})
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
# Worth another try: the server or the path to it had a bad moment, or bytes were damaged on the way.
_TRANSIENT = frozenset(
    {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "BadDigest", "500", "502", "503", "504"}
)


@dataclass(frozen=True, slots=True)
class StoredObject:
    """A durable object: where it is, and what it holds."""

    uri: str
    sha256: str
    size: int


@dataclass(slots=True)
class MediaStoreStats:
    """Counters of one store, read by metrics at scrape time."""

    uploaded: int = 0
    skipped: int = 0
    bytes_uploaded: int = 0
    retries: int = 0
    aborted_incomplete: int = 0


class _DamagedError(Exception):
    """The server stored other bytes than we sent (its ETag is not our MD5): send them again."""


class MediaStoreError(FatalError):
    """The store cannot be used as configured (credentials refused, bucket missing): one line, stop."""


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _md5(data: bytes) -> tuple[str, str]:
    """The hex digest (an ETag) and the base64 one (a Content-MD5 header) of `data`."""
    digest = hashlib.md5(data, usedforsecurity=False).digest()
    return digest.hex(), base64.b64encode(digest).decode()


class MediaStore(Service):
    """Puts files into the bucket under their SHA-256; `async with MediaStore(settings) as store`.

    Args:
        settings: the `[media]` section (bucket, endpoint, credentials, part size).
        attempts: tries of one request (a part, a HEAD) before a transient failure is raised.
        backoff: seconds before the first retry; doubled each time, at most 5 s.
    """

    def __init__(self, settings: MediaSettings, *, attempts: int = 5, backoff: float = 0.2) -> None:
        if settings.bucket is None:
            raise ValueError("MediaStore needs media.bucket")
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self.attempts = attempts
        self.backoff = backoff
        self.stats = MediaStoreStats()
        self.started_at: datetime | None = None
        self._stack: AsyncExitStack | None = None
        self._client: S3Client | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._own: set[str] = set()  # ids of the multipart uploads this store has in flight

    def __repr__(self) -> str:
        return (
            f"MediaStore(endpoint={self.settings.endpoint_url!r}, bucket={self.bucket!r}, "
            f"prefix={self.prefix!r}, access_key_id={self.settings.access_key_id!r})"
        )

    # --- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, make sure the bucket is there, abort what a crash left half uploaded (idempotent)."""
        if self._client is not None:
            return
        self.started_at = datetime.now(UTC)
        stack = AsyncExitStack()
        s = self.settings
        secret = s.secret_access_key.get_secret_value() if s.secret_access_key is not None else None
        config = AioConfig(
            # Checksums are ours (Content-MD5 per part): the SDK's default CRC trailers need aws-chunked
            # encoding, which not every S3-compatible server speaks. Retries are ours too, so that they
            # are bounded in one place and counted.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            s3={"addressing_style": "path"},
        )
        client = await stack.enter_async_context(
            get_session().create_client(
                "s3",
                endpoint_url=s.endpoint_url,
                region_name=s.region,
                aws_access_key_id=s.access_key_id,
                aws_secret_access_key=secret,
                config=config,
            )
        )
        self._stack, self._client = stack, client
        try:
            await self._ensure_bucket()
            await self.abort_incomplete()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close the connections (idempotent)."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    @property
    def client(self) -> S3Client:
        """The S3 client; only between `start` and `stop`."""
        if self._client is None:
            raise RuntimeError("MediaStore is not started")
        return self._client

    # --- naming ----------------------------------------------------------------------------------------------

    def key(self, sha256: str) -> str:
        """The object key of content with this SHA-256 (hex)."""
        if len(sha256) != 64 or sha256.strip("0123456789abcdef"):
            raise ValueError(f"{sha256!r} is not a SHA-256: expected 64 lower-case hex digits")
        return f"{self.prefix}media/{sha256}"

    def uri(self, sha256: str) -> str:
        """The object's URI as records carry it: ``s3://bucket/key``."""
        return f"s3://{self.bucket}/{self.key(sha256)}"

    # --- operations ------------------------------------------------------------------------------------------

    async def exists(self, sha256: str) -> bool:
        """Whether content with this SHA-256 is stored."""
        return await self._size_of(self.key(sha256)) is not None

    async def put_file(self, path: Path, sha256: str, size: int) -> StoredObject:
        """Store the file at `path` (whose SHA-256 and size the caller computed) unless already stored.

        Raises:
            ValueError: the file's bytes do not have that size or SHA-256 (nothing is stored).
            RetriableError: the store stayed unreachable or failing through every retry.
            MediaStoreError: credentials refused or the bucket gone.
        """
        key = self.key(sha256)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:  # the same file from two groups at once is uploaded once
                return await self._put_locked(path, key, sha256, size)
        finally:
            if not lock.locked() and self._locks.get(key) is lock:
                del self._locks[key]

    def file_key(self, telegram_file: str) -> str:
        """The key of the small index object that names the content a Telegram file was stored as."""
        if not telegram_file or "/" in telegram_file:
            raise ValueError(f"{telegram_file!r} is not a Telegram file name: expected e.g. 'document-5000000001'")
        return f"{self.prefix}files/{telegram_file}"

    async def recall(self, telegram_file: str) -> StoredObject | None:
        """The object a Telegram file was stored as (by any run, any identity sharing the prefix), if it is
        still there: a restart or a second identity then stores a known file without downloading it."""
        key = self.file_key(telegram_file)

        async def get() -> bytes:
            answer = await self.client.get_object(Bucket=self.bucket, Key=key)
            async with answer["Body"] as body:
                return await body.read()

        try:
            text = (await self._call(f"GET {key}", get)).decode("ascii", "replace")
        except ClientError as e:
            if _code(e) in _NOT_FOUND:
                return None
            raise
        sha256, _, size = text.partition(" ")
        if not size.isdigit() or len(sha256) != 64 or sha256.strip("0123456789abcdef"):
            log.warning("media index %s holds %r, not '<sha256> <size>': ignored", key, text[:80])
            return None
        if await self._size_of(self.key(sha256)) != int(size):
            return None  # the content object was removed (a lifecycle rule, a person): store it again
        return StoredObject(self.uri(sha256), sha256, int(size))

    async def remember(self, telegram_file: str, stored: StoredObject) -> None:
        """Index `stored` under the Telegram file it came from (after the content object is durable)."""
        key = self.file_key(telegram_file)
        body = f"{stored.sha256} {stored.size}".encode()

        async def put() -> None:
            await self.client.put_object(Bucket=self.bucket, Key=key, Body=body)

        await self._call(f"PUT {key}", put)

    async def abort_incomplete(self) -> int:
        """Abort multipart uploads under the prefix initiated before this store started; their number.

        "Before" means in an earlier second than the start: servers report whole seconds. A crashed
        predecessor's upload is always that old (a restart takes longer), a peer's in-flight one begun
        since is left alone.
        """
        started = self.started_at or datetime.now(UTC)
        stale: list[tuple[str, str]] = []
        key_marker, upload_marker = "", ""
        while True:
            page = await self._uploads_page(key_marker, upload_marker)
            for upload in page.get("Uploads", []):
                initiated = upload.get("Initiated")
                # S3 gives whole seconds (SeaweedFS truncates): only an upload of a second wholly before the
                # start is surely not in flight. Ours never are stale, whatever a server clock says.
                before = initiated is None or initiated + _CLOCK_RESOLUTION <= started
                if "Key" in upload and upload.get("UploadId") not in self._own and before:
                    stale.append((upload["Key"], upload["UploadId"]))
            if not page.get("IsTruncated"):
                break
            key_marker, upload_marker = page.get("NextKeyMarker", ""), page.get("NextUploadIdMarker", "")
        for key, upload_id in stale:
            await self._abort(key, upload_id)
        self.stats.aborted_incomplete += len(stale)
        log.info(
            "aborted %d incomplete multipart upload(s) under s3://%s/%smedia/", len(stale), self.bucket, self.prefix
        )
        return len(stale)

    # --- internals -------------------------------------------------------------------------------------------

    async def _uploads_page(self, key_marker: str, upload_marker: str) -> ListMultipartUploadsOutputTypeDef:
        return await self._call(
            "list uploads",
            lambda: self.client.list_multipart_uploads(
                Bucket=self.bucket, Prefix=f"{self.prefix}media/", KeyMarker=key_marker, UploadIdMarker=upload_marker
            ),
        )

    async def _put_locked(self, path: Path, key: str, sha256: str, size: int) -> StoredObject:
        stored = StoredObject(f"s3://{self.bucket}/{key}", sha256, size)
        existing = await self._size_of(key)
        if existing == size:
            self.stats.skipped += 1
            log.info("media %s already stored (%d bytes): not uploaded again", stored.uri, size)
            return stored
        if existing is not None:
            log.warning("media %s holds %d bytes, not %d: uploading it again", stored.uri, existing, size)
        for attempt in range(1, self.attempts + 1):
            try:
                await (
                    self._put_single(path, key, sha256, size)
                    if size <= self.settings.part_size
                    else self._put_multipart(path, key, sha256, size)
                )
                break
            except ClientError as e:
                # Another identity's start aborted this upload (see the module docstring): start it over.
                if _code(e) != "NoSuchUpload" or attempt == self.attempts:
                    raise
                self.stats.retries += 1
                log.warning("multipart upload of %s was aborted by someone else: uploading it again", stored.uri)
        if await self._size_of(key) != size:
            raise RetriableError(f"media {stored.uri} is not readable after its upload completed")
        self.stats.uploaded += 1
        self.stats.bytes_uploaded += size
        log.info("media %s stored (%d bytes)", stored.uri, size)
        return stored

    async def _put_single(self, path: Path, key: str, sha256: str, size: int) -> None:
        data = await asyncio.to_thread(path.read_bytes)
        # Hashing megabytes takes milliseconds of CPU (md5 ~14 ms per 8 MiB here); hashlib lets go of the GIL
        # for large buffers, so in a thread it no longer holds up other groups' records on the loop.
        await asyncio.to_thread(_check_content, path, data, sha256, size)
        etag, content_md5 = await asyncio.to_thread(_md5, data)

        async def put() -> None:
            answer = await self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentMD5=content_md5, Metadata={"sha256": sha256}
            )
            _check_etag(key, answer.get("ETag", ""), etag)

        await self._call(f"PUT {key}", put)

    async def _put_multipart(self, path: Path, key: str, sha256: str, size: int) -> None:
        created = await self._call(
            f"create upload {key}",
            lambda: self.client.create_multipart_upload(Bucket=self.bucket, Key=key, Metadata={"sha256": sha256}),
        )
        upload_id = created["UploadId"]
        self._own.add(upload_id)
        try:
            parts = await self._upload_parts(path, key, upload_id, sha256, size)
            await self._call(
                f"complete upload {key}",
                lambda: self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                ),
            )
        except BaseException:
            # Not awaited bare: a cancelled put must still abort, or the parts stay billed until next start.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._abort(key, upload_id))
            raise
        finally:
            self._own.discard(upload_id)

    async def _upload_parts(
        self, path: Path, key: str, upload_id: str, sha256: str, size: int
    ) -> list[CompletedPartTypeDef]:
        hasher = hashlib.sha256()
        parts: list[CompletedPartTypeDef] = []
        read = 0
        with path.open("rb") as f:
            for number in range(1, -(-size // self.settings.part_size) + 1):
                data = await asyncio.to_thread(_read, f, self.settings.part_size)
                await asyncio.to_thread(hasher.update, data)  # off the loop, as in _put_single
                read += len(data)
                etag = await self._upload_part(key, upload_id, number, data)
                parts.append({"ETag": etag, "PartNumber": number})
            read += len(await asyncio.to_thread(_read, f, 1))
        if read != size or hasher.hexdigest() != sha256:
            raise ValueError(f"{path}: its bytes are not the {size} bytes with SHA-256 {sha256} the caller gave")
        return parts

    async def _upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        etag, content_md5 = await asyncio.to_thread(_md5, data)

        async def upload() -> str:
            answer = await self.client.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data, ContentMD5=content_md5
            )
            return _check_etag(f"part {number} of {key}", answer.get("ETag", ""), etag)

        return await self._call(f"part {number} of {key}", upload)

    async def _abort(self, key: str, upload_id: str) -> None:
        try:
            await self._call(
                f"abort upload {key}",
                lambda: self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id),
            )
        except ClientError as e:
            if _code(e) != "NoSuchUpload":  # already gone: aborted by someone else, or completed
                raise

    async def _size_of(self, key: str) -> int | None:
        try:
            head = await self._call(f"HEAD {key}", lambda: self.client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as e:
            if _code(e) in _NOT_FOUND:
                return None
            raise
        return head.get("ContentLength")

    async def _ensure_bucket(self) -> None:
        try:
            await self._call("HEAD bucket", lambda: self.client.head_bucket(Bucket=self.bucket))
        except ClientError as e:
            if _code(e) not in _MISSING_BUCKET:
                raise
            if not self.settings.create_bucket:
                raise MediaStoreError(
                    f"media bucket {self.bucket!r} does not exist at {self._where()} and media.create_bucket is "
                    "false: create it, or set media.create_bucket = true"
                ) from None
            try:
                await self._call("create bucket", lambda: self.client.create_bucket(Bucket=self.bucket))
            except ClientError as e2:
                if _code(e2) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:  # a peer was quicker
                    raise
            log.info("created media bucket %r at %s", self.bucket, self._where())

    def _where(self) -> str:
        return self.settings.endpoint_url or f"AWS S3 ({self.settings.region})"

    async def _call(self, what: str, request: Callable[[], Awaitable[T]]) -> T:
        """One request, retried with backoff while it fails transiently; refused credentials are fatal."""
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                return await request()
            except ClientError as e:
                code = _code(e)
                if code in _DENIED:
                    raise MediaStoreError(
                        f"media store {self._where()} refused access key id {self.settings.access_key_id!r} "
                        f"({code} on {what} in bucket {self.bucket!r}): check media.access_key_id and "
                        "media.secret_access_key"
                    ) from None
                if code not in _TRANSIENT or attempt == self.attempts:
                    raise
                reason = code
            except NoCredentialsError:
                raise MediaStoreError(
                    "media store: no credentials: set media.access_key_id and media.secret_access_key "
                    "or the SDK's environment (AWS_ACCESS_KEY_ID, …)"
                ) from None
            except _DamagedError as e:
                if attempt == self.attempts:
                    raise RetriableError(f"media store {self._where()}: {e}") from e
                reason = str(e)
            except (BotoConnectionError, HTTPClientError, OSError) as e:
                if attempt == self.attempts:
                    raise RetriableError(f"media store {self._where()} unreachable ({what}): {e}") from e
                reason = type(e).__name__
            except BotoCoreError as e:
                raise RetriableError(f"media store {self._where()}: {what} failed: {e}") from e
            self.stats.retries += 1
            log.warning("media store: %s failed (%s), try %d of %d", what, reason, attempt, self.attempts)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")  # the loop returns or raises


def _read(f: BinaryIO, n: int) -> bytes:
    return f.read(n)


def _check_content(path: Path, data: bytes, sha256: str, size: int) -> None:
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{path}: its bytes are not the {size} bytes with SHA-256 {sha256} the caller gave")


def _check_etag(what: str, answered: str, expected: str) -> str:
    """`answered`, if it is the MD5 we sent: S3 answers a single PUT's or a part's ETag as the quoted MD5."""
    if answered.strip('"') != expected:
        raise _DamagedError(f"{what}: ETag {answered} is not the MD5 {expected} of the bytes sent")
    return answered
