"""TgData's reads: the real TelegramClient against the in-process Telegram, rows checked as DataFrames and lists."""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from telethon.tl import functions, types

from emitter.account_health import AccountHealth, AccountState
from emitter.errors import FatalError
from emitter.records import Action, Forward, Media, Reply, Sender
from emitter.tgdata import COLUMNS, GROUP_COLUMNS, GroupNotFoundError, TgData, event_to_row, to_rows
from tests.factories import T0, event
from tests.faketelegram import FakeTelegram

T_START = datetime(2025, 1, 1, tzinfo=UTC)
NAIVE_3AM = datetime(2025, 1, 1, 3, 0)  # noqa: DTZ001 - TgData takes naive datetimes as UTC, as tgdata users pass them


@pytest.fixture
def fake() -> FakeTelegram:
    """A world with a 250-message channel (one message a minute from T_START) and a small supergroup."""
    world = FakeTelegram(seed=1)
    news = world.add_channel("News", username="news", date=T_START - timedelta(days=1))
    world.post_many(news, 250, start_date=T_START, step=timedelta(minutes=1))
    talk = world.add_channel("Talk", username="talk", megagroup=True)
    bob = world.add_user("Bob", last_name="Builder", username="bob")
    world.post(talk, "hello", sender=bob)
    world.post(talk, "answer", reply_to=2)
    return world


@pytest.fixture
async def tg(fake: FakeTelegram) -> AsyncIterator[TgData]:
    """TgData on a client of the fake world."""
    async with TgData(client=fake.client(flood_sleep_threshold=0)) as client:
        yield client


def without_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("emitter.tgdata._pandas", lambda: None)


def enable_search(fake: FakeTelegram) -> None:
    """Answer messages.search from the world's history (the in-process Telegram has no search of its own)."""

    def search(_link: Any, req: Any) -> Any:
        st = fake._resolve_input_peer(req.peer)
        hits = [
            m
            for m in reversed(fake.messages(st.marked))
            if req.q.lower() in (getattr(m, "message", None) or "").lower()
        ]
        page = [m for m in hits if not req.offset_id or m.id < req.offset_id][: min(req.limit or 100, 100)]
        users, chats = fake._entities(page, [st])
        return types.messages.ChannelMessages(
            pts=getattr(st, "pts", 1), count=len(hits), messages=page, topics=[], chats=chats, users=users
        )

    fake._handlers[functions.messages.SearchRequest] = search


def test_event_to_row_fills_every_column() -> None:
    """A full event maps to one value per column, with tgdata's names and "@" usernames."""
    row = event_to_row(
        event(
            42,
            text="hi",
            sender=Sender(7, name="Bob Builder", username="bob"),
            reply=Reply(to_message_id=41),
            forward=Forward(from_id=-1001, from_name="Hidden"),
            media=Media(type="photo"),
            views=3,
            edit_date=T0 + timedelta(minutes=1),
            grouped_id=99,
            action=Action(type="pin_message"),
        )
    )
    assert list(row) == list(COLUMNS)
    assert row["MessageId"] == 42
    assert row["SenderName"] == "Bob Builder"
    assert row["Username"] == "@bob"
    assert row["ReplyToId"] == 41
    assert (row["ForwardedFrom"], row["ForwardedFromName"]) == (-1001, "Hidden")
    assert (row["MediaType"], row["Views"], row["GroupedId"], row["Action"]) == ("photo", 3, 99, "pin_message")
    assert row["Date"] == T0
    assert row["GroupId"] == -1001234567890
    assert event_to_row(event(1))["SenderId"] is None


async def test_get_messages_returns_every_message_oldest_first_with_dtypes(tg: TgData, fake: FakeTelegram) -> None:
    """The whole history as a DataFrame: ids ascending, ids int64, dates tz-aware UTC, nullable columns."""
    frame = await tg.get_messages("@news")
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(COLUMNS)
    assert frame["MessageId"].tolist() == fake.message_ids("@news")
    assert frame["MessageId"].dtype == "int64"
    assert frame["GroupId"].dtype == "int64"
    assert (frame["GroupId"] == fake.peer_id("@news")).all()
    for column in ("Date", "EditDate"):
        assert isinstance(frame[column].dtype, pd.DatetimeTZDtype)
        assert str(frame[column].dtype.tz) == "UTC"
    assert frame["Date"].iloc[1] == pd.Timestamp(T_START)
    assert frame["SenderId"].dtype == "Int64"
    assert (frame["SenderId"] == fake.peer_id("@news")).all(), "a broadcast channel is its posts' sender"
    assert frame["Action"].iloc[0] == "channel_create"
    assert frame["Message"].iloc[-1] == "message 249"


