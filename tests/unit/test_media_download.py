"""media_download's pure parts: which media hold a file, where it is, and which part sizes Telegram takes."""

from __future__ import annotations

from typing import Any

import pytest
from telethon.tl import types

from emitter.media_download import check_part_size, file_location

DOC = types.Document(
    id=7, access_hash=8, file_reference=b"r", date=None, mime_type="video/mp4", size=123, dc_id=2, attributes=[]
)


POLL = types.Poll(1, types.TextWithEntities("q?", []), [], hash=0)


def photo(*sizes: Any) -> Any:
    return types.MessageMediaPhoto(photo=types.Photo(9, 10, b"p", None, list(sizes), dc_id=4))


@pytest.mark.parametrize(
    "media",
    [
        types.MessageMediaWebPage(webpage=types.WebPageEmpty(id=1)),
        types.MessageMediaPoll(poll=POLL, results=types.PollResults()),
        types.MessageMediaGeo(geo=types.GeoPoint(1.0, 2.0, 3)),
        types.MessageMediaContact("1555", "A", "B", "", 0),
        types.MessageMediaPhoto(photo=types.PhotoEmpty(id=1)),
        types.MessageMediaPhoto(photo=None, ttl_seconds=10),  # a self-destructing photo that is gone
        types.MessageMediaDocument(document=types.DocumentEmpty(id=1)),
        photo(types.PhotoStrippedSize("i", b"\x01")),  # only an inline thumbnail
        types.MessageMediaUnsupported(),
        None,
    ],
)
def test_media_without_a_file_have_no_location(media: Any) -> None:
    """Link previews, polls, geo points, contacts and taken-down files have nothing to download."""
    assert file_location(media) is None


def test_a_document_is_downloaded_whole_with_its_mime_type() -> None:
    """A document's location is the document itself (no thumbnail), with its size, MIME type and DC."""
    found = file_location(types.MessageMediaDocument(document=DOC))
    assert found is not None
    loc = found.location
    assert isinstance(loc, types.InputDocumentFileLocation)
    assert (loc.id, loc.access_hash, loc.file_reference, loc.thumb_size) == (7, 8, b"r", "")
    assert (found.size, found.mime, found.dc_id, found.file_id) == (123, "video/mp4", 2, 7)


def test_a_photo_is_downloaded_at_its_largest_size() -> None:
    """Of a photo's sizes the one with the most bytes is taken (a progressive one by its last prefix)."""
    media = photo(
        types.PhotoStrippedSize("i", b"\x01"),
        types.PhotoSize("x", 800, 600, 90_000),
        types.PhotoSizeProgressive("w", 2560, 1920, [10_000, 80_000, 400_000]),
        types.PhotoSize("y", 1280, 960, 200_000),
    )
    found = file_location(media)
    assert found is not None
    assert isinstance(found.location, types.InputPhotoFileLocation)
    assert (found.location.thumb_size, found.size, found.mime, found.dc_id) == ("w", 400_000, "image/jpeg", 4)


@pytest.mark.parametrize("size", [4096, 65536, 524288, 1 << 20])
def test_part_sizes_telegram_accepts(size: int) -> None:
    """Multiples of 4 KB that divide 1 MB are valid part sizes."""
    assert check_part_size(size) == size


@pytest.mark.parametrize("size", [0, -4096, 1000, 12288, 2 << 20])
def test_part_sizes_telegram_refuses_name_the_value(size: int) -> None:
    """Anything else is refused with a message naming the value and the rule."""
    with pytest.raises(ValueError, match=rf"part size {size} is not a multiple of 4096 that divides 1048576"):
        check_part_size(size)
