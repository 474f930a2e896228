"""media_download: files in getFile parts from the in-process Telegram, through a production client and gateway."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from telethon import TelegramClient
from telethon.tl import types

from emitter.clock import ScaledClock
from emitter.media_download import (
    Downloaded,
    ForeignDcError,
    Gone,
    MediaDownload,
    download_media,
    file_location,
    message_refetcher,
)
from emitter.telegram_client import client_options
from emitter.telegram_gateway import Pace, RequestGateway, RequestKind
from tests.faketelegram import FakeTelegram, wait_until

MB = 1 << 20
BIG = random.Random(30).randbytes(30 * MB)
BIG_SHA = hashlib.sha256(BIG).hexdigest()
SPEED = 50
"""Telegram seconds per real second: the gateway paces downloads at two parts a second."""


@pytest.fixture
def clock() -> ScaledClock:
    """One fast clock for the fake's limits and the gateway's pacing."""
    return ScaledClock(SPEED)


@pytest.fixture
def fake(clock: ScaledClock) -> FakeTelegram:
    """A world with a channel to post files in."""
    world = FakeTelegram(seed=3, monotonic=clock.monotonic)
    world.add_channel("Files", username="files")
    return world


@pytest.fixture
def gateway(clock: ScaledClock) -> RequestGateway:
    """The production gateway (default paces) on the shared clock."""
    return RequestGateway(clock=clock)


@pytest.fixture
async def client(fake: FakeTelegram, gateway: RequestGateway) -> AsyncIterator[TelegramClient]:
    """A connected client built as production builds it, every request through `gateway`."""
    tg = fake.client(**client_options())
    gateway.attach(tg)
    await tg.connect()
    yield tg
    await tg.disconnect()
    gateway.detach()


def post_file(fake: FakeTelegram, data: bytes, **kwargs: Any) -> Any:
    """Post `data` as a file in @files; the message as the client will read it."""
    return fake.post("@files", "a file", media=fake.add_file(data, **kwargs))


async def read(client: TelegramClient, message_id: int) -> Any:
    """The message as Telegram hands it out now (with the file reference it has now)."""
    message = await client.get_messages("@files", ids=message_id)
    assert message is not None
    return message


def offsets(fake: FakeTelegram, file_id: int) -> list[int]:
    """Offsets of the file's parts Telegram answered, in order."""
    return [offset for fid, offset, _ in fake.file_requests if fid == file_id]


def parts(size: int, part_size: int = MB) -> list[int]:
    return list(range(0, size, part_size))


def same_bytes(result: Downloaded | Gone, data: bytes) -> bool:
    assert isinstance(result, Downloaded), result
    return result.path.read_bytes() == data and result.size == len(data)


async def test_a_30_mb_document_arrives_byte_identical_one_request_per_part(
    fake: FakeTelegram, client: TelegramClient, gateway: RequestGateway, tmp_path: Path
) -> None:
    """A 30 MB document is spooled whole with its sha256, each 1 MB part asked once, through the gateway."""
    message = await read(client, post_file(fake, BIG, mime_type="video/mp4", file_name="big.mp4").id)
    result = await download_media(client, message.media, tmp_path / "big.part")
    assert isinstance(result, Downloaded)
    assert (result.sha256, result.size) == (BIG_SHA, len(BIG))
    assert hashlib.sha256(result.path.read_bytes()).hexdigest() == BIG_SHA
    assert offsets(fake, message.media.document.id) == parts(len(BIG))
    assert gateway.stats.requests["upload.GetFile"] == 30


async def test_a_flood_wait_mid_file_resumes_at_the_same_offset(
    fake: FakeTelegram, client: TelegramClient, gateway: RequestGateway, tmp_path: Path
) -> None:
    """A 90 s FLOOD_WAIT after the 10th part (past Telethon's 60 s threshold) is held by the gateway, which
    reports the account waiting; the download goes on at part 11, none read twice."""
    message = await read(client, post_file(fake, BIG).id)
    file_id = message.media.document.id
    fake.faults.flood_wait_file(file_id, 90, after_parts=10)
    states: list[str] = []
    gateway.add_health_listener(lambda health: states.append(health.state.value))
    result = await download_media(client, message.media, tmp_path / "big.part")
    assert [f.message for f in fake.faults.fired] == ["FLOOD_WAIT_90"]
    assert gateway.stats.flood_waits["upload.GetFile"] == 1
    assert "waiting" in states
    assert offsets(fake, file_id) == parts(len(BIG))
    assert same_bytes(result, BIG)


