"""TgData's group calls (lookup, access, joining, profiles, linked chats) against the in-process Telegram."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pandas as pd
import pytest
from telethon.tl import functions, types

from emitter.clock import ScaledClock
from emitter.telegram_gateway import RequestGateway
from emitter.tgdata import (
    LINKED_COLUMNS,
    AccountMismatchError,
    GroupNotFoundError,
    GroupReferenceError,
    TgData,
)
from emitter.tgdata_groups import invite_hash, invite_label, project
from tests.faketelegram import FakeTelegram


@pytest.fixture
def fake() -> FakeTelegram:
    """Joined, unjoined, approval-only, lost and basic groups, and a channel with its discussion group."""
    world = FakeTelegram(seed=3)
    news = world.add_channel("News", username="news", about="Daily news")
    world.post_many(news, 5)
    chat = world.add_channel("News chat", username="newschat", megagroup=True)
    world.link_discussion(news, chat)
    world.post_many(world.add_channel("Outside", username="outside", joined=False), 3)
    world.add_channel("Club", username="club", megagroup=True, joined=False, join_request=True)
    world.add_channel("Banned", username="banned")
    world.add_chat("Family")
    world.add_user("Bob", username="bob")
    return world


@pytest.fixture
async def tg(fake: FakeTelegram) -> AsyncIterator[TgData]:
    """TgData on a client of the fake world."""
    async with TgData(client=fake.client(flood_sleep_threshold=0)) as client:
        yield client


def joins(fake: FakeTelegram) -> int:
    return fake.count(functions.channels.JoinChannelRequest)


async def test_lookup_group_by_username_link_and_id_names_the_same_group(fake: FakeTelegram, tg: TgData) -> None:
    """ "@news", a t.me link and the marked id all look up the joined channel, with tgdata's fields."""
    by_name = await tg.lookup_group("@news")
    by_link = await tg.lookup_group("https://t.me/news")
    by_id = await tg.lookup_group(fake.peer_id("@news"))
    assert by_name.group == by_link.group == by_id.group
    assert by_name.group.peer_id == fake.peer_id("@news")
    assert (by_name.group.title, by_name.group.username, by_name.group.kind) == ("News", "news", "channel")
    assert by_name.member is True
    assert by_name.account_id == fake.me.id
    assert by_name.to_dict()["group"]["peer_id"] == fake.peer_id("@news")


async def test_lookup_group_says_the_account_is_outside_an_unjoined_channel(tg: TgData) -> None:
    """A public channel the account has not joined is found, with member False and nothing joined."""
    lookup = await tg.lookup_group("outside")
    assert (lookup.group.title, lookup.member, lookup.request_needed) == ("Outside", False, False)
    assert (await tg.lookup_group("@club")).request_needed is True


async def test_lookup_group_refuses_users_unknown_names_and_unknown_invites(tg: TgData) -> None:
    """A user, a name nobody holds and an invite nobody made each fail with one clear error (no hash in it)."""
    with pytest.raises(GroupReferenceError, match="User is not a group"):
        await tg.lookup_group("@bob")
    with pytest.raises(GroupNotFoundError, match="nobody"):
        await tg.lookup_group("@nobody")
    with pytest.raises(GroupNotFoundError, match="INVITE_HASH_INVALID") as caught:
        await tg.lookup_group("https://t.me/+AbCdEf123")
    assert "AbCdEf123" not in str(caught.value)