async def test_get_messages_of_a_group_names_senders_and_replies(tg: TgData, fake: FakeTelegram) -> None:
    """Supergroup rows carry the sender's id, name, @username and the replied-to id."""
    frame = await tg.get_messages(fake.peer_id("@talk"))
    hello, answer = frame.iloc[1], frame.iloc[2]
    assert (hello["SenderName"], hello["Username"]) == ("Bob Builder", "@bob")
    assert answer["ReplyToId"] == 2
    assert answer["SenderName"] == "Alice"


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        # a limit alone: the newest `limit`, as tgdata answers it; more than there are: all of them
        ({"limit": 10}, list(range(242, 252))),
        ({"limit": 1000}, list(range(1, 252))),
        ({"after_id": 240}, list(range(241, 252))),
        # from an after_id or a start_date: the first `limit` after it
        ({"after_id": 100, "limit": 5}, list(range(101, 106))),
        # naive datetimes are UTC; message i (id i + 2) is dated T_START + i minutes
        ({"start_date": NAIVE_3AM, "end_date": T_START + timedelta(hours=3, minutes=4)}, [182, 183, 184, 185, 186]),
        ({"start_date": NAIVE_3AM, "limit": 3}, [182, 183, 184]),
        # an end_date with a limit: the newest `limit` sent at or before it (end_date is inclusive)
        ({"end_date": T_START + timedelta(hours=3, minutes=4), "limit": 3}, [184, 185, 186]),
        ({"end_date": T_START + timedelta(hours=3, minutes=4, seconds=30), "limit": 3}, [184, 185, 186]),
    ],
)
async def test_get_messages_window(tg: TgData, window: dict[str, Any], expected: list[int]) -> None:
    """limit, after_id and start/end dates bound the ascending walk; a limit alone takes the newest."""
    frame = await tg.get_messages("@news", **window)
    assert frame["MessageId"].tolist() == expected


def test_album_ids_above_2_53_survive_a_column_with_missing_values() -> None:
    """A 17-digit GroupedId (Telegram's album ids) stays exact beside a row without one (no float64 detour)."""
    frame = to_rows([event_to_row(event(1, grouped_id=13_000_000_000_000_001)), event_to_row(event(2))])
    assert frame["GroupedId"].iloc[0] == 13_000_000_000_000_001
    assert frame["GroupedId"].isna().tolist() == [False, True]


async def test_an_album_arrives_sharing_grouped_id_and_albums_true_assembles_it(tg: TgData, fake: FakeTelegram) -> None:
    """Three photos posted as one album come back as three rows with one GroupedId; with albums=True as one
    post row (the caption, every member id) between the single messages around it."""
    fake.post("@talk", "before")
    photos = [fake.add_file(bytes([i]) * 64, photo=True) for i in range(3)]
    album = fake.post_album("@talk", photos, caption="holiday")
    fake.post("@talk", "after")
    ids = [m.id for m in album]

    frame = await tg.get_messages("@talk")
    members = frame[frame["MessageId"].isin(ids)]
    assert members["GroupedId"].nunique() == 1
    assert int(members["GroupedId"].iloc[0]) == album[0].grouped_id
    assert members["MediaType"].tolist() == ["photo"] * 3

    posts = await tg.get_messages("@talk", albums=True)
    assert list(posts.columns) == [*COLUMNS, "AlbumMessageIds"]
    assert len(posts) == len(frame) - 2
    (row,) = posts[posts["GroupedId"].notna()].itertuples()
    assert (row.AlbumMessageIds, row.Message, row.MessageId) == (ids, "holiday", ids[0])
    assert posts["Message"].tolist()[-3:] == ["before", "holiday", "after"]


