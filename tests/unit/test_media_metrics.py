"""Media series on /metrics: the stage's and the store's counters, only when media are on; the stage's skips by
policy counted without a request to Telegram."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from emitter.media_stage import MediaStage
from emitter.media_store import MediaStore
from emitter.metrics import Metrics
from emitter.protocols import Page
from emitter.records import Media
from emitter.settings import MediaSettings
from emitter.telegram_source import TelegramSource
from tests.factories import GROUP, event
from tests.faketelegram import FakeTelegram

MEDIA = MediaSettings(enabled=True, bucket="media", types=("photo",), max_bytes=1_000)


def media_series(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every emitter_media_* sample of a scrape, by name and labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(metrics.render().decode())
        if f.name.startswith("emitter_media")
        for s in f.samples
    }


def source(media: MediaSettings | None) -> TelegramSource:
    return TelegramSource(FakeTelegram().client(), ["@x"], media=media)


def test_media_counters_become_prometheus_series(tmp_path: Path) -> None:
    """The stage's stored, skipped (by reason) and downloaded bytes, and the store's uploads, retries and
    aborted uploads, appear as counters once the source's stage exists."""
    src = source(MEDIA)
    metrics = Metrics()
    metrics.bind_telegram(src)
    assert media_series(metrics) == {}, "no stage before the source started"
    stage = MediaStage.from_settings(MEDIA, MediaStore(MEDIA), now=lambda: 0.0, spool_dir=tmp_path)
    src.media = stage
    stage.stats.stored, stage.stats.bytes_downloaded = 7, 12_345
    stage.stats.skipped.update({"budget": 2, "too_large": 1})
    stage.store.stats.uploaded, stage.store.stats.retries, stage.store.stats.aborted_incomplete = 5, 3, 1
    assert media_series(metrics) == {
        ("emitter_media_stored_total", ()): 7,
        ("emitter_media_bytes_downloaded_total", ()): 12_345,
        ("emitter_media_uploads_total", ()): 5,
        ("emitter_media_upload_retries_total", ()): 3,
        ("emitter_media_aborted_uploads_total", ()): 1,
        ("emitter_media_skipped_total", (("reason", "budget"),)): 2,
        ("emitter_media_skipped_total", (("reason", "too_large"),)): 1,
    }


def test_no_media_series_when_media_are_off() -> None:
    """A source without media settings adds no emitter_media series."""
    metrics = Metrics()
    metrics.bind_telegram(source(MediaSettings()))
    assert media_series(metrics) == {}


async def test_policy_skips_are_counted_without_asking_telegram(tmp_path: Path) -> None:
    """A page whose media the policy refuses (type, size, unknown size) is returned as it is, each reason
    counted, and the client is never used (an object with no methods stands in for it)."""
    stage = MediaStage.from_settings(MEDIA, MediaStore(MEDIA), now=lambda: 0.0, spool_dir=tmp_path)
    page = Page(
        GROUP,
        [
            event(1, media=Media(type="video", size=10)),
            event(2, media=Media(type="photo", size=5_000)),
            event(3, media=Media(type="photo")),
            event(4, media=Media(type="document", size=10)),
            event(5),
        ],
    )
    assert await stage.complete(object(), object(), page) is page
    assert dict(stage.stats.skipped) == {"type_not_stored": 2, "too_large": 1, "size_unknown": 1}
    assert stage.stats.stored == 0
