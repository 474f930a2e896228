"""Building the account's Telethon client as production runs it, and the few facts read off it."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from telethon import TelegramClient
from telethon.sessions import StringSession

from emitter import device_identity
from emitter.device_identity import DeviceIdentity
from emitter.errors import ConfigError
from emitter.settings import TelegramSettings

log = logging.getLogger("emitter.telegram")


def client_options() -> dict[str, Any]:
    """The TelegramClient options production uses (tests build their clients with the same).

    A monitor outlives any outage: Telethon's default of 5 reconnect attempts (about 35 s) would leave
    requests queued on a dead sender for good, so it reconnects for ever (readiness shows the outage).
    FloodWaits and retries are the request gateway's: it sets Telethon's own `flood_sleep_threshold` to 0
    and its `request_retries` to 1 when it attaches, so that a wait holds one kind of request instead of
    sleeping in every task at once, and a spell of 500s is retried with backoff through the pacing instead of
    five times in ten seconds behind its back.
    """
    return {"receive_updates": True, "connection_retries": -1, "retry_delay": 2, "request_retries": 1}


def make_client(settings: TelegramSettings, **overrides: Any) -> TelegramClient:
    """A Telethon client for the configured account: a StringSession if given, else the session file."""
    if settings.api_id is None or settings.api_hash is None:
        raise ConfigError(
            "telegram.api_id and telegram.api_hash are required: expected the values from my.telegram.org"
        )
    if settings.require_proxy and settings.proxy_route is None:
        # Settings refuse this at start-up; this guards settings built in code (TgData, tests) all the same.
        raise ConfigError("telegram.require_proxy = true but telegram.proxy is not set: expected a proxy URL")
    session: StringSession | str
    record: Path | None = None
    if settings.session is not None:
        session = StringSession(settings.session.get_secret_value())
    else:
        session = _session_filename(settings.session_file or Path("emitter.session"))
        record = device_identity.record_path(session)
    identity = _identity_keywords(settings, record)
    options = {**client_options(), **identity, **proxy_options(settings), **overrides}
    # Telethon creates the session file (the account's auth key) in this constructor: under this umask it is
    # owner-only from its first byte, with no window before a chmod.
    umask = os.umask(0o077)
    try:
        return TelegramClient(session, settings.api_id, settings.api_hash.get_secret_value(), **options)
    finally:
        os.umask(umask)


def proxy_options(settings: TelegramSettings) -> dict[str, Any]:
    """The client's proxy keywords: none without `telegram.proxy`.

    With a proxy, Telethon opens every connection (the account's DC, and the exported senders media downloads
    use on other DCs) through it, and has no fallback: a proxy that is down is a failed connect, retried like
    any other, never a direct one. `require_proxy` is enforced where settings are read (no proxy, no start).
    """
    proxy = settings.proxy_route
    return proxy.telethon_options() if proxy is not None else {}


def _session_filename(path: Path) -> str:
    """The file Telethon opens for a session path: it appends `.session` unless the name ends so already."""
    name = str(path)
    return name if name.endswith(".session") else f"{name}.session"


def _identity_keywords(settings: TelegramSettings, record: Path | None) -> dict[str, str]:
    """The device identity keywords of the client: the settings over the session's record (a StringSession has
    none); a configured key that differs from the record warns."""
    recorded = device_identity.read_record(record) if record is not None else None
    choice = device_identity.choose(device_identity.configured(settings), recorded)
    if recorded is not None and choice.changed:
        log.warning(
            "the configured device identity differs from the one recorded for this session in %s: %s; Telegram "
            "sees a changed device on a live session (run `emitter login` to record the new one)",
            record,
            device_identity.describe_change(recorded, choice.keywords, choice.changed),
        )
    return choice.keywords


def identity_of(client: TelegramClient) -> DeviceIdentity:
    """The identity the client sends in initConnection (Telethon fills unset keys from the machine).

    Read from the request Telethon built in its constructor, so what is recorded is what Telegram gets,
    defaults included (Telethon is pinned).
    """
    return DeviceIdentity.of(client._init_request)


def record_identity(client: TelegramClient, *, replace: bool) -> Path | None:
    """Record the client's identity beside its session file; None for a session without a file.

    Args:
        replace: overwrite an existing record (`emitter login`); otherwise only a session without one gets it,
            so that a session made before records existed is pinned from its first run on.
    """
    filename = getattr(client.session, "filename", None)
    if not isinstance(filename, str) or filename == ":memory:":
        return None
    path = device_identity.record_path(filename)
    if replace or not path.exists():
        device_identity.write_record(path, identity_of(client))
    return path


def restrict_session_file(client: TelegramClient) -> None:
    """Session files hold the account's auth key: owner-only (new ones are created so; this fixes older ones)."""
    filename = getattr(client.session, "filename", None)
    if isinstance(filename, str) and os.path.exists(filename):
        os.chmod(filename, 0o600)


def transport_connected(client: TelegramClient) -> bool:
    """Whether the connection to Telegram is up right now.

    `client.is_connected()` reads Telethon's `_user_connected`, which stays true while it reconnects for
    ever; the sender's `_transport_connected()` tells the truth (Telethon is pinned).
    """
    sender = getattr(client, "_sender", None)
    probe = getattr(sender, "_transport_connected", None)
    if callable(probe):
        return bool(client.is_connected()) and bool(probe())
    return bool(client.is_connected())
