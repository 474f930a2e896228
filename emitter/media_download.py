"""One message's file from Telegram, part by part, into a spool file: resumable, never from byte 0 twice.

Archivers that call Telethon's `download_media` restart a large file from its first byte whenever a
FloodWait, a reconnect or an expired file reference breaks the download (the scars NOTES.md lists). Here
the download is an object that owns its progress: the next offset and the running sha256 of what is in the
spool file. Every part is one `upload.getFile` sent through the client's `_call`, which the account's
`RequestGateway` has taken over (it paces the DOWNLOAD kind, holds a FloodWait of any length and retries
it, and retries transient errors, all at the same offset). What still reaches this module:

- `FILE_REFERENCE_EXPIRED`: the message is fetched again by id (the caller's `Refetch`) for a fresh
  reference, and the download goes on at the same offset; a deleted message is the result `Gone`;
- a request that cannot go out (the client disconnected for good): the error goes to the caller, and
  `run()` again, on this object or on a new one over the same spool file, continues where it stopped
  (a new object re-reads the spool file from local disk for its hash: Telegram is not asked again).

Telegram's rules for a part (core.telegram.org/api/files): `offset` a multiple of 4 KB, `limit` a multiple
of 4 KB that divides 1 MB, and no part crossing a 1 MB boundary. Parts here are `part_size` long at
multiples of `part_size`, which keeps all three.

Data centres: Telethon sends getFile for a file on another DC through a sender it borrows
(`_borrow_exported_sender`: connect there, `auth.exportAuthorization` at home, `auth.importAuthorization`
there), and follows `FILE_MIGRATE_X` the same way. The in-process Telegram the tests run against serves
one DC only (its files live on the world's DC; it has no second DC to connect to and no authorization
export), so that path could not be tested here: this module downloads from the client's own DC and refuses
a file whose `dc_id` names another one with `ForeignDcError`, before sending anything (and the same error
when Telegram answers `FILE_MIGRATE_X` to a `dc_id` that was stale). No CDN either: the
requests do not set `cdn_supported`, so Telegram answers from its own servers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from telethon import errors
from telethon import utils as tl_utils
from telethon.tl import functions, types

log = logging.getLogger("emitter.telegram.media")

PART_ALIGN: Final = 4096
"""Telegram's granularity for a part's offset and limit."""
PART_MAX: Final = 1 << 20
"""The largest part Telegram serves, and the boundary no part may cross."""
DEFAULT_PART_SIZE: Final = PART_MAX
"""1 MB parts: the DOWNLOAD pace counts requests, not bytes, so the largest part moves the most per token."""
_MAX_REFETCHES: Final = 3
"""Fresh references fetched in a row without a byte of progress before the download gives up."""

Refetch = Callable[[], Awaitable[Any]]
"""Fetches the message again (through the gateway): the TL Message, or None / MessageEmpty when it is gone."""


@dataclass(frozen=True, slots=True)
class FileLocation:
    """Where a message's file is and what it is: the getFile location, its size in bytes and MIME type."""

    location: Any
    """An `InputDocumentFileLocation` or `InputPhotoFileLocation` (with the file reference)."""
    size: int
    """Bytes Telegram says the file has (0: not said)."""
    mime: str
    dc_id: int
    """The data centre holding the file."""

    @property
    def file_id(self) -> int:
        """Telegram's id of the photo or document."""
        return int(self.location.id)


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A whole file in its spool file."""

    path: Path
    sha256: str
    """Hex digest of the file's bytes."""
    size: int


@dataclass(frozen=True, slots=True)
class Gone:
    """The message or its file no longer exists on Telegram: nothing to download, nothing to retry."""

    reason: str


class MediaDownloadError(RuntimeError):
    """A download that cannot finish as asked (retrying the same way would fail the same way)."""


class ForeignDcError(MediaDownloadError):
    """The file lives on another data centre than the client's (see the module docstring)."""


def _photo_size_bytes(size: Any) -> int:
    """Bytes of one of a photo's sizes; 0 for the inline thumbnails getFile does not serve."""
    if isinstance(size, types.PhotoSize):
        return int(size.size)
    if isinstance(size, types.PhotoSizeProgressive):
        return int(max(size.sizes, default=0))
    return 0


