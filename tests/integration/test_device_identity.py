"""The device identity `emitter login` used is the one every later run presents to Telegram."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from emitter.device_identity import DeviceIdentity, read_record, record_path
from emitter.settings import Settings, TelegramSettings
from emitter.telegram_account import Prompts, login, open_client, record_login_identity
from emitter.telegram_client import make_client
from tests.faketelegram import FakeTelegram
from tests.integration.telegram_harness import emitter, wait_for_ids

PHONE = "+1 555 000 0000"
API_HASH = "0123456789abcdef0123456789abcdef"
PHONE_IDENTITY = {
    "device_model": "Pixel 8",
    "system_version": "Android 14",
    "app_version": "10.2.1",
    "lang_code": "de",
    "system_lang_code": "de-DE",
}


def _account(tmp_path: Path, **identity: str) -> TelegramSettings:
    return TelegramSettings(
        api_id=12345,
        api_hash=SecretStr(API_HASH),
        session_file=tmp_path / "account",
        phone=PHONE,
        **identity,  # type: ignore[arg-type]  # keys of PHONE_IDENTITY, all str settings
    )


async def _log_in(fake: FakeTelegram, account: TelegramSettings) -> str:
    """`emitter login` as the CLI runs it, the code typed from what the fake sent."""
    with fake.patch_telethon():
        client = open_client(account)
    try:
        await login(client, phone=account.phone, prompts=Prompts(lambda _: fake.login_codes[-1], lambda _: ""))
        return record_login_identity(client)
    finally:
        await client.disconnect()


async def _run_once(fake: FakeTelegram, settings: Settings, account: TelegramSettings, group: int, n: int) -> None:
    """A run of the emitter on the session file until `n` messages of the group are in Kafka, then stop."""
    with fake.patch_telethon():
        client = make_client(account)
    async with emitter(fake, settings, [group], client=client):
        await wait_for_ids(settings, group, n)


async def test_login_identity_survives_restarts_and_a_change_warns(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Runs without identity settings present the one login recorded; a configured change is sent and warns."""
    fake = FakeTelegram()
    channel = fake.add_channel("News", username="news")
    group = fake.peer_id(channel)
    fake.post_many(channel, 30)

    line = await _log_in(fake, _account(tmp_path, **PHONE_IDENTITY))
    record = record_path(tmp_path / "account.session")
    assert line.startswith(f"device identity recorded in {record}")
    assert record.stat().st_mode & 0o777 == 0o600
    assert fake.init_connections, "login connected without an initConnection"
    assert DeviceIdentity.of(fake.init_connections[-1]) == DeviceIdentity(**PHONE_IDENTITY)

    # Two restarts configured with nothing but the account: both present the phone's identity.
    for n in (30, 40):
        connections = len(fake.init_connections)
        await _run_once(fake, settings, _account(tmp_path), group, n)
        seen = fake.init_connections[connections:]
        assert seen, "the run never initialised a connection"
        assert {DeviceIdentity.of(c) for c in seen} == {DeviceIdentity(**PHONE_IDENTITY)}
        fake.post_many(channel, 10)

    # A configured model wins, the rest stays recorded, and one warning names what changed.
    connections = len(fake.init_connections)
    caplog.set_level(logging.WARNING, logger="emitter.telegram")
    await _run_once(fake, settings, _account(tmp_path, device_model="Pixel 9"), group, 50)
    assert {DeviceIdentity.of(c) for c in fake.init_connections[connections:]} == {
        DeviceIdentity(**{**PHONE_IDENTITY, "device_model": "Pixel 9"})
    }
    warnings = [r.getMessage() for r in caplog.records if "device identity differs" in r.getMessage()]
    assert len(warnings) == 1
    assert "device_model 'Pixel 8' → 'Pixel 9'" in warnings[0]
    assert "system_version" not in warnings[0]
    assert API_HASH not in warnings[0]
    assert read_record(record) == DeviceIdentity(**PHONE_IDENTITY), "a run does not rewrite what login recorded"
