"""`emitter login` and `emitter groups` against the in-process Telegram."""

from __future__ import annotations

import pytest

from emitter.cli import main
from emitter.records import GroupType
from emitter.telegram_account import list_groups, login
from tests.faketelegram import FakeTelegram


def _never() -> str:
    raise AssertionError("an authorized session must not be asked for phone, code or password")


async def test_list_groups_shows_groups_and_channels_only() -> None:
    """Channels, supergroups and basic groups are listed with marked ids; private chats are not."""
    fake = FakeTelegram()
    channel = fake.add_channel("News", username="news")
    supergroup = fake.add_channel("Talk", megagroup=True)
    chat = fake.add_chat("Family")
    fake.post(fake.add_user("Bob"), "hi")
    client = fake.client()
    async with client:
        groups = {g.id: g for g in await list_groups(client)}
    assert set(groups) == {fake.peer_id(channel), fake.peer_id(supergroup), fake.peer_id(chat)}
    assert groups[fake.peer_id(channel)].type is GroupType.CHANNEL
    assert groups[fake.peer_id(channel)].username == "news"
    assert groups[fake.peer_id(supergroup)].type is GroupType.SUPERGROUP
    assert groups[fake.peer_id(chat)].type is GroupType.GROUP


async def test_login_with_a_valid_session_returns_a_reusable_string() -> None:
    """A logged-in session needs no prompts, and the session string it returns logs another client in."""
    fake = FakeTelegram()
    async with fake.client() as client:
        who, session = await login(client, phone=_never, code=_never, password=_never)
    assert "Emitter" in who
    async with fake.client(session) as again:
        assert await again.is_user_authorized()


def test_groups_command_prints_one_line_per_group(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`emitter groups --json` lists the account's groups using TELEGRAM_* variables."""
    fake = FakeTelegram()
    fake.add_channel("News", username="news")
    fake.add_chat("Family")
    monkeypatch.setenv("TELEGRAM_API_ID", "12345")
    monkeypatch.setenv("TELEGRAM_API_HASH", "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("TELEGRAM_SESSION", fake.new_session().save())
    with fake.patch_telethon():
        assert main(["groups", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert '"username": "news"' in lines[0] + lines[1]