def file_location(media: Any) -> FileLocation | None:
    """The downloadable file of a message's media (pure): a photo's largest size or a document.

    Documents cover videos, voice notes, audio, stickers and plain files. Web page previews, polls, geo
    points, contacts, games, invoices and media whose file was taken down (PhotoEmpty, DocumentEmpty,
    an expired self-destructing file) have none: None.
    """
    if isinstance(media, types.MessageMediaDocument) and isinstance(media.document, types.Document):
        doc = media.document
        location = types.InputDocumentFileLocation(
            id=doc.id, access_hash=doc.access_hash, file_reference=doc.file_reference, thumb_size=""
        )
        return FileLocation(location, int(doc.size or 0), str(doc.mime_type or "application/octet-stream"), doc.dc_id)
    if isinstance(media, types.MessageMediaPhoto) and isinstance(media.photo, types.Photo):
        photo = media.photo
        sizes = [s for s in photo.sizes if _photo_size_bytes(s) > 0]
        if not sizes:
            return None
        largest = max(sizes, key=_photo_size_bytes)
        location = types.InputPhotoFileLocation(
            id=photo.id, access_hash=photo.access_hash, file_reference=photo.file_reference, thumb_size=largest.type
        )
        return FileLocation(location, _photo_size_bytes(largest), "image/jpeg", photo.dc_id)
    return None


def check_part_size(part_size: int) -> int:
    """`part_size` if Telegram accepts it as every part's limit; ValueError naming it otherwise."""
    if part_size <= 0 or part_size % PART_ALIGN or PART_MAX % part_size:
        raise ValueError(f"part size {part_size} is not a multiple of 4096 that divides 1048576 (e.g. 524288)")
    return part_size


def _spooled(path: Path, part_size: int, expected: int) -> tuple[int, Any]:
    """What a spool file left by an earlier attempt holds that can be kept: (bytes, their sha256).

    Whole parts only (a crash may have cut the last write short), all of it when it is the whole file,
    nothing when it is longer than the file. The file is truncated to what is kept.
    """
    hasher = hashlib.sha256()
    try:
        length = path.stat().st_size
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        return 0, hasher
    keep = length if expected and length == expected else length - length % part_size
    if expected and length > expected:
        keep = 0
    with path.open("r+b") as f:
        f.truncate(keep)
        left = keep
        while left:
            block = f.read(min(left, PART_MAX))
            if not block:
                break
            hasher.update(block)
            left -= len(block)
    return keep, hasher


def _append(path: Path, data: bytes, at: int) -> None:
    """Write one part at its offset (the file is `at` bytes long)."""
    with path.open("r+b") as f:
        f.seek(at)
        f.write(data)


