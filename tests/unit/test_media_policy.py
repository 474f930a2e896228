"""MediaPolicy: which records' media bytes are stored, from their metadata and their group."""

from __future__ import annotations

import pytest

from emitter.media_policy import MediaDecision, MediaPolicy
from emitter.records import Media
from emitter.settings import MediaSettings, load_settings

MiB = 2**20
GROUP = -1001234567890
QUIET = -1009999999999  # stores no media at all
VIDEOS = -1005555555555  # videos only, up to 1 GiB

POLICY = MediaPolicy.from_settings(
    load_settings(
        overrides={
            "media": {
                "enabled": "true",
                "bucket": "media",
                "types": "photo,document,voice",
                "max_bytes": str(10 * MiB),
                "groups": f"{QUIET}: types=none; {VIDEOS}: types=video, max_bytes={2**30}",
            }
        }
    ).media
)

CASES = [
    # (name, group, media, decision)
    ("no media", GROUP, None, MediaDecision.NO_MEDIA),
    ("a photo", GROUP, Media(type="photo", size=200_000), MediaDecision.STORE),
    ("exactly max_bytes", GROUP, Media(type="document", size=10 * MiB), MediaDecision.STORE),
    ("one byte above max_bytes", GROUP, Media(type="document", size=10 * MiB + 1), MediaDecision.TOO_LARGE),
    ("a type not listed", GROUP, Media(type="video", size=1000), MediaDecision.TYPE_NOT_STORED),
    ("metadata without bytes", GROUP, Media(type="poll"), MediaDecision.TYPE_NOT_STORED),
    ("size unknown", GROUP, Media(type="photo"), MediaDecision.SIZE_UNKNOWN),
    ("group storing none", QUIET, Media(type="photo", size=10), MediaDecision.TYPE_NOT_STORED),
    ("override allows its type", VIDEOS, Media(type="video", size=500 * MiB), MediaDecision.STORE),
    ("override keeps its own limit", VIDEOS, Media(type="video", size=2**30 + 1), MediaDecision.TOO_LARGE),
    ("override replaces the types", VIDEOS, Media(type="photo", size=10), MediaDecision.TYPE_NOT_STORED),
]


@pytest.mark.parametrize(("group", "media", "decision"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decision(group: int, media: Media | None, decision: MediaDecision) -> None:
    """Each record's media gets the decision its type, size and group call for."""
    assert POLICY.decide(group, media) is decision


def test_disabled_stores_nothing() -> None:
    """With media.enabled false (the default) no media is stored, whatever its type."""
    policy = MediaPolicy.from_settings(MediaSettings())
    assert policy.decide(GROUP, Media(type="photo", size=10)) is MediaDecision.DISABLED
    assert policy.decide(GROUP, None) is MediaDecision.NO_MEDIA


def test_override_without_max_bytes_keeps_the_section_limit() -> None:
    """An override naming only types keeps the section's max_bytes."""
    settings = MediaSettings(enabled=True, bucket="media", max_bytes=100, groups={GROUP: {"types": ["voice"]}})
    policy = MediaPolicy.from_settings(settings)
    assert policy.decide(GROUP, Media(type="voice", size=100)) is MediaDecision.STORE
    assert policy.decide(GROUP, Media(type="voice", size=101)) is MediaDecision.TOO_LARGE


def test_groups_as_json() -> None:
    """Per-group overrides may also be given as a JSON object (environment of a container platform)."""
    settings = load_settings(overrides={"media": {"groups": '{"-1001": {"types": ["photo"], "max_bytes": 5}}'}}).media
    assert settings.groups[-1001].types == ("photo",)
    assert settings.groups[-1001].max_bytes == 5


def test_default_types_are_the_downloadable_kinds() -> None:
    """By default every downloadable kind but stickers is stored."""
    assert set(MediaSettings().types) == {"photo", "document", "video", "video_note", "voice", "audio", "animation"}
