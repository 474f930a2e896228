"""The fake Telegram's login: codes, two-step verification by SRP, logging out, driven by the real client."""

from __future__ import annotations

import pytest
from telethon import errors, functions
from telethon.password import compute_check

from tests.faketelegram import FakeTelegram

PHONE = "+1 555 000 0000"  # the fake account's number, as a person types it
TWO_STEP, WRONG = "correct horse", "battery staple"  # the account's two-step verification password, and not


async def test_a_session_the_world_did_not_authorise_is_logged_out() -> None:
    """A session with an unknown key is not authorised and gets AUTH_KEY_UNREGISTERED."""
    fake = FakeTelegram()
    client = fake.client(fake.new_session(authorized=False))
    await client.connect()
    try:
        assert not await client.is_user_authorized()
        with pytest.raises(errors.AuthKeyUnregisteredError):
            await client(functions.updates.GetStateRequest())
    finally:
        await client.disconnect()


async def test_code_then_password_logs_in_and_log_out_ends_the_session() -> None:
    """sendCode + signIn answer SESSION_PASSWORD_NEEDED with 2FA on; the right SRP proof logs in; logOut ends it."""
    fake = FakeTelegram()
    fake.set_password(TWO_STEP, hint="horse")
    client = fake.client(fake.new_session(authorized=False))
    await client.connect()
    try:
        await client.send_code_request(PHONE)
        with pytest.raises(errors.SessionPasswordNeededError):
            await client.sign_in(PHONE, fake.login_codes[-1])
        with pytest.raises(errors.PasswordHashInvalidError):
            await client.sign_in(password=WRONG)
        me = await client.sign_in(password=TWO_STEP)
        assert me.id == fake.me.id
        assert await client.is_user_authorized()
        saved = client.session.save()
        assert await client.log_out()
    finally:
        await client.disconnect()
    again = fake.client(saved)
    await again.connect()
    try:
        assert not await again.is_user_authorized()
    finally:
        await again.disconnect()


async def test_an_srp_challenge_is_answered_once() -> None:
    """Replaying a correct proof for a used srp_id is refused (SRP_ID_INVALID), as Telegram does."""
    fake = FakeTelegram()
    fake.set_password(TWO_STEP)
    client = fake.client(fake.new_session(authorized=False))
    await client.connect()
    try:
        await client.send_code_request(PHONE)
        with pytest.raises(errors.SessionPasswordNeededError):
            await client.sign_in(PHONE, fake.login_codes[-1])
        check = compute_check(await client(functions.account.GetPasswordRequest()), TWO_STEP)
        await client(functions.auth.CheckPasswordRequest(check))
        with pytest.raises(errors.SrpIdInvalidError):
            await client(functions.auth.CheckPasswordRequest(check))
    finally:
        await client.disconnect()


async def test_wrong_expired_and_malformed_inputs_get_telegrams_errors() -> None:
    """A bad number, a wrong code and an expired code get PHONE_NUMBER_INVALID, PHONE_CODE_INVALID, _EXPIRED."""
    fake = FakeTelegram()
    client = fake.client(fake.new_session(authorized=False))
    await client.connect()
    try:
        with pytest.raises(errors.PhoneNumberInvalidError):
            await client.send_code_request("123")
        await client.send_code_request(PHONE)
        wrong = "00000" if fake.login_codes[-1] != "00000" else "11111"
        with pytest.raises(errors.PhoneCodeInvalidError):
            await client.sign_in(PHONE, wrong)
        fake.expire_login_codes()
        with pytest.raises(errors.PhoneCodeExpiredError):
            await client.sign_in(PHONE, fake.login_codes[-1])
        assert not await client.is_user_authorized()
    finally:
        await client.disconnect()
