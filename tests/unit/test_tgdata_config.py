"""Configuring TgData: a tgdata config.ini as is, and connection engines that supply settings from code."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from telethon.sessions import SQLiteSession

from emitter.config_hooks import (
    CallableConnectionEngine,
    ConnectionEngine,
    EnvConnectionEngine,
    IniConnectionEngine,
    settings_from,
)
from emitter.errors import ConfigError
from emitter.settings import Settings, load_settings
from emitter.tgdata import TgData
from tests.faketelegram import FakeTelegram

API_HASH = "0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No configuration leaks in from the developer's environment or working directory."""
    for var in list(os.environ):
        if var.startswith(("EMITTER_", "TELEGRAM_")):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)


def session_file(fake: FakeTelegram, path: Path) -> Path:
    """A Telethon session file logged in to the fake world (what a tgdata user already has on disk)."""
    logged_in = fake.new_session()
    session = SQLiteSession(str(path))
    session.set_dc(logged_in.dc_id, logged_in.server_address, logged_in.port)
    session.auth_key = logged_in.auth_key
    session.save()
    session.close()
    return path


async def test_tgdata_config_ini_loads_unchanged_and_connects(tmp_path: Path) -> None:
    """A tgdata config.ini ([telegram] api_id, api_hash, session_file, phone) works as is, session file included."""
    fake = FakeTelegram()
    fake.add_channel("News", username="news")
    session = session_file(fake, tmp_path / "my_session")
    (tmp_path / "config.ini").write_text(
        f"[telegram]\napi_id = 1234566\napi_hash = {API_HASH}\nphone = +905064004949\nsession_file = {session}\n",
        encoding="utf-8",
    )
    tg = TgData("config.ini")
    assert tg.settings is not None
    telegram = tg.settings.telegram
    assert (telegram.api_id, telegram.phone, telegram.session_file) == (1234566, "+905064004949", session)
    assert telegram.api_hash is not None and telegram.api_hash.get_secret_value() == API_HASH
    with fake.patch_telethon():
        async with tg:
            groups = await tg.list_groups()
    assert groups["Title"].tolist() == ["News"]
    assert stat.S_IMODE((tmp_path / "my_session.session").stat().st_mode) == 0o600


async def test_config_ini_in_the_working_directory_is_found(tmp_path: Path) -> None:
    """TgData() finds ./config.ini like tgdata's default config_path."""
    (tmp_path / "config.ini").write_text(f"[telegram]\napi_id = 7\napi_hash = {API_HASH}\n", encoding="utf-8")
    assert TgData().settings is not None
    assert TgData().settings.telegram.api_id == 7  # type: ignore[union-attr]


def test_tgdata_readme_layout_with_capital_section_and_comments(tmp_path: Path) -> None:
    """The exact layout of tgdata's README: [Telegram], comment lines and an inline comment."""
    (tmp_path / "config.ini").write_text(
        "[Telegram]\n\n# credentials from my.telegram.org\napi_id = 1234566\n"
        f"api_hash = {API_HASH}\nphone = +905064004949 # full number with country code\n"
        "session_file = /absolute/path/to/my_session\n",
        encoding="utf-8",
    )
    settings = TgData("config.ini").settings
    assert settings is not None
    assert settings.telegram.phone == "+905064004949"


def test_env_engine_reads_container_variables() -> None:
    """EnvConnectionEngine takes TELEGRAM_API_ID/HASH/SESSION_FILE/PHONE; unset ones are left alone."""
    engine = EnvConnectionEngine(
        {"TELEGRAM_API_ID": "42", "TELEGRAM_API_HASH": API_HASH, "TELEGRAM_SESSION_FILE": "/s/a", "TELEGRAM_PHONE": ""}
    )
    telegram = engine.get_settings().telegram
    assert (telegram.api_id, telegram.session_file, telegram.phone) == (42, Path("/s/a"), None)


async def test_env_engine_with_a_string_session_connects() -> None:
    """TgData(connection_engine=EnvConnectionEngine()) logs in with TELEGRAM_SESSION from the environment."""
    fake = FakeTelegram()
    fake.add_chat("Family")
    environ = {"TELEGRAM_API_ID": "12345", "TELEGRAM_API_HASH": API_HASH, "TELEGRAM_SESSION": fake.new_session().save()}
    with fake.patch_telethon():
        async with TgData(connection_engine=EnvConnectionEngine(environ)) as tg:
            groups = await tg.list_groups()
    assert groups["Title"].tolist() == ["Family"]


@pytest.mark.parametrize(
    "returned",
    [
        {"api_id": 9, "api_hash": API_HASH},
        {"telegram": {"api_id": 9, "api_hash": API_HASH}, "emitter": {"instance": "vault"}},
        settings_from({"api_id": 9, "api_hash": API_HASH}),
    ],
    ids=["telegram-keys", "sections", "settings"],
)
def test_callable_engine_accepts_keys_sections_or_settings(returned: object) -> None:
    """A function may return the [telegram] keys, whole sections, or ready Settings."""
    engine = CallableConnectionEngine(lambda: returned)  # type: ignore[arg-type, return-value]
    tg = TgData(connection_engine=engine)
    assert tg.settings is not None
    assert tg.settings.telegram.api_id == 9


def test_callable_engine_values_are_validated() -> None:
    """Bad values from code fail like bad INI values: one ConfigError line naming the key."""
    engine = CallableConnectionEngine(lambda: {"api_id": "not a number", "api_hash": API_HASH})
    with pytest.raises(ConfigError, match=r"telegram\.api_id"):
        TgData(connection_engine=engine)


def test_every_engine_is_a_connection_engine(tmp_path: Path) -> None:
    """The shipped engines and any class with get_settings() satisfy the ConnectionEngine protocol."""

    class Mine:
        def get_settings(self) -> Settings:
            return load_settings(None, {"telegram": {"api_id": 1, "api_hash": API_HASH}})

    engines = [EnvConnectionEngine({}), CallableConnectionEngine(dict), IniConnectionEngine(None), Mine()]
    assert all(isinstance(e, ConnectionEngine) for e in engines)
    assert TgData(connection_engine=Mine()).settings.telegram.api_id == 1  # type: ignore[union-attr]


async def test_without_credentials_connecting_names_the_missing_keys() -> None:
    """No INI, no environment, no client: connecting fails with the keys to set."""
    tg = TgData()
    with pytest.raises(ConfigError, match=r"api_id and telegram\.api_hash are required"):
        await tg.list_groups()
    await tg.close()
