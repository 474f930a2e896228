"""`emitter login`, `emitter groups` and `emitter check` against the in-process Telegram, prompts scripted."""

from __future__ import annotations

import io
import json
import os
import shlex
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emitter.cli import main
from emitter.device_identity import DeviceIdentity
from emitter.records import GroupType
from emitter.telegram_account import Prompts, ask_on_stderr, list_groups, login
from tests.faketelegram import FakeTelegram

PHONE = "+1 555 000 0000"  # the fake account's number, typed the way people type it
TWO_STEP = "correct horse battery"
PHONE_PROMPT = "Phone number (international format, e.g. +15551234567): "
CODE_PROMPT = "Login code Telegram sent you: "
TWO_STEP_PROMPT = "Two-step verification password: "
UNLIMITED = "read budget: unlimited (telegram.read_budget_per_day = 0)"


class Person:
    """Answers the emitter's prompts like the account's owner, and records every question asked."""

    def __init__(
        self, fake: FakeTelegram, *, code: str | None = None, password: str = TWO_STEP, slow: bool = False
    ) -> None:
        self.fake, self.code, self.password, self.slow = fake, code, password, slow
        self.asked: list[str] = []

    def ask(self, prompt: str) -> str:
        self.asked.append(prompt)
        if prompt == PHONE_PROMPT:
            return PHONE
        if prompt == CODE_PROMPT:
            if self.slow:  # types the code after it expired
                self.fake.expire_login_codes()
            return self.code if self.code is not None else self.fake.login_codes[-1]
        raise AssertionError(f"unexpected prompt {prompt!r}")

    def ask_secret(self, prompt: str) -> str:
        self.asked.append(prompt)
        return self.password

    @property
    def prompts(self) -> Prompts:
        return Prompts(self.ask, self.ask_secret)


def _never(prompt: str) -> str:
    raise AssertionError(f"nothing may be asked here, yet {prompt!r} was")


NO_PROMPTS = Prompts(_never, _never)


@pytest.fixture
def account_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """API credentials in the environment, nothing else configured, in an empty directory."""
    for var in list(os.environ):
        if var.startswith(("EMITTER_", "TELEGRAM_")):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_API_ID", "12345")
    monkeypatch.setenv("TELEGRAM_API_HASH", "0123456789abcdef0123456789abcdef")
    # A typical login shell's umask: the session file must be 0600 regardless.
    previous = os.umask(0o022)
    yield
    os.umask(previous)


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


async def test_login_with_a_valid_session_asks_nothing_and_returns_a_reusable_string() -> None:
    """A logged-in session needs no prompts, and the session string it returns logs another client in."""
    fake = FakeTelegram()
    client = fake.client()
    try:
        who, session = await login(client, phone=None, prompts=NO_PROMPTS)
    finally:
        await client.disconnect()
    assert "Emitter" in who
    async with fake.client(session) as again:
        assert await again.is_user_authorized()


