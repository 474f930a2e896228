"""Account chores: logging in once, checking a login, and listing the groups an account can monitor.

Telethon's own `start()` (which `async with client` runs) prompts on the terminal in its own words and
ignores our settings, so nothing here uses it: the login is driven request by request, and every question
goes through `Prompts`, which the CLI fills with `input` and `getpass` and tests with scripted answers.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from telethon import TelegramClient, errors, utils
from telethon.sessions import StringSession
from telethon.tl.functions.updates import GetStateRequest

from emitter.account_health import AccountHealth, AccountState, account_verdict, error_name
from emitter.errors import ConfigError, EmitterError, FatalError
from emitter.records import GroupType
from emitter.settings import TelegramSettings
from emitter.telegram_client import identity_of, make_client, record_identity
from emitter.telegram_mapping import group_from_entity
from emitter.telegram_source import TelegramSource

NOT_LOGGED_IN = "not logged in: run `emitter login`"


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """One group or channel of the account, as `emitter groups` lists it."""

    id: int
    title: str | None
    username: str | None
    type: GroupType
    members: int | None


def ask_on_stderr(prompt: str) -> str:
    """`input`, but the question goes to stderr: stdout may be redirected to catch `--print-session`."""
    print(prompt, end="", file=sys.stderr, flush=True)
    return input()


@dataclass(frozen=True, slots=True)
class Prompts:
    """How a login asks the user: `ask` echoes what is typed (phone, code), `ask_secret` does not (password)."""

    ask: Callable[[str], str] = ask_on_stderr
    ask_secret: Callable[[str], str] = getpass.getpass  # the terminal itself, else stderr


@contextlib.contextmanager
def _owner_only_files() -> Iterator[None]:
    """Files created inside are readable by their owner only: a session file holds the account's auth key.

    Set before Telethon creates the file (it opens its SQLite database when the client is built), so the
    key is never readable by others, not even for a moment. SQLite gives its journal the same mode.
    """
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def open_client(settings: TelegramSettings, *, in_memory: bool = False) -> TelegramClient:
    """A client for the configured account whose session file (if any) is created with mode 0600.

    Args:
        in_memory: use a new StringSession instead of the session file (for `emitter login --print-session`,
            whose result is the printed string).
    """
    if in_memory and settings.session is None:
        settings = settings.model_copy(update={"session": SecretStr("")})
    with _owner_only_files():
        # A person waits for these commands: give up after a few attempts rather than reconnect for ever.
        return make_client(settings, connection_retries=5)


async def login(client: TelegramClient, *, phone: str | None, prompts: Prompts) -> tuple[str, str]:
    """Log the client in if it is not, asking only our own questions; return (who, session string).

    Args:
        phone: the account's phone number (`telegram.phone`); asked for when None.
        prompts: where the phone number, the code Telegram sends and the two-step password are asked.

    Raises:
        ConfigError: a user mistake (a phone number Telegram refuses, a wrong or expired code, a wrong
            password): one line, exit code 2.
        EmitterError: Telegram refused for another reason (a flood wait says how long).

    The session string holds the account's auth key: callers print it only where the user asked.
    """
    # A person waits on the other end: say how long Telegram wants us to wait rather than sleeping silently.
    client.flood_sleep_threshold = 0
    try:
        if not client.is_connected():
            await client.connect()
        if not await client.is_user_authorized():
            await _sign_in(client, phone, prompts)
        me = await client.get_me()
    except errors.FloodWaitError as e:
        raise EmitterError(f"Telegram asks to wait {_duration(e.seconds)} before the next login attempt") from e
    except errors.ApiIdInvalidError as e:
        raise ConfigError(
            "telegram.api_id and telegram.api_hash are not a pair Telegram knows: "
            "expected the values from my.telegram.org"
        ) from e
    except errors.RPCError as e:
        raise EmitterError(f"Telegram refused the login: {e.message} ({type(e).__name__})") from e
    except OSError as e:  # ConnectionError and TimeoutError among them
        raise EmitterError(f"cannot reach Telegram: {e}") from e
    except EOFError as e:
        raise ConfigError("`emitter login` needs a terminal to answer its questions (input ended)") from e
    return _who(me), StringSession.save(client.session)


def record_login_identity(client: TelegramClient) -> str:
    """Record the device identity the login used beside the session file; the line that tells the user.

    A StringSession has no file beside it: the line then gives the identity as settings to pass with it.
    """
    path = record_identity(client, replace=True)
    if path is not None:
        return f"device identity recorded in {path} (mode 0600): later runs present the same device"
    return f"device identity of this session (set it beside TELEGRAM_SESSION): {identity_of(client).as_env()}"


def _who(me: Any) -> str:
    name = " ".join(p for p in (me.first_name, me.last_name) if p) + (f" (@{me.username})" if me.username else "")
    return f"{name} [id {me.id}]"


async def _sign_in(client: TelegramClient, phone: str | None, prompts: Prompts) -> None:
    """Phone, code, and (when the account has one) the two-step verification password."""
    source = "telegram.phone" if phone else "the phone number"
    text = phone or prompts.ask("Phone number (international format, e.g. +15551234567): ")
    bad_phone = f"{source} {text!r} is not a phone number Telegram accepts: expected +<country code><number>"
    number = utils.parse_phone(text.strip())
    if not number:
        raise ConfigError(bad_phone)
    try:
        await client.send_code_request(number)
        code = prompts.ask("Login code Telegram sent you: ").strip()
        if not code:
            raise ConfigError("no login code given: run `emitter login` again and type the code Telegram sent")
        try:
            await client.sign_in(number, code)
        except errors.SessionPasswordNeededError:
            password = prompts.ask_secret("Two-step verification password: ")
            await client.sign_in(password=password)
    except errors.PhoneNumberInvalidError as e:
        raise ConfigError(bad_phone) from e
    except errors.PhoneNumberUnoccupiedError as e:
        raise ConfigError(f"{source} {text!r} has no Telegram account: expected an existing account's number") from e
    except (errors.PhoneCodeInvalidError, errors.PhoneCodeEmptyError) as e:
        raise ConfigError("the login code is wrong: run `emitter login` again and type the code Telegram sent") from e
    except errors.PhoneCodeExpiredError as e:
        raise ConfigError("the login code expired: run `emitter login` again for a new one") from e
    except errors.PasswordHashInvalidError as e:
        raise ConfigError("the two-step verification password is wrong: run `emitter login` again") from e


def _duration(seconds: int) -> str:
    """A wait as a person reads it: '45 s', '12 min 30 s', '3 h 20 min'."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{seconds} s ({hours} h {minutes} min)"
    if minutes:
        return f"{seconds} s ({minutes} min {secs} s)"
    return f"{seconds} s"