async def test_invite_links_preview_a_private_group_and_join_it(fake: FakeTelegram, tg: TgData) -> None:
    """An invite into a private channel: a preview without ids, unprobed, then joined; results never hold the hash."""
    private = fake.add_channel("Hidden", megagroup=True, joined=False)
    link = fake.invite_link(private)
    preview = await tg.lookup_group(link)
    assert (preview.group.title, preview.group.kind, preview.group.peer_id, preview.member) == (
        "Hidden",
        "megagroup",
        None,
        False,
    )
    assert preview.target == invite_label(link.rsplit("+", 1)[1])
    assert link.rsplit("+", 1)[1] not in str(preview.to_dict())
    access = await tg.check_group_access(link)
    assert (access.status, access.reason) == ("unprobed", "NO_PEER")
    joined = await tg.join_group(link)
    assert (joined.status, joined.target) == ("joined", preview.target)
    assert fake.is_joined(private)
    after = await tg.lookup_group(link)
    assert (after.member, after.group.peer_id) == (True, fake.peer_id(private))
    assert (await tg.check_group_access(link)).status == "readable"
    assert (await tg.join_group(link)).status == "already_joined"
    assert fake.count(functions.messages.ImportChatInviteRequest) == 1


async def test_invite_links_that_need_approval_file_a_request(fake: FakeTelegram, tg: TgData) -> None:
    """An invite with admin approval says so in the lookup and answers "requested" to a join."""
    link = fake.invite_link(fake.add_channel("Vetted", joined=False), request_needed=True)
    assert (await tg.lookup_group(link)).request_needed is True
    assert (await tg.join_group(link)).status == "requested"


async def test_account_id_must_be_the_logged_in_account(fake: FakeTelegram, tg: TgData) -> None:
    """account_id, as tgdata requires it, is checked against the session's account."""
    assert (await tg.lookup_group("@news", account_id=fake.me.id)).account_id == fake.me.id
    with pytest.raises(AccountMismatchError, match=f"logged in as account {fake.me.id}"):
        await tg.lookup_group("@news", account_id=fake.me.id + 1)


async def test_check_group_access_reads_one_message(fake: FakeTelegram, tg: TgData) -> None:
    """A joined channel and a public unjoined one are readable; the probe asks for one message only."""
    joined = await tg.check_group_access("@news")
    outside = await tg.check_group_access("@outside")
    assert (joined.status, joined.readable, joined.member) == ("readable", True, True)
    assert (outside.status, outside.readable, outside.member) == ("readable", True, False)
    assert fake.history_calls[-1].limit == 1
    assert fake.history_calls[-1].peer == fake.peer_id("@outside")


async def test_check_group_access_reports_a_channel_that_banned_the_account(fake: FakeTelegram, tg: TgData) -> None:
    """After losing access the lookup still names the group, and the probe's refusal is the reason."""
    fake.revoke_access("@banned")
    access = await tg.check_group_access("@banned")
    assert (access.status, access.readable, access.reason) == ("denied", False, "CHANNEL_PRIVATE")
    assert access.group is not None and access.group.title == "Banned"
    assert access.to_dict()["readable"] is False


async def test_join_group_joins_once(fake: FakeTelegram, tg: TgData) -> None:
    """An unjoined public channel is joined; asking again costs no join request."""
    first = await tg.join_group("@outside")
    assert (first.status, first.member, first.group.title) == ("joined", True, "Outside")
    assert fake.is_joined("@outside")
    sent = joins(fake)
    again = await tg.join_group("@outside")
    assert again.status == "already_joined"
    assert joins(fake) == sent


async def test_join_group_files_a_request_where_admins_approve(fake: FakeTelegram, tg: TgData) -> None:
    """A group that approves joins answers "requested"; the account stays outside until approved."""
    result = await tg.join_group("@club")
    assert (result.status, result.member) == ("requested", None)
    assert not fake.is_joined("@club")
    fake.approve_join("@club")
    assert (await tg.join_group("@club")).status == "already_joined"


async def test_join_group_of_a_basic_group_or_a_lost_channel_sends_no_join(fake: FakeTelegram, tg: TgData) -> None:
    """The account's basic group is already joined; a channel that banned it is refused; no join request goes out."""
    groups = await tg.list_groups()
    family = int(groups.loc[groups["Title"] == "Family", "GroupID"].iloc[0])
    assert (await tg.join_group(family)).status == "already_joined"
    fake.revoke_access("@banned")
    with pytest.raises(GroupReferenceError, match="invite link only"):
        await tg.join_group("@banned", account_id=fake.me.id)
    assert joins(fake) == 0