def test_login_with_phone_from_settings_asks_only_for_the_code(
    account_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """telegram.phone is used; only our code prompt is asked; the session file is born 0600 and logs in later."""
    fake = FakeTelegram()
    monkeypatch.setenv("EMITTER_TELEGRAM__PHONE", PHONE)
    person = Person(fake)
    with fake.patch_telethon():
        assert main(["login"], prompts=person.prompts) == 0
    out, err = capsys.readouterr()
    assert person.asked == [CODE_PROMPT]
    assert out == ""
    assert err.splitlines() == [
        f"logged in as Emitter [id {fake.me.id}]",
        "session saved in emitter.session (mode 0600)",
        "device identity recorded in emitter.session.identity.json (mode 0600): later runs present the same device",
    ]
    session_file = tmp_path / "emitter.session"
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    record = tmp_path / "emitter.session.identity.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    # What was recorded is what the login's connection told Telegram (Telethon's defaults, none configured).
    assert DeviceIdentity(**json.loads(record.read_text())) == DeviceIdentity.of(fake.init_connections[-1])
    with fake.patch_telethon():
        assert main(["groups"], prompts=NO_PROMPTS) == 0


def test_login_with_two_step_verification_prints_a_session_string(
    account_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Phone and code are asked, then the password without echo; --print-session prints only the string."""
    fake = FakeTelegram()
    fake.set_password(TWO_STEP)
    person = Person(fake)
    with fake.patch_telethon():
        assert main(["login", "--print-session"], prompts=person.prompts) == 0
    out, err = capsys.readouterr()
    assert person.asked == [PHONE_PROMPT, CODE_PROMPT, TWO_STEP_PROMPT]
    (session,) = out.splitlines()
    logged_in, identity = err.splitlines()
    assert logged_in == f"logged in as Emitter [id {fake.me.id}]"
    # No file to record it in: the identity is printed as the settings that pin it beside TELEGRAM_SESSION.
    pinned = DeviceIdentity.of(fake.init_connections[-1]).as_env()
    assert identity == f"device identity of this session (set it beside TELEGRAM_SESSION): {pinned}"
    assert not list(tmp_path.iterdir()), "--print-session writes no session file"
    with fake.patch_telethon():
        assert main(["groups"], prompts=NO_PROMPTS) == 1  # the file session is still not logged in
    capsys.readouterr()
    monkeypatch.setenv("TELEGRAM_SESSION", session)
    with fake.patch_telethon():
        assert main(["groups"], prompts=NO_PROMPTS) == 0


@pytest.mark.parametrize(
    ("setup", "person_kwargs", "code", "expected"),
    [
        ("none", {"code": "99999x"}, 2, "emitter: error: the login code is wrong: run `emitter login` again"),
        ("none", {"slow": True}, 2, "emitter: error: the login code expired: run `emitter login` again for a new one"),
        ("password", {"password": "nope"}, 2, "emitter: error: the two-step verification password is wrong"),
        ("flood", {}, 1, "emitter: failed: Telegram asks to wait 3600 s (1 h 0 min) before the next login"),
    ],
    ids=["wrong code", "expired code", "wrong password", "flood wait"],
)
def test_login_mistakes_are_one_line(
    account_env: None,
    capsys: pytest.CaptureFixture[str],
    setup: str,
    person_kwargs: dict[str, Any],
    code: int,
    expected: str,
) -> None:
    """Each failed login prints one line (no traceback, no Telethon prompt) and exits 2 for mistakes, else 1."""
    fake = FakeTelegram()
    person = Person(fake, **person_kwargs)
    if setup == "password":
        fake.set_password(TWO_STEP)
    elif setup == "flood":
        fake.faults.flood_wait("auth.SendCodeRequest", 3600)
    with fake.patch_telethon():
        assert main(["login"], prompts=person.prompts) == code
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith(expected), err
    assert not fake.unsupported_requests


def test_login_refuses_a_phone_number_telegram_rejects(
    account_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """PHONE_NUMBER_INVALID names telegram.phone and its value, exit 2, and no code is asked."""
    fake = FakeTelegram()
    monkeypatch.setenv("EMITTER_TELEGRAM__PHONE", "+0 12")
    with fake.patch_telethon():
        assert main(["login"], prompts=NO_PROMPTS) == 2
    err = capsys.readouterr().err
    assert err == (
        "emitter: error: telegram.phone '+0 12' is not a phone number Telegram accepts: "
        "expected +<country code><number>\n"
    )
    assert fake.count("auth.SendCodeRequest") == 1


def test_groups_command_prints_one_line_per_group(
    account_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`emitter groups --json` lists the account's groups using TELEGRAM_* variables."""
    fake = FakeTelegram()
    fake.add_channel("News", username="news")
    fake.add_chat("Family")
    monkeypatch.setenv("TELEGRAM_SESSION", fake.new_session().save())
    with fake.patch_telethon():
        assert main(["groups", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert '"username": "news"' in lines[0] + lines[1]


def test_groups_not_logged_in_is_one_line_and_asks_nothing(
    account_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a logged-in session `emitter groups` says so in one line, exit 1, and prompts for nothing."""
    fake = FakeTelegram()
    with fake.patch_telethon():
        assert main(["groups"], prompts=NO_PROMPTS) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "emitter: fatal: not logged in: run `emitter login`\n"
    assert fake.count("auth.SendCodeRequest") == 0


def test_check_reports_the_login_and_each_group(
    account_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`emitter check` prints ok/FAIL per configured group, exit 1 if any failed and 0 once all resolve."""
    fake = FakeTelegram()
    news = fake.add_channel("News", username="news")
    monkeypatch.setenv("TELEGRAM_SESSION", fake.new_session().save())
    family = fake.peer_id(fake.add_chat("Family"))
    monkeypatch.setenv("EMITTER_TELEGRAM__GROUPS", f"@news, https://t.me/nosuchgroup, {family}")
    with fake.patch_telethon():
        assert main(["check"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "configuration: ok (source=telegram, sink=file)"
    assert lines[1] == f"telegram: ok (logged in as Emitter [id {fake.me.id}])"
    assert lines[2] == f'ok @news → {fake.peer_id(news)} CHANNEL "News"'
    assert lines[3] == 'FAIL https://t.me/nosuchgroup: ValueError: No user has "nosuchgroup" as username'
    assert lines[4] == f'ok {family} → {family} GROUP "Family"'
    assert lines[5] == "account: ok"
    assert lines[6] == UNLIMITED
    assert len(lines) == 7

    monkeypatch.setenv("EMITTER_TELEGRAM__GROUPS", f"@news, {family}")
    with fake.patch_telethon():
        assert main(["check"]) == 0
    assert capsys.readouterr().out.splitlines()[2:] == [
        f'ok @news → {fake.peer_id(news)} CHANNEL "News"',
        f'ok {family} → {family} GROUP "Family"',
        "account: ok",
        UNLIMITED,
    ]


def test_check_without_a_login_says_so(
    account_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With Telegram configured but not logged in, `emitter check` fails with one telegram line and exit 1."""
    fake = FakeTelegram()
    monkeypatch.setenv("EMITTER_TELEGRAM__GROUPS", "@news")
    with fake.patch_telethon():
        assert main(["check"], prompts=NO_PROMPTS) == 1
    assert capsys.readouterr().out.splitlines()[1:] == [
        "telegram: FAIL not logged in: run `emitter login`",
        "account: logged out (AUTH_KEY_UNREGISTERED)",
        UNLIMITED,
    ]


@pytest.mark.parametrize(
    ("message", "lines"),
    [
        (
            "USER_DEACTIVATED_BAN",
            [
                "telegram: FAIL Telegram banned the account (USER_DEACTIVATED_BAN)",
                "account: banned (USER_DEACTIVATED_BAN)",
            ],
        ),
        (
            "SESSION_REVOKED",
            ["telegram: FAIL not logged in: run `emitter login`", "account: logged out (SESSION_REVOKED)"],
        ),
    ],
)
def test_check_tells_a_ban_from_an_ended_session(
    account_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    message: str,
    lines: list[str],
) -> None:
    """`emitter check` on a banned account says banned, on a revoked session logged out; exit 1 either way."""
    fake = FakeTelegram()
    session = fake.new_session()
    fake.kill_session(session, message=message)
    monkeypatch.setenv("TELEGRAM_SESSION", session.save())
    monkeypatch.setenv("EMITTER_TELEGRAM__GROUPS", "@news")
    with fake.patch_telethon():
        assert main(["check"], prompts=NO_PROMPTS) == 1
    assert capsys.readouterr().out.splitlines()[1:] == [*lines, UNLIMITED]


def test_groups_during_a_long_flood_wait_says_how_long(
    account_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A FloodWait longer than the client sleeps through is one line saying how long, exit 1, no traceback."""
    fake = FakeTelegram()
    monkeypatch.setenv("TELEGRAM_SESSION", fake.new_session().save())
    fake.faults.flood_wait("messages.GetDialogsRequest", 600)
    with fake.patch_telethon():
        assert main(["groups"], prompts=NO_PROMPTS) == 1
    assert capsys.readouterr().err == (
        "emitter: failed: Telegram asks to wait 600 s (10 min 0 s) before listing the dialogs again\n"
    )


def test_default_prompt_asks_on_stderr_so_stdout_holds_only_the_session(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The terminal prompt writes its question to stderr and reads the answer from stdin."""
    monkeypatch.setattr("sys.stdin", io.StringIO("12345\n"))
    assert ask_on_stderr(CODE_PROMPT) == "12345"
    out, err = capsys.readouterr()
    assert (out, err) == ("", CODE_PROMPT)


def test_print_session_identity_line_pins_the_device_for_later_runs(
    account_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--print-session prints the identity it used as settings; a run given them presents that device again."""
    fake = FakeTelegram()
    monkeypatch.setenv("EMITTER_TELEGRAM__DEVICE_MODEL", "Pixel 8 Pro")
    monkeypatch.setenv("EMITTER_TELEGRAM__LANG_CODE", "de")
    with fake.patch_telethon():
        assert main(["login", "--print-session"], prompts=Person(fake).prompts) == 0
    out, err = capsys.readouterr()
    used = DeviceIdentity.of(fake.init_connections[-1])
    assert (used.device_model, used.lang_code) == ("Pixel 8 Pro", "de")
    assert "'Pixel 8 Pro'" in err.splitlines()[-1]  # quoted for a shell
    monkeypatch.delenv("EMITTER_TELEGRAM__DEVICE_MODEL")
    monkeypatch.delenv("EMITTER_TELEGRAM__LANG_CODE")
    for assignment in shlex.split(err.splitlines()[-1].split(": ", 1)[1]):
        name, value = assignment.split("=", 1)
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TELEGRAM_SESSION", out.strip())
    with fake.patch_telethon():
        assert main(["groups"], prompts=NO_PROMPTS) == 0
    assert DeviceIdentity.of(fake.init_connections[-1]) == used
