"""TgData.download_media_by_id: files of chosen messages through the gateway, from the in-process Telegram."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from emitter.clock import ScaledClock
from emitter.telegram_gateway import RequestGateway
from emitter.tgdata import TgData
from tests.faketelegram import FakeTelegram

PHOTO = random.Random(1).randbytes(300_000)  # one part: downloads ask for 1 MB parts
PDF = b"%PDF-1.4 report" * 300


@pytest.fixture
def fake() -> FakeTelegram:
    """A channel with a photo, a document and a text post, and two basic groups with a photo each."""
    world = FakeTelegram(seed=7)
    pics = world.add_channel("Pics", username="pics")
    world.post(pics, "a photo", media=world.add_file(PHOTO, photo=True))  # id 2
    world.post(pics, "the report", media=world.add_file(PDF, mime_type="application/pdf", file_name="r.pdf"))
    world.post(pics, "just text")  # id 4
    world.post(world.add_chat("Work"), "a message of another basic group", media=world.add_file(b"w", photo=True))
    family = world.add_chat("Family")
    world.post(family, "holiday", media=world.add_file(b"jpeg" * 100, photo=True))
    return world


@pytest.fixture
def gateway() -> RequestGateway:
    """A gateway on a fast clock, so its pacing shows in counts without slowing the test."""
    return RequestGateway(clock=ScaledClock(100))


@pytest.fixture
async def tg(fake: FakeTelegram, gateway: RequestGateway) -> AsyncIterator[TgData]:
    """TgData on a client of the fake world, pacing through `gateway`."""
    async with TgData(client=fake.client(flood_sleep_threshold=0), gateway=gateway) as client:
        yield client


def content(path: object) -> bytes:
    return Path(str(path)).read_bytes()


def spools(directory: Path) -> list[Path]:
    return list(directory.glob("*.part"))


def bare(fake: FakeTelegram, peer: str) -> int:
    return -fake.peer_id(peer) - 1_000_000_000_000


async def test_downloads_go_to_files_named_by_group_and_message(
    fake: FakeTelegram, tg: TgData, gateway: RequestGateway, tmp_path: Path
) -> None:
    """Photo and document land as <group>_<message>.<ext> with their bytes; text and unknown ids give None."""
    got = await tg.download_media_by_id("@pics", [2, 3, 4, 999], output_dir=tmp_path / "out")
    assert got[4] is None and got[999] is None
    assert (Path(str(got[2])).name, Path(str(got[3])).name) == (
        f"{bare(fake, '@pics')}_2.jpg",
        f"{bare(fake, '@pics')}_3.pdf",
    )
    assert (content(got[2]), content(got[3])) == (PHOTO, PDF)
    assert gateway.stats.requests["upload.GetFile"] == len(fake.file_requests) == 2  # one part each


async def test_files_already_downloaded_are_reused(fake: FakeTelegram, tg: TgData, tmp_path: Path) -> None:
    """A second download into the same directory asks Telegram for no file part."""
    first = await tg.download_media_by_id("@pics", 2, output_dir=tmp_path)
    parts = len(fake.file_requests)
    again = await tg.download_media_by_id("@pics", 2, output_dir=tmp_path)
    assert again == first
    assert len(fake.file_requests) == parts


async def test_without_a_directory_the_bytes_come_back(tg: TgData) -> None:
    """output_dir=None returns each file's bytes."""
    assert await tg.download_media_by_id("@pics", [3, 2]) == {3: PDF, 2: PHOTO}


async def test_basic_group_ids_of_other_chats_are_not_taken(fake: FakeTelegram, tg: TgData) -> None:
    """Basic groups share the account's ids: an id of another chat is not this group's message."""
    groups = await tg.list_groups()
    family = int(groups.loc[groups["Title"] == "Family", "GroupID"].iloc[0])
    (holiday,) = fake.message_ids(family)[-1:]
    (other,) = fake.message_ids(int(groups.loc[groups["Title"] == "Work", "GroupID"].iloc[0]))[-1:]
    got = await tg.download_media_by_id(family, [holiday, other])
    assert got == {holiday: b"jpeg" * 100, other: None}


async def test_ids_telegram_leaves_out_are_asked_again(tmp_path: Path) -> None:
    """With a fifth of existing ids left out of each answer, every photo still arrives, matched by id."""
    fake = FakeTelegram(seed=11, omit_fraction=0.2)
    album = fake.add_channel("Album", username="album")
    photos = {fake.post(album, f"p{i}", media=fake.add_file(bytes([i]) * 10, photo=True)).id: i for i in range(20)}
    async with TgData(client=fake.client(), gateway=RequestGateway(clock=ScaledClock(100))) as tg:
        got = await tg.download_media_by_id("@album", list(photos))
    assert fake.omitted_ids, "the seed should make Telegram leave some ids out"
    assert got == {mid: bytes([i]) * 10 for mid, i in photos.items()}


async def test_a_download_cut_short_is_continued_not_restarted(fake: FakeTelegram, tg: TgData, tmp_path: Path) -> None:
    """A `.part` file an earlier call left holding the first 1 MB: the next call asks Telegram only for the rest."""
    data = random.Random(2).randbytes(3 * (1 << 20) + 5)
    media = fake.add_file(data, mime_type="application/pdf")
    mid = fake.post("@pics", "a big report", media=media).id
    (tmp_path / f"{bare(fake, '@pics')}_{mid}.pdf.part").write_bytes(data[: 1 << 20])
    got = await tg.download_media_by_id("@pics", mid, output_dir=tmp_path)
    assert content(got[mid]) == data
    assert [offset for fid, offset, _ in fake.file_requests if fid == media.document.id] == [1 << 20, 2 << 20, 3 << 20]
    assert not spools(tmp_path)


async def test_an_expired_file_reference_mid_download_still_delivers_the_file(fake: FakeTelegram, tg: TgData) -> None:
    """The reference expires after the first part: the message is fetched again and the file arrives whole."""
    data = random.Random(3).randbytes(2 * (1 << 20) + 7)
    media = fake.add_file(data, mime_type="video/mp4")
    mid = fake.post("@pics", "a video", media=media).id
    fake.expire_file_reference(media.document.id, after_parts=1)
    assert await tg.download_media_by_id("@pics", mid) == {mid: data}
    assert [offset for fid, offset, _ in fake.file_requests if fid == media.document.id] == [0, 1 << 20, 2 << 20]