async def test_join_group_goes_through_the_paced_gateway(fake: FakeTelegram) -> None:
    """Two joins in a row: the second waits for the gateway's join bucket; the client's options come back."""
    fake.add_channel("Second", username="second", joined=False)
    clock = ScaledClock(1000)
    gateway = RequestGateway(clock=clock)
    client = fake.client(flood_sleep_threshold=7)
    async with TgData(client=client, gateway=gateway) as tg:
        await tg.join_group("@outside")
        joined_first = clock.monotonic()
        await tg.join_group("@second")
        waited = clock.monotonic() - joined_first
    assert waited >= 250, f"the second join went out after {waited:.0f} s, not after the join pace's 300 s"
    assert gateway.stats.requests["channels.JoinChannel"] == 2
    assert client.flood_sleep_threshold == 7
    assert getattr(client, "_emitter_gateway", None) is None


async def test_get_group_profile_reads_the_full_channel(fake: FakeTelegram, tg: TgData) -> None:
    """About, member count and the linked discussion group come from one getFullChannel."""
    before = fake.count(functions.channels.GetFullChannelRequest)
    profile = await tg.get_group_profile("@news")
    assert fake.count(functions.channels.GetFullChannelRequest) == before + 1
    assert (profile.about, profile.group.title, profile.group.participants_count) == ("Daily news", "News", 2)
    assert profile.linked_group_id == fake.peer_id("@newschat")
    assert profile.to_dict()["observed_at"].endswith("+00:00")
    assert (await tg.get_group_profile("@outside")).linked_group_id is None


async def test_get_group_profile_of_a_lost_group_is_refused(fake: FakeTelegram, tg: TgData) -> None:
    """A channel that banned the account has no profile to read: one clear error."""
    fake.revoke_access("@banned")
    with pytest.raises(GroupReferenceError, match="not available"):
        await tg.get_group_profile("@banned")


async def test_linked_groups_finds_the_discussion_group_both_ways(fake: FakeTelegram, tg: TgData) -> None:
    """A channel's discussion group, and a discussion group's channel; rooms without a link add no row."""
    rows = await tg.linked_groups(["@news", "@newschat", "@outside"])
    assert isinstance(rows, pd.DataFrame)
    assert list(rows.columns) == list(LINKED_COLUMNS)
    assert rows[["GroupID", "Title", "FoundVia", "FoundBy"]].values.tolist() == [
        [fake.peer_id("@newschat"), "News chat", "discussion", "@news"],
        [fake.peer_id("@news"), "News", "discussion", "@newschat"],
    ]
    assert rows["IsMegagroup"].tolist() == [True, False]


def test_invite_links_are_recognised() -> None:
    """t.me/+hash and t.me/joinchat/hash are invite links; t.me/name is not."""
    assert invite_hash("https://t.me/+AbC_d-1") == "AbC_d-1"
    assert invite_hash("t.me/joinchat/XYZ") == "XYZ"
    assert invite_hash("https://t.me/news") is None
    assert invite_hash(-1001) is None


def test_projection_leaves_membership_unknown_for_forbidden_and_min_entities() -> None:
    """Only a full Chat or Channel says whether the account is in it."""
    forbidden = types.ChannelForbidden(id=5, access_hash=1, title="Gone", broadcast=True)
    minimal = types.Channel(id=6, title="Min", photo=types.ChatPhotoEmpty(), date=None, min=True, megagroup=True)
    assert project(forbidden)[0].peer_id == -1000000000005
    assert project(forbidden)[1:] == (None, None)
    assert project(minimal)[0].kind == "megagroup"
    assert project(minimal)[1:] == (None, None)
    migrated = types.Chat(
        id=7,
        title="Old",
        photo=types.ChatPhotoEmpty(),
        participants_count=2,
        date=None,
        version=1,
        migrated_to=types.InputChannel(8, 0),
    )
    with pytest.raises(GroupReferenceError, match="migrated"):
        project(migrated)