async def connect_logged_in(client: TelegramClient) -> None:
    """Connect without ever prompting; unreachable, not logged in or banned is a `FatalError` (exit 1).

    The login is proved by one request of our own rather than Telethon's `is_user_authorized`, which
    swallows Telegram's answer and with it the difference between a session that ended and a ban.
    """
    try:
        if not client.is_connected():
            await client.connect()
        await client(GetStateRequest())
    except errors.RPCError as e:
        verdict = account_verdict(e)
        if verdict is AccountState.BANNED:
            raise FatalError(f"Telegram banned the account ({error_name(e)})") from e
        if verdict is AccountState.LOGGED_OUT:
            raise FatalError(NOT_LOGGED_IN) from e
        raise FatalError(f"{NOT_LOGGED_IN} ({type(e).__name__})") from e
    except OSError as e:  # ConnectionError and TimeoutError among them
        raise FatalError(f"cannot reach Telegram: {e}") from e


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What `emitter check` found about the account: one line per finding, and whether all were fine."""

    lines: tuple[str, ...]
    ok: bool


async def check_account(settings: TelegramSettings) -> CheckReport:
    """Check the login, then resolve every configured group the way the emitter's source resolves them; the
    last line is the account's state (`account: ok`, `account: banned (USER_DEACTIVATED_BAN)`, ...)."""
    client = open_client(settings)
    try:
        try:
            await connect_logged_in(client)
        except FatalError as e:
            lines = [f"telegram: FAIL {e}"]
            verdict = account_verdict(e.__cause__) if e.__cause__ is not None else None
            if verdict is not None and e.__cause__ is not None:
                lines.append(f"account: {AccountHealth(verdict, error_name(e.__cause__)).describe()}")
            return CheckReport(tuple(lines), ok=False)
        lines = [f"telegram: ok (logged in as {_who(await client.get_me())})"]
        if not settings.groups:
            lines.append("FAIL telegram.groups: empty: expected at least one group; `emitter groups` lists them")
            return CheckReport(tuple(lines), ok=False)
        group_lines, ok, health = await _resolve_groups(client, settings.groups)
        now = time.time()
        return CheckReport((*lines, *group_lines, f"account: {health.describe(now)}"), ok and health.ok)
    finally:
        await client.disconnect()


async def _resolve_groups(client: TelegramClient, specs: list[str]) -> tuple[list[str], bool, AccountHealth]:
    """One line per spec: `ok <spec> → <marked id> <type> "<title>"` or `FAIL <spec>: <why>`; and the
    account's health after resolving them."""
    source = TelegramSource(client, specs, follow=False)
    await source.start()
    resolved: list[Any] = []
    try:
        # With none resolved it raises; the reasons are in `unresolved` all the same.
        with contextlib.suppress(FatalError):
            resolved = list(await source.groups())
        health = source.gateway.account_health()
    finally:
        await source.stop()
    # groups() returns the resolved groups in the order of their specs.
    found = iter(resolved)
    lines = []
    for spec in specs:
        reason = source.unresolved.get(str(spec))
        if reason is not None:
            lines.append(f"FAIL {spec}: {reason}")
            continue
        group = next(found, None)
        if group is None:
            lines.append(f"FAIL {spec}: not resolved")
            continue
        title = json.dumps(group.title or "", ensure_ascii=False)
        lines.append(f"ok {spec} → {group.id} {group.type.value} {title}")
    return lines, not source.unresolved and len(resolved) == len(specs), health


async def list_groups(client: TelegramClient) -> list[GroupInfo]:
    """Every group, supergroup and channel in the account's dialogs.

    Raises:
        EmitterError: Telegram refused the dialogs (a flood wait longer than the client sleeps through, say).
    """
    out: list[GroupInfo] = []
    try:
        async for dialog in client.iter_dialogs():
            entity: Any = dialog.entity
            group = group_from_entity(entity)
            if group.type is GroupType.PRIVATE:
                continue
            members = getattr(entity, "participants_count", None)
            out.append(GroupInfo(group.id, group.title, group.username, group.type, members))
    except errors.FloodWaitError as e:
        raise EmitterError(f"Telegram asks to wait {_duration(e.seconds)} before listing the dialogs again") from e
    except errors.RPCError as e:
        raise EmitterError(f"Telegram refused the list of dialogs: {e.message} ({type(e).__name__})") from e
    return out
