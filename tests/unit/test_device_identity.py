"""Choosing, recording and reading the device identity a session presents to Telegram."""

from __future__ import annotations

import stat
from dataclasses import asdict
from pathlib import Path

import pytest
from pydantic import SecretStr

from emitter.device_identity import Choice, DeviceIdentity, choose, read_record, record_path, write_record
from emitter.errors import ConfigError
from emitter.settings import TelegramSettings
from emitter.telegram_client import make_client
from emitter.telegram_source import TelegramSource
from tests.faketelegram import FakeTelegram

RECORDED = DeviceIdentity("Pixel 8", "Android 14", "10.2.1", "de", "de-DE")
AS_RECORDED = asdict(RECORDED)


@pytest.mark.parametrize(
    ("configured", "recorded", "expected"),
    [
        ({}, None, Choice({}, ())),
        ({"device_model": "X"}, None, Choice({"device_model": "X"}, ())),
        ({}, RECORDED, Choice(AS_RECORDED, ())),
        ({"device_model": "Pixel 8"}, RECORDED, Choice(AS_RECORDED, ())),
        (
            {"device_model": "Pixel 9", "lang_code": "fr"},
            RECORDED,
            Choice({**AS_RECORDED, "device_model": "Pixel 9", "lang_code": "fr"}, ("device_model", "lang_code")),
        ),
    ],
    ids=["nothing", "settings only", "record only", "settings equal the record", "settings change two keys"],
)
def test_settings_win_over_the_record_key_by_key(
    configured: dict[str, str], recorded: DeviceIdentity | None, expected: Choice
) -> None:
    """Each configured key overrides the recorded one; only keys that differ from the record count as changed."""
    assert choose(configured, recorded) == expected


def test_a_record_is_owner_only_and_reads_back(tmp_path: Path) -> None:
    """The record is written 0600 (also over an older, wider file) and reads back as written."""
    path = record_path(tmp_path / "a.session")
    assert path.name == "a.session.identity.json"
    path.write_text("{}")
    path.chmod(0o644)
    write_record(path, RECORDED)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_record(path) == RECORDED
    assert read_record(tmp_path / "none.identity.json") is None


@pytest.mark.parametrize("text", ["not json", "[]", '{"device_model": "x"}', '{"device_model": 1}'])
def test_a_broken_record_is_one_line_naming_the_file(tmp_path: Path, text: str) -> None:
    """A record that is not the five strings fails with one line naming the file and what was expected."""
    path = tmp_path / "a.session.identity.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        read_record(path)
    message = str(caught.value)
    assert str(path) in message
    assert "device_model, system_version, app_version, lang_code, system_lang_code" in message
    assert "\n" not in message


async def test_a_session_made_before_records_is_pinned_on_its_first_run(tmp_path: Path) -> None:
    """A logged-in session file without a record gets one on its first run, holding what that run presented."""
    fake = FakeTelegram()
    fake.add_channel("News", username="news")
    account = TelegramSettings(
        api_id=12345, api_hash=SecretStr("0" * 32), session_file=tmp_path / "old", groups=["@news"]
    )
    with fake.patch_telethon():
        client = make_client(account)
    await client.connect()
    fake.authorize(client.session)  # logged in long ago, by a version that recorded nothing
    source = TelegramSource(client, ["@news"], own_client=True)
    record = tmp_path / "old.session.identity.json"
    assert not record.exists()
    await source.start()
    await source.stop()
    assert read_record(record) == DeviceIdentity.of(fake.init_connections[-1])
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
