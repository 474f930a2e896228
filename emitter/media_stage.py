"""The media stage: a page of a group waits until the files of its records are durable in the object store.

It sits where a group's pages leave the Telegram source (`TelegramSource.pages`), so the record that names an
object is never committed before the object exists, and a crash anywhere before the commit leaves the cursor
where it was: the restart reads the page again, finds the object already stored (same SHA-256, same key) and
publishes the record once. Only the group whose page carries media waits; every other group's pages go on
(their feeders are their own tasks), and downloads pass the account's request gateway as their own request
kind, so they never take the history walks' or the live path's turn.

Telegram's file locations go stale (a file reference expires within hours), so the stage does not keep them
from the walk: it asks for the page's media messages by id once, just before downloading (one request per page
with media, through the gateway). A Telegram file is downloaded once: the store keeps a small index object
per Telegram file naming the content it was stored as, so a forward, a repost, a rescan, a restart or another
identity sharing the prefix finds it there instead of downloading it again. What is not stored keeps its
metadata only, and the reason is counted: the type or size the policy refuses, the day's byte budget spent, a
file Telegram no longer has.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
import tempfile
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from telethon import types
from telethon import utils as tl_utils
from telethon.tl import functions

from emitter.media_download import (
    DEFAULT_PART_SIZE,
    Downloaded,
    FileLocation,
    Gone,
    MediaDownload,
    MediaDownloadError,
    file_location,
)
from emitter.media_policy import MediaDecision, MediaPolicy
from emitter.media_store import MediaStore, StoredObject
from emitter.protocols import Page
from emitter.read_budget import ReadBudget
from emitter.records import EventType, MessageEvent
from emitter.settings import MediaSettings
from emitter.sweep import chunks

log = logging.getLogger(__name__)

_ASK_AGAIN: Final = 3
"""Times an id Telegram left out of a by-id answer is asked again before the page is retried from its cursor."""
_KNOWN: Final = 10_000
"""Telegram files remembered in memory as stored (file id -> object); beyond them the store's index answers."""


class MediaMissingError(ConnectionError):
    """Telegram kept leaving a message out of by-id answers: the page is read again from its cursor later."""


@dataclass(slots=True)
class MediaStats:
    """Counters of the stage, read by metrics at scrape time."""

    stored: int = 0
    """Records whose object is in the store (uploaded now, or found there)."""
    known: int = 0
    """Of those, Telegram files stored before (a forward, a repost, a rescan, an earlier run): no download."""
    bytes_downloaded: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    """Records published with metadata only, by reason."""