class MediaDownload:
    """One file's download into `spool`, continued by every `run()` from where the last one stopped.

    Args:
        client: a connected TelegramClient whose requests pass the account's `RequestGateway`.
        media: the message's media (a TL MessageMediaPhoto or MessageMediaDocument with a file).
        spool: the file the bytes go to; one per Telegram file (a spool left by an earlier attempt at the
            same file is continued, so two files must never share one).
        refetch: fetches the message again when the file reference expired (see `message_refetcher`);
            None lets `FILE_REFERENCE_EXPIRED` reach the caller.
        part_size: bytes per getFile request (a multiple of 4 KB dividing 1 MB).
    """

    def __init__(
        self,
        client: Any,
        media: Any,
        spool: str | Path,
        *,
        refetch: Refetch | None = None,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        found = file_location(media)
        if found is None:
            raise ValueError(f"{type(media).__name__} has no file to download (expected a photo or a document)")
        self._client = client
        self.file = found
        self.spool = Path(spool)
        self.part_size = check_part_size(part_size)
        self._refetch = refetch
        self.offset = 0
        """Bytes in the spool file, all of them hashed: the next part starts here."""
        self._hasher: Any = None
        self.refetches = 0
        """How often the message was fetched again for a fresh file reference."""
        self._running = False

    def __repr__(self) -> str:
        return f"MediaDownload(file={self.file.file_id}, offset={self.offset}, size={self.file.size})"

    async def run(self) -> Downloaded | Gone:
        """Download the rest of the file; the whole file's path, sha256 and size, or `Gone`."""
        if self._running:
            raise RuntimeError(f"{self!r} is already running: one run() at a time")
        self._running = True
        try:
            return await self._run()
        finally:
            self._running = False

    async def _run(self) -> Downloaded | Gone:
        self._check_dc()
        await self._resume()
        stale = 0
        while not self._complete():
            try:
                part = await self._part()
            except errors.FileMigrateError as e:
                raise ForeignDcError(
                    f"file {self.file.file_id} lives on DC {e.new_dc}, not the client's: "
                    "downloads from another data centre are not supported"
                ) from e
            except (errors.FileReferenceExpiredError, errors.FilerefUpgradeNeededError) as e:
                stale += 1
                if self._refetch is None or stale > _MAX_REFETCHES:
                    raise MediaDownloadError(
                        f"file {self.file.file_id}: file reference still expired after {stale - 1} refetch(es)"
                    ) from e
                gone = await self._fresh_reference(self._refetch)
                if gone is not None:
                    return gone
                continue
            stale = 0
            await asyncio.to_thread(_append, self.spool, part, self.offset)
            self._hasher.update(part)
            self.offset += len(part)
            if len(part) < self.part_size:
                break  # Telegram's end of the file
        return self._result()

    def _check_dc(self) -> None:
        home = self._client.session.dc_id
        if self.file.dc_id and home and self.file.dc_id != home:
            raise ForeignDcError(
                f"file {self.file.file_id} lives on DC {self.file.dc_id}, the client on DC {home}: "
                "downloads from another data centre are not supported"
            )

    async def _resume(self) -> None:
        """Trust the progress in memory while the spool file agrees with it; else re-read the spool file."""
        try:
            length = self.spool.stat().st_size
        except FileNotFoundError:
            length = -1
        if self._hasher is not None and length == self.offset:
            return
        self.offset, self._hasher = await asyncio.to_thread(_spooled, self.spool, self.part_size, self.file.size)
        if self.offset:
            log.info("continuing file %d at byte %d of %d", self.file.file_id, self.offset, self.file.size)

    def _complete(self) -> bool:
        return bool(self.file.size) and self.offset >= self.file.size

    async def _part(self) -> bytes:
        request = functions.upload.GetFileRequest(self.file.location, offset=self.offset, limit=self.part_size)
        result = await self._client(request)
        if not isinstance(result, types.upload.File):
            raise MediaDownloadError(f"file {self.file.file_id}: Telegram answered {type(result).__name__}")
        return bytes(result.bytes)

    async def _fresh_reference(self, refetch: Refetch) -> Gone | None:
        """Take the file reference of the message as Telegram has it now; `Gone` if it has none any more."""
        self.refetches += 1
        log.info("file reference of file %d expired at byte %d: fetching the message", self.file.file_id, self.offset)
        message = await refetch()
        if message is None or isinstance(message, types.MessageEmpty):
            return Gone("the message was deleted")
        fresh = file_location(getattr(message, "media", None))
        if fresh is None or fresh.file_id != self.file.file_id:
            return Gone("the message no longer holds this file")
        self.file = fresh
        return None

    def _result(self) -> Downloaded:
        if self.file.size and self.offset != self.file.size:
            raise MediaDownloadError(
                f"file {self.file.file_id}: Telegram ended it at byte {self.offset} of {self.file.size}"
            )
        return Downloaded(self.spool, self._hasher.hexdigest(), self.offset)


async def download_media(
    client: Any,
    media: Any,
    spool: str | Path,
    *,
    refetch: Refetch | None = None,
    part_size: int = DEFAULT_PART_SIZE,
) -> Downloaded | Gone:
    """Download a message's file into `spool` (continuing what an earlier attempt left there)."""
    return await MediaDownload(client, media, spool, refetch=refetch, part_size=part_size).run()


_REFETCH_ATTEMPTS: Final = 3


def message_refetcher(client: Any, peer: Any, message_id: int) -> Refetch:
    """A `Refetch` of message `message_id` of `peer` (an input peer or marked id), by id, through the gateway.

    Matched by id, never by position: Telegram may leave an existing message out of an answer, so an id
    that came back as neither a message nor MessageEmpty is asked again; one that never comes back is
    unknown, not deleted (MediaDownloadError). Basic groups share the account's ids: a message of another
    chat is not this one.
    """

    async def refetch() -> Any:
        input_peer = await client.get_input_entity(peer)
        want = [types.InputMessageID(message_id)]
        if isinstance(input_peer, types.InputPeerChannel):
            request: Any = functions.channels.GetMessagesRequest(input_peer, want)
        else:
            request = functions.messages.GetMessagesRequest(want)
        owner = tl_utils.get_peer_id(input_peer)
        for _attempt in range(_REFETCH_ATTEMPTS):
            answer = await client(request)
            for message in answer.messages:
                if message.id != message_id:
                    continue
                if isinstance(message, types.MessageEmpty):
                    return message
                if tl_utils.get_peer_id(message.peer_id) == owner:
                    return message
                return None  # the id belongs to another chat of the account: not this chat's message
        raise MediaDownloadError(f"message {message_id} did not come back in {_REFETCH_ATTEMPTS} answers")

    return refetch
