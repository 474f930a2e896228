"""TgData.get_message_batch against the in-process Telegram, and MessageBatch's JSON (tgdata's v1 format)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from emitter.message_batch import BatchFormatError, MessageBatch
from emitter.tgdata import TgData
from tests.faketelegram import FakeTelegram

T_START = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def fake() -> FakeTelegram:
    """A 250-message channel, one message a minute from T_START (ids 2..251; id 1 creates the channel)."""
    world = FakeTelegram(seed=5)
    news = world.add_channel("News", username="news", date=T_START - timedelta(days=1))
    world.post_many(news, 250, start_date=T_START, step=timedelta(minutes=1))
    return world


@pytest.fixture
async def tg(fake: FakeTelegram) -> AsyncIterator[TgData]:
    """TgData on a client of the fake world."""
    async with TgData(client=fake.client(flood_sleep_threshold=0)) as client:
        yield client


def ids(batch: MessageBatch) -> list[int]:
    return [int(m["id"]) for m in batch.messages]


async def test_batches_read_the_history_in_order_without_gaps(fake: FakeTelegram, tg: TgData) -> None:
    """Batches chained by next_after_id cover every message once; the last one says "end"."""
    first = await tg.get_message_batch("@news", limit=100)
    second = await tg.get_message_batch("@news", after_id=first.next_after_id, limit=200)
    assert (ids(first), first.stop_reason, first.next_after_id) == (list(range(1, 101)), "limit", 100)
    assert (ids(second), second.stop_reason) == (list(range(101, 252)), "end")
    assert ids(first) + ids(second) == fake.message_ids("@news")
    assert (second.chat_id, second.after_id, second.media_mode) == (fake.peer_id("@news"), 100, "references")
    empty = await tg.get_message_batch("@news", after_id=251)
    assert (empty.messages, empty.next_after_id, empty.stop_reason) == ([], 251, "end")


async def test_records_have_tgdata_fields(tg: TgData, fake: FakeTelegram) -> None:
    """Ids are decimal strings, dates canonical UTC with "Z", service messages say their action."""
    batch = await tg.get_message_batch("@news", limit=2)
    service, post = batch.messages
    assert (service["kind"], service["service_action"], service["text"]) == ("service", "channel_create", None)
    assert (post["id"], post["kind"], post["text"]) == ("2", "message", "message 0")
    assert post["date"] == "2025-01-01T00:00:00.000000Z"
    assert post["sender"]["id"] == str(fake.peer_id("@news"))
    assert set(post) == {
        "id", "kind", "date", "edit_date", "text", "sender", "post_author",
        "reply_to_id", "forward_from_id", "grouped_id", "service_action", "media",
    }  # fmt: skip


async def test_the_same_read_gives_the_same_batch_id(tg: TgData, tmp_path: Path) -> None:
    """batch_id is the content's hash: a replayed read is recognisable; saved batches load back."""
    a = await tg.get_message_batch("@news", after_id=10, limit=20)
    b = await tg.get_message_batch("@news", after_id=10, limit=20)
    c = await tg.get_message_batch("@news", after_id=11, limit=20)
    assert a.batch_id == b.batch_id != c.batch_id
    path = a.save(tmp_path)
    assert path.name == f"{a.batch_id}.json"
    assert MessageBatch.from_json(path.read_text(encoding="utf-8")) == a


async def test_a_tampered_batch_is_refused(tg: TgData) -> None:
    """Changing a record without recomputing batch_id, or breaking id order, fails to load."""
    document = (await tg.get_message_batch("@news", limit=3)).to_dict()
    document["messages"][1]["text"] = "edited"
    with pytest.raises(BatchFormatError, match="batch_id"):
        MessageBatch.from_json(json.dumps(document))
    document["messages"].reverse()
    with pytest.raises(BatchFormatError, match="increase"):
        MessageBatch.from_json(json.dumps(document))
    with pytest.raises(BatchFormatError, match="fields"):
        MessageBatch.from_json("{}")


async def test_dates_bound_the_batch_half_open(tg: TgData) -> None:
    """[start_date, end_date): message i (id i + 2) is dated T_START + i minutes."""
    batch = await tg.get_message_batch(
        "@news", start_date=T_START + timedelta(minutes=10), end_date=T_START + timedelta(minutes=13)
    )
    assert ids(batch) == [12, 13, 14]
    assert batch.stop_reason == "end"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "limit must be between 1 and 10000, got 0"),
        ({"limit": 10_001}, "limit must be between 1 and 10000"),
        ({"after_id": -1}, "after_id must be between 0 and"),
        ({"start_date": T_START}, "start_date and end_date go together"),
    ],
)
async def test_bad_arguments_are_refused(tg: TgData, kwargs: dict[str, object], message: str) -> None:
    """Out-of-range limits and cursors, and half a date window, fail naming the bad value."""
    with pytest.raises(ValueError, match=message):
        await tg.get_message_batch("@news", **kwargs)  # type: ignore[arg-type]