class MediaStage:
    """Stores the media of a page's records and fills their `storage_uri`, `sha256` and `stored_size`.

    Args:
        policy: which media are stored (types, sizes, per-group overrides).
        store: the started object store.
        spool_dir: where downloads are spooled (one file per Telegram file, removed once stored; a spool left by
            an attempt that failed is continued by the next, not restarted).
        concurrency: downloads at once for the account.
        bytes_per_day: bytes downloaded per rolling day (0: no limit); a file that does not fit is skipped.
        part_size: bytes per getFile request.
        now: Unix seconds (the source's clock, scaled in tests).
    """

    def __init__(
        self,
        policy: MediaPolicy,
        store: MediaStore,
        spool_dir: Path,
        *,
        concurrency: int = 2,
        bytes_per_day: int = 0,
        part_size: int = DEFAULT_PART_SIZE,
        now: Callable[[], float],
    ) -> None:
        self.policy = policy
        self.store = store
        self.spool_dir = spool_dir
        self._owned_spool = False
        self.part_size = part_size
        self.now = now
        self.budget = ReadBudget(bytes_per_day)
        self.stats = MediaStats()
        self._slots = asyncio.Semaphore(concurrency)
        self._known: OrderedDict[int, StoredObject] = OrderedDict()
        self._files: dict[int, asyncio.Lock] = {}
        self._reserved = 0
        """Bytes of the downloads in flight, not yet taken from the budget."""

    @classmethod
    def from_settings(
        cls, settings: MediaSettings, store: MediaStore, *, now: Callable[[], float], spool_dir: Path | None = None
    ) -> MediaStage:
        spool = spool_dir or settings.spool_dir
        owned = spool is None
        if spool is None:
            # Its own directory: spool files are named by Telegram's file ids, which are the same for every
            # emitter on the host that downloads that file; two processes must never share one spool.
            spool = Path(tempfile.mkdtemp(prefix="telegram-emitter-media-"))
        spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        stage = cls(
            MediaPolicy.from_settings(settings),
            store,
            spool,
            concurrency=settings.download_concurrency,
            bytes_per_day=settings.bytes_per_day,
            now=now,
        )
        stage._owned_spool = owned
        return stage

    def close(self) -> None:
        """Remove the spool directory if the stage made it (a configured `media.spool_dir` stays, so that a
        restart continues what it holds)."""
        if self._owned_spool:
            shutil.rmtree(self.spool_dir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"MediaStage(store={self.store!r}, spool_dir={str(self.spool_dir)!r}, stats={self.stats})"

    async def complete(self, client: Any, entity: Any, page: Page) -> Page:
        """`page` with the objects of its stored media named in its records (the page itself if none is)."""
        wanted: list[int] = []
        for n, event in enumerate(page.events):
            if event.event_type is EventType.DELETE or event.media is None:
                continue
            decision = self.policy.decide(page.group.id, event.media)
            if decision is MediaDecision.STORE:
                wanted.append(n)
            elif decision not in (MediaDecision.NO_MEDIA, MediaDecision.DISABLED):
                self.stats.skipped[decision.value] += 1
        if not wanted:
            return page
        messages = await self._messages(client, entity, [page.events[n].message_id for n in wanted])
        # Every download runs to its end (or failure) before a failure is raised: none is left running
        # unawaited, and what finished is in the store for the retry to find.
        outcomes = await asyncio.gather(
            *(self._store(client, entity, page.events[n], messages[page.events[n].message_id]) for n in wanted),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        stored = [o for o in outcomes if not isinstance(o, BaseException)]
        events = list(page.events)
        for n, obj in zip(wanted, stored, strict=True):
            media = events[n].media
            if obj is not None and media is not None:
                media = dataclasses.replace(media, storage_uri=obj.uri, sha256=obj.sha256, stored_size=obj.size)
                events[n] = dataclasses.replace(events[n], media=media)
        return dataclasses.replace(page, events=events)

    async def _store(self, client: Any, entity: Any, event: MessageEvent, message: Any) -> StoredObject | None:
        """The object of the message's file: one stored before, or downloaded and stored now (None: skipped)."""
        found = None if isinstance(message, types.MessageEmpty) else file_location(getattr(message, "media", None))
        if found is None:
            # Deleted since the walk read it, or its media is gone or not a file any more.
            self.stats.skipped["gone"] += 1
            return None
        lock = self._files.setdefault(found.file_id, asyncio.Lock())
        try:
            async with lock:  # one download of a file that two records of a page (or two groups) carry
                return await self._store_file(client, entity, event, message, found)
        finally:
            if not lock.locked() and self._files.get(found.file_id) is lock:
                del self._files[found.file_id]

    async def _store_file(
        self, client: Any, entity: Any, event: MessageEvent, message: Any, found: FileLocation
    ) -> StoredObject | None:
        known = self._known.get(found.file_id)
        if known is not None:
            self._known.move_to_end(found.file_id)
        else:
            known = await self.store.recall(_telegram_file(found))
            if known is not None:
                self._remember(found, known)
        if known is not None:
            self.stats.stored += 1
            self.stats.known += 1
            return known
        size = found.size or (event.media.size if event.media else None) or 0
        # The downloads of a page run at once: each checks the budget less what the others still download,
        # or a page of many large files would all pass the check before the first had counted.
        if self.budget.limited and self.budget.left(self.now()) - self._reserved < size:
            self.stats.skipped["budget"] += 1
            log.warning(
                "group %d message %d: the media byte budget of %d a day has no room for %d bytes: metadata only",
                event.group.id,
                event.message_id,
                self.budget.limit,
                size,
                extra={"group_id": event.group.id},
            )
            return None
        reserved = size
        self._reserved += reserved
        try:
            # The slot is held through the upload: the spool holds at most `concurrency` files, however slow
            # the store, so its disk needs at most max_bytes x download_concurrency.
            async with self._slots:
                result = await self._download(client, entity, event, message, found)
                if result is None:
                    return None
                self._reserved -= reserved
                reserved = 0
                self.budget.take(event.group.id, self.now(), result.size)
                self.stats.bytes_downloaded += result.size
                obj = await self.store.put_file(result.path, result.sha256, result.size)
                with contextlib.suppress(FileNotFoundError):
                    result.path.unlink()
        finally:
            self._reserved -= reserved
        await self.store.remember(_telegram_file(found), obj)
        self._remember(found, obj)
        self.stats.stored += 1
        return obj

    def _remember(self, found: FileLocation, obj: StoredObject) -> None:
        self._known[found.file_id] = obj
        if len(self._known) > _KNOWN:
            self._known.popitem(last=False)

    async def _download(
        self, client: Any, entity: Any, event: MessageEvent, message: Any, found: FileLocation
    ) -> Downloaded | None:
        """The message's file in its spool file (None: Telegram no longer has it, or it cannot be had)."""
        spool = self.spool_dir / f"{found.file_id}.part"
        download = MediaDownload(
            client,
            message.media,
            spool,
            refetch=self._refetcher(client, entity, event.message_id),
            part_size=self.part_size,
        )
        try:
            result = await download.run()
        except asyncio.CancelledError:
            # Telethon cancels the requests in flight when its connection closes: that is a disconnect
            # (retried from the cursor; the spool keeps the bytes), unless this task is being cancelled.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            raise ConnectionError("the connection closed during a media download") from None
        except MediaDownloadError as e:
            self.stats.skipped["download_failed"] += 1
            log.warning("group %d message %d: %s: metadata only", event.group.id, event.message_id, e)
        else:
            if not isinstance(result, Gone):
                return result
            self.stats.skipped["gone"] += 1
        # The record goes out with metadata only and is not read again: nothing would ever continue this
        # spool file, which would otherwise stay on the pod's disk for good.
        with contextlib.suppress(FileNotFoundError):
            spool.unlink()
        return None

    async def _messages(self, client: Any, entity: Any, ids: Sequence[int]) -> dict[int, Any]:
        """The TL messages of `ids` in the group, by id (MessageEmpty for those Telegram says are gone).

        Matched by id, never by position, and asked again when Telegram leaves an existing id out; basic
        groups share the account's ids, so a message of another chat is not this group's (MessageEmpty)."""
        input_peer = await client.get_input_entity(entity)
        owner = tl_utils.get_peer_id(input_peer)
        found: dict[int, Any] = {}
        missing = list(dict.fromkeys(ids))
        for _attempt in range(_ASK_AGAIN + 1):
            for chunk in chunks(missing):
                want = [types.InputMessageID(i) for i in chunk]
                request: Any = (
                    functions.channels.GetMessagesRequest(input_peer, want)
                    if isinstance(input_peer, types.InputPeerChannel)
                    else functions.messages.GetMessagesRequest(want)
                )
                answer = await client(request)
                for message in answer.messages:
                    if message.id not in chunk:
                        continue
                    ours = isinstance(message, types.MessageEmpty) or tl_utils.get_peer_id(message.peer_id) == owner
                    found[message.id] = message if ours else types.MessageEmpty(id=message.id)
            missing = [i for i in missing if i not in found]
            if not missing:
                return found
        raise MediaMissingError(
            f"messages {missing[:5]} of group {owner} did not come back in {_ASK_AGAIN + 1} by-id answers"
        )

    def _refetcher(self, client: Any, entity: Any, message_id: int) -> Callable[[], Any]:
        async def refetch() -> Any:
            return (await self._messages(client, entity, [message_id]))[message_id]

        return refetch


def _telegram_file(found: FileLocation) -> str:
    """The file's name in the store's index: its kind and Telegram's id (photos and documents number apart)."""
    kind = "photo" if isinstance(found.location, types.InputPhotoFileLocation) else "document"
    return f"{kind}-{found.file_id}"