async def test_get_messages_without_pandas_gives_dicts(tg: TgData, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without pandas the rows are plain dicts with aware UTC datetimes."""
    without_pandas(monkeypatch)
    rows = await tg.get_messages("@news", limit=3)
    assert isinstance(rows, list)
    assert [r["MessageId"] for r in rows] == [249, 250, 251]
    assert rows[1]["Date"] == T_START + timedelta(minutes=248)
    assert rows[1]["Date"].tzinfo is UTC


async def test_progress_and_batches(tg: TgData) -> None:
    """progress_callback sees each page; batch_callback gets numbered batches of batch_size, the rest last."""
    progress: list[tuple[int, int | None, float]] = []
    batches: list[tuple[list[int], int]] = []

    async def on_batch(rows: pd.DataFrame, number: int) -> None:
        batches.append((rows["MessageId"].tolist(), number))

    frame = await tg.get_messages(
        "@news",
        with_progress=True,
        progress_callback=lambda current, total, rate: progress.append((current, total, rate)),
        batch_size=120,
        batch_callback=on_batch,
        batch_delay=0.001,
    )
    assert [p[0] for p in progress] == [100, 200, 251]
    assert all(total == 251 and rate > 0 for _, total, rate in progress)
    assert [(len(ids), n) for ids, n in batches] == [(120, 1), (120, 2), (11, 3)]
    assert [i for ids, _ in batches for i in ids] == frame["MessageId"].tolist()


async def test_limit_bounds_the_progress_total_and_sync_batch_callbacks_work(tg: TgData) -> None:
    """With a limit the reported total is the limit; a plain function works as batch_callback."""
    totals: list[int | None] = []
    sizes: list[int] = []
    await tg.get_messages(
        "@news",
        limit=150,
        progress_callback=lambda _c, total, _r: totals.append(total),
        batch_size=100,
        batch_callback=lambda rows, _n: sizes.append(len(rows)),
    )
    assert set(totals) == {150}
    assert sizes == [100, 50]


async def test_batch_callback_needs_a_batch_size(tg: TgData) -> None:
    """A batch_callback without batch_size is refused instead of being silently ignored."""
    with pytest.raises(ValueError, match="batch_size"):
        await tg.get_messages("@news", batch_callback=lambda rows, n: None)


async def test_get_message_count_is_one_request(tg: TgData, fake: FakeTelegram) -> None:
    """The count is Telegram's own total, read with a single one-message history request."""
    await tg.get_messages("@news", limit=1)  # resolve the group first
    fake.reset_counters()
    assert await tg.get_message_count("@news") == len(fake.message_ids("@news")) == 251
    assert fake.count("GetHistoryRequest") == 1
    assert fake.history_calls[0].limit == 1


async def test_search_messages(tg: TgData, fake: FakeTelegram) -> None:
    """Telegram's search results come back as rows, oldest first, at most `limit`."""
    enable_search(fake)
    found = await tg.search_messages("message 24", "@news")
    assert found["Message"].tolist() == ["message 24", *(f"message {i}" for i in range(240, 250))]
    newest = await tg.search_messages("message", "@news", limit=3)
    assert newest["MessageId"].tolist() == [249, 250, 251]


async def test_list_groups(tg: TgData, fake: FakeTelegram) -> None:
    """Groups and channels of the account with tgdata's columns; private chats are left out."""
    fake.post(fake.add_user("Carol"), "private")
    groups = await tg.list_groups()
    assert list(groups.columns) == list(GROUP_COLUMNS)
    assert groups["GroupID"].dtype == "int64"
    by_title = groups.set_index("Title")
    assert by_title.loc["News", "GroupID"] == fake.peer_id("@news")
    assert by_title.loc["News", "Username"] == "@news"
    assert (by_title.loc["Talk", "IsMegagroup"], by_title.loc["Talk", "Type"]) == (True, "SUPERGROUP")
    assert by_title.loc["News", "IsChannel"]
    assert len(groups) == 2


@pytest.mark.parametrize("frames", [True, False], ids=["dataframe", "dicts"])
async def test_export_csv_and_json(
    tg: TgData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, frames: bool
) -> None:
    """Exports write one record per row with ISO dates and empty values for missing ones."""
    if not frames:
        without_pandas(monkeypatch)
    rows = await tg.get_messages("@news", limit=3, after_id=0)  # the first three
    tg.export_messages(rows, tmp_path / "m.csv")
    tg.export_messages(rows, tmp_path / "m.json", format="json")
    with (tmp_path / "m.csv").open(encoding="utf-8") as f:
        from_csv = list(csv.DictReader(f))
    from_json = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert [r["MessageId"] for r in from_csv] == ["1", "2", "3"]
    assert [r["MessageId"] for r in from_json] == [1, 2, 3]
    assert datetime.fromisoformat(from_json[1]["Date"]) == T_START
    assert datetime.fromisoformat(from_csv[1]["Date"]) == T_START
    assert from_json[1]["ReplyToId"] is None
    assert from_csv[1]["EditDate"] == ""
    with pytest.raises(ValueError, match="format"):
        tg.export_messages(rows, tmp_path / "m.xml", format="xml")  # type: ignore[arg-type]


async def test_bare_positive_ids_from_tgdata_still_work(tg: TgData, fake: FakeTelegram) -> None:
    """tgdata listed groups by bare positive ids; those find the channel or basic group they meant."""
    family = fake.add_chat("Family")
    fake.post(family, "hi")
    news = await tg.get_messages(str(-(fake.peer_id("@news") + 10**12)), limit=2)
    chat = await tg.get_messages(family.id)
    assert news["GroupId"].tolist() == [fake.peer_id("@news")] * 2
    assert chat["Message"].tolist() == ["", "hi"]


async def test_unknown_group_is_a_clear_error(tg: TgData) -> None:
    """A group the account cannot resolve raises GroupNotFoundError (a ValueError) naming it."""
    with pytest.raises(GroupNotFoundError, match="@nosuchgroup") as caught:
        await tg.get_messages("@nosuchgroup")
    assert isinstance(caught.value, ValueError)


async def test_a_logged_out_session_is_refused(fake: FakeTelegram) -> None:
    """A client whose session is not logged in gets a FatalError telling how to log in."""
    tg = TgData(client=fake.client(fake.new_session(authorized=False)))
    with pytest.raises(FatalError, match="emitter login"):
        await tg.list_groups()
    await tg.close()


async def test_close_disconnects_only_what_tgdata_connected(fake: FakeTelegram) -> None:
    """A client TgData connected is disconnected on close; one the caller connected stays connected."""
    ours = fake.client()
    async with TgData(client=ours) as tg:
        await tg.list_groups()
    assert not ours.is_connected()
    theirs = fake.client()
    await theirs.connect()
    async with TgData(client=theirs) as tg:
        await tg.list_groups()
    assert theirs.is_connected()
    await theirs.disconnect()


async def test_the_health_callback_hears_of_a_ban_once(fake: FakeTelegram) -> None:
    """Healthy reads call the health callback not at all; after a ban every call fails naming `emitter login`
    and the callback hears "banned" once."""
    calls: list[AccountHealth] = []
    client = fake.client()
    tg = TgData(client=client, health_callback=calls.append)
    assert len(await tg.get_messages("@news", limit=10)) == 10
    assert calls == []
    fake.kill_session(client, message="USER_DEACTIVATED_BAN")
    for _ in range(2):
        with pytest.raises(FatalError, match="emitter login"):
            await tg.get_messages("@news", limit=10)
    await tg.close()
    assert [(c.state, c.reason) for c in calls] == [(AccountState.BANNED, "USER_DEACTIVATED_BAN")]


async def test_the_health_callback_hears_a_ban_found_at_connect(fake: FakeTelegram) -> None:
    """A session banned before TgData connects: the login check itself reports "banned" to the callback."""
    session = fake.new_session()
    fake.kill_session(session, message="USER_DEACTIVATED_BAN")
    calls: list[AccountHealth] = []
    tg = TgData(client=fake.client(session), health_callback=calls.append)
    with pytest.raises(FatalError, match="emitter login"):
        await tg.list_groups()
    await tg.close()
    assert [c.state for c in calls] == [AccountState.BANNED]


async def test_health_check_asks_telegram_and_get_account_health_reports_without_io(fake: FakeTelegram) -> None:
    """tgdata's two health calls: None before any request; ok after a check Telegram answered; a logout named."""
    client = fake.client()
    tg = TgData(client=client)
    assert tg.get_account_health() is None
    first = await tg.health_check()
    assert (first["logged_in"], first["errors"], first["health"]["state"]) == (True, [], "ok")
    sent = fake.count()
    assert tg.get_account_health() == first["health"] and fake.count() == sent  # no I/O
    fake.kill_session(client, message="AUTH_KEY_UNREGISTERED")
    second = await tg.health_check()
    assert second["logged_in"] is False
    assert second["health"]["state"] == "logged out" and second["errors"][0].startswith("logged out")
    await tg.close()
