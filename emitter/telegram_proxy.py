"""The proxy the account reaches Telegram through: `telegram.proxy` parsed once into a small value.

Pure: no Telethon import at module level and no I/O, so settings validation and `emitter check` can use it.
The password (and an MTProxy's secret) is kept out of `repr`, `describe()` and every error message: what
names the proxy names its scheme, user, host and port only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

Scheme = Literal["socks5", "socks4", "http", "mtproxy"]
"""How the proxy is spoken to: SOCKS 5 or 4, HTTP CONNECT (python-socks), or Telegram's MTProto proxy."""

SCHEMES: tuple[Scheme, ...] = ("socks5", "socks4", "http", "mtproxy")
_EXPECTED = (
    "expected socks5://[user:password@]host:port, socks4://[user@]host:port, http://[user:password@]host:port "
    "or mtproxy://secret@host:port"
)
# Telethon's randomized-intermediate MTProxy connection takes a 16-byte secret, optionally with the `dd` prefix
# that asks for padding; fake-TLS (`ee`) secrets need a TLS handshake Telethon 1.45 does not speak.
_MTPROXY_SECRET = re.compile(r"^(dd)?[0-9a-f]{32}$", re.IGNORECASE)


@dataclass(slots=True, frozen=True)
class Proxy:
    """One proxy: where it is and how to authenticate; the password never shows in `repr`."""

    scheme: Scheme
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)  # mtproxy only

    def __repr__(self) -> str:
        return f"Proxy({self.describe()})"

    def describe(self) -> str:
        """The proxy as a URL fit for logs: the password or secret replaced by `***`."""
        if self.scheme == "mtproxy":
            auth = "***@"
        elif self.username is not None:
            auth = f"{self.username}:***@" if self.password is not None else f"{self.username}@"
        else:
            auth = ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{auth}{host}:{self.port}"

    def telethon_options(self) -> dict[str, Any]:
        """The TelegramClient keyword arguments that route every connection of the client through this proxy.

        SOCKS and HTTP go through python-socks (Telethon prefers it when installed) with the name resolved by
        the proxy (`rdns`), so not even a DNS query leaves directly. An MTProxy changes the connection class:
        Telethon then connects to the proxy's address instead of the DC's.
        """
        if self.scheme == "mtproxy":
            from telethon.network import ConnectionTcpMTProxyRandomizedIntermediate  # noqa: PLC0415 - pure module

            return {
                "connection": ConnectionTcpMTProxyRandomizedIntermediate,
                "proxy": (self.host, self.port, self.secret),
            }
        proxy: dict[str, Any] = {"proxy_type": self.scheme, "addr": self.host, "port": self.port, "rdns": True}
        if self.username is not None:
            proxy["username"] = self.username
        if self.password is not None:
            proxy["password"] = self.password
        return {"proxy": proxy}


def parse_proxy(url: str) -> Proxy:
    """Parse `telegram.proxy`.

    Raises:
        ValueError: one line naming the value (its password masked) and the forms expected.
    """
    masked = mask(url)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:  # a port out of range or not a number
        raise ValueError(f"{masked!r} is not a proxy URL ({_port_problem(e)}): {_EXPECTED}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"{masked!r} has no known proxy scheme: {_EXPECTED}")
    if not parts.hostname or port is None or port == 0:
        raise ValueError(f"{masked!r} needs a host and a port: {_EXPECTED}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{masked!r} has a path or query a proxy URL does not take: {_EXPECTED}")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if scheme == "mtproxy":
        return _mtproxy(masked, parts.hostname, port, username, password)
    if scheme == "socks4" and password is not None:
        raise ValueError(f"{masked!r}: SOCKS 4 has a user id but no password: {_EXPECTED}")
    if password is not None and not username:
        raise ValueError(f"{masked!r} has a password without a user: {_EXPECTED}")
    return Proxy(scheme, parts.hostname, port, username, password)


def _mtproxy(masked: str, host: str, port: int, secret: str | None, extra: str | None) -> Proxy:
    if secret is None or extra is not None or not _MTPROXY_SECRET.match(secret):
        raise ValueError(
            f"{masked!r}: an MTProxy secret is 32 hex digits, optionally after `dd` (fake-TLS `ee` secrets are not "
            f"supported): {_EXPECTED}"
        )
    return Proxy("mtproxy", host, port, secret=secret.lower())


def mask(url: str) -> str:
    """`url` with whatever could be a password or secret replaced by `***` (also for URLs that do not parse)."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        return "***" if "@" in url else url.strip()
    userinfo, at, hostport = rest.rpartition("@")
    if not at:
        return url.strip()
    if scheme.lower() == "mtproxy":
        return f"{scheme}://***@{hostport}"
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}:***@{hostport}" if colon else f"{scheme}://{user}@{hostport}"


def _port_problem(error: ValueError) -> str:
    return "its port is not a number from 1 to 65535" if "port" in str(error).lower() else "it does not parse"