async def test_telegrams_getfile_limit_floods_a_fast_downloader_without_rereading(tmp_path: Path) -> None:
    """A gateway paced faster than Telegram's getFile limit gets FLOOD_WAITs, honours them, reads every part once."""
    clock = ScaledClock(2)  # slow enough for sequential parts to outrun the limit's refill
    fake = FakeTelegram(seed=3, monotonic=clock.monotonic)
    fake.add_channel("Files", username="files")
    gateway = RequestGateway({RequestKind.DOWNLOAD: Pace(100, 100)}, account=Pace(100, 100), clock=clock)
    tg = fake.client(**client_options())
    gateway.attach(tg)
    await tg.connect()
    try:
        message = await read(tg, post_file(fake, BIG).id)
        result = await download_media(tg, message.media, tmp_path / "big.part", part_size=MB // 2)
    finally:
        await tg.disconnect()
    assert fake.flood_waits["upload.GetFileRequest"] >= 1
    assert fake.sent_during_wait["upload.GetFileRequest"] == 0
    assert offsets(fake, message.media.document.id) == parts(len(BIG), MB // 2)
    assert same_bytes(result, BIG)


async def test_a_connection_cut_mid_file_resends_only_the_unanswered_part(
    fake: FakeTelegram, client: TelegramClient, tmp_path: Path
) -> None:
    """The connection dies while part 13 is asked; Telethon reconnects, asks it again, and nothing else twice."""
    message = await read(client, post_file(fake, BIG).id)
    file_id = message.media.document.id
    connections = fake.connections_opened
    fake.faults.cut_connection("upload.GetFile", when=lambda r: r.offset == 12 * MB)
    result = await download_media(client, message.media, tmp_path / "big.part")
    assert [f.message for f in fake.faults.fired] == ["connection cut"]
    assert fake.connections_opened > connections, "the client never reconnected"
    assert fake.count("upload.GetFile") == 31  # 30 parts, one of them sent twice
    assert offsets(fake, file_id) == parts(len(BIG))
    assert same_bytes(result, BIG)


async def test_a_client_that_disconnected_continues_the_same_download_after_reconnecting(
    fake: FakeTelegram, client: TelegramClient, tmp_path: Path
) -> None:
    """run() fails while the client is away; after connect() the same download goes on from its offset."""
    message = await read(client, post_file(fake, BIG).id)
    file_id = message.media.document.id
    download = MediaDownload(client, message.media, tmp_path / "big.part")
    task = asyncio.create_task(download.run())
    await wait_until(lambda: len(offsets(fake, file_id)) >= 8, within=30)
    await client.disconnect()
    await asyncio.wait([task])
    # Telethon cancels the futures of requests pending at disconnect(), and refuses new ones.
    assert task.cancelled() or isinstance(task.exception(), ConnectionError)
    stopped = download.offset
    assert 0 < stopped < len(BIG)
    await client.connect()
    result = await download.run()
    resumed = offsets(fake, file_id)
    assert resumed[-len(parts(len(BIG) - stopped)) :] == list(range(stopped, len(BIG), MB))
    assert max(Counter(resumed).values()) <= 2, "a part was read more than twice"
    assert sum(n - 1 for n in Counter(resumed).values()) <= 1, "more than the part in flight was read again"
    assert same_bytes(result, BIG)


async def test_a_spool_file_left_by_an_earlier_attempt_is_continued(
    fake: FakeTelegram, client: TelegramClient, tmp_path: Path
) -> None:
    """A new download over a half-written spool file hashes it from disk and asks Telegram only for the rest."""
    message = await read(client, post_file(fake, BIG).id)
    file_id = message.media.document.id
    spool = tmp_path / "big.part"
    first = asyncio.create_task(download_media(client, message.media, spool))
    await wait_until(lambda: len(offsets(fake, file_id)) >= 12, within=30)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    left = spool.stat().st_size
    asked_before = len(offsets(fake, file_id))
    spool.write_bytes(spool.read_bytes() + b"torn")  # a crash mid-write leaves a short last part
    result = await download_media(client, message.media, spool)
    again = offsets(fake, file_id)[asked_before:]
    assert again[0] == left - left % MB > 0
    assert again == list(range(again[0], len(BIG), MB))
    assert same_bytes(result, BIG)
    assert isinstance(result, Downloaded) and result.sha256 == BIG_SHA


async def test_a_finished_spool_file_asks_telegram_nothing(
    fake: FakeTelegram, client: TelegramClient, tmp_path: Path
) -> None:
    """A spool file holding the whole file is taken as it is: the same sha256, no getFile."""
    data = random.Random(8).randbytes(3 * MB + 11)
    message = await read(client, post_file(fake, data).id)
    first = await download_media(client, message.media, tmp_path / "f.part")
    asked = fake.count("upload.GetFile")
    again = await download_media(client, message.media, tmp_path / "f.part")
    assert again == first
    assert fake.count("upload.GetFile") == asked == 4


async def test_a_spool_file_longer_than_the_file_is_started_again(
    fake: FakeTelegram, client: TelegramClient, tmp_path: Path
) -> None:
    """A spool file longer than Telegram's file cannot be a part of it: it is emptied and the file read whole."""
    data = random.Random(9).randbytes(2 * MB)
    message = await read(client, post_file(fake, data).id)
    spool = tmp_path / "f.part"
    spool.write_bytes(b"x" * (3 * MB))
    result = await download_media(client, message.media, spool)
    assert same_bytes(result, data)
    assert offsets(fake, message.media.document.id) == [0, MB]


async def test_an_expired_reference_refetches_the_message_once_and_continues(
    fake: FakeTelegram, client: TelegramClient, tmp_path: Path
) -> None:
    """FILE_REFERENCE_EXPIRED after 7 parts: one refetch by id, a fresh reference, part 8 next, none twice."""
    message = await read(client, post_file(fake, BIG).id)
    file_id = message.media.document.id
    fake.expire_file_reference(file_id, after_parts=7)
    before, omitted = fake.count("channels.GetMessages"), len(fake.omitted_ids)
    download = MediaDownload(
        client, message.media, tmp_path / "big.part", refetch=message_refetcher(client, "@files", message.id)
    )
    result = await download.run()
    assert download.refetches == 1
    # One refetch: one getMessages, plus one more for each time Telegram left the message out of an answer.
    assert fake.count("channels.GetMessages") - before == 1 + len(fake.omitted_ids) - omitted
    assert [r for r in fake.response_log if "FILE_REFERENCE_EXPIRED" in r[1]] == [
        ("upload.GetFileRequest", "rpc_error 400 FILE_REFERENCE_EXPIRED")
    ]
    assert offsets(fake, file_id) == parts(len(BIG))
    assert download.file.location.file_reference != message.media.document.file_reference
    assert same_bytes(result, BIG)


async def test_a_deleted_message_is_gone_not_an_error(
    fake: FakeTelegram, client: TelegramClient, tmp_path: Path
) -> None:
    """An expired reference whose message was deleted meanwhile gives Gone after one refetch, no retry loop."""
    message = await read(client, post_file(fake, b"doc" * 5000).id)
    fake.delete("@files", [message.id])
    fake.expire_file_reference(message.media.document.id)
    refetch = message_refetcher(client, "@files", message.id)
    result = await download_media(client, message.media, tmp_path / "doc.part", refetch=refetch)
    assert result == Gone("the message was deleted")
    assert fake.count("upload.GetFile") == 1


async def test_a_photo_downloads_its_largest_size(fake: FakeTelegram, client: TelegramClient, tmp_path: Path) -> None:
    """A photo's largest size is fetched (the inline thumbnail is not a file), as image/jpeg."""
    jpeg = random.Random(5).randbytes(700_000)
    message = await read(client, post_file(fake, jpeg, photo=True).id)
    found = file_location(message.media)
    assert found is not None
    assert (found.location.thumb_size, found.size, found.mime) == ("y", len(jpeg), "image/jpeg")
    result = await download_media(client, message.media, tmp_path / "photo.part", part_size=MB // 2)
    assert same_bytes(result, jpeg)
    assert offsets(fake, message.media.photo.id) == [0, MB // 2]


async def test_a_voice_note_downloads_as_a_document(fake: FakeTelegram, client: TelegramClient, tmp_path: Path) -> None:
    """A voice note (a document with a voice audio attribute) arrives whole in one part."""
    ogg = random.Random(6).randbytes(40_000)
    voice = types.DocumentAttributeAudio(duration=3, voice=True)
    message = await read(client, post_file(fake, ogg, mime_type="audio/ogg", attributes=[voice]).id)
    assert message.voice is not None
    result = await download_media(client, message.media, tmp_path / "voice.part")
    assert same_bytes(result, ogg)
    assert isinstance(result, Downloaded) and result.sha256 == hashlib.sha256(ogg).hexdigest()
    assert offsets(fake, message.media.document.id) == [0]


async def test_a_file_on_another_data_centre_is_refused_before_any_request(
    fake: FakeTelegram, client: TelegramClient, tmp_path: Path
) -> None:
    """A file whose dc_id is not the client's raises ForeignDcError naming both DCs, and asks nothing."""
    message = await read(client, post_file(fake, b"x" * 5000, dc_id=fake.dc_id + 2).id)
    with pytest.raises(ForeignDcError, match=rf"DC {fake.dc_id + 2}, the client on DC {fake.dc_id}"):
        await download_media(client, message.media, tmp_path / "far.part")
    assert fake.count("upload.GetFile") == 0


async def test_a_file_telegram_says_is_elsewhere_is_refused_with_its_dc(
    fake: FakeTelegram, client: TelegramClient, tmp_path: Path
) -> None:
    """A file whose media claims the client's DC but lives on another gets FILE_MIGRATE: ForeignDcError, no retry."""
    message = await read(client, post_file(fake, b"x" * 5000, dc_id=fake.dc_id + 1).id)
    message.media.document.dc_id = fake.dc_id  # a stale dc_id: only Telegram's answer tells
    with pytest.raises(ForeignDcError, match=rf"lives on DC {fake.dc_id + 1}, not the client's"):
        await download_media(client, message.media, tmp_path / "far.part")
    assert fake.count("upload.GetFile") == 1


async def test_one_download_runs_once_at_a_time(fake: FakeTelegram, client: TelegramClient, tmp_path: Path) -> None:
    """A second run() while the first still runs is refused: two writers would interleave the spool file."""
    message = await read(client, post_file(fake, BIG).id)
    download = MediaDownload(client, message.media, tmp_path / "big.part")
    first = asyncio.create_task(download.run())
    await wait_until(lambda: bool(fake.file_requests), within=30)
    with pytest.raises(RuntimeError, match="already running"):
        await download.run()
    assert same_bytes(await first, BIG)
