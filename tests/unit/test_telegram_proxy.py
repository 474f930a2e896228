"""`telegram.proxy` parsed into a Proxy: the forms Telethon takes, and the password kept out of sight."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from telethon.network import ConnectionTcpMTProxyRandomizedIntermediate

from emitter.errors import ConfigError
from emitter.settings import TelegramSettings
from emitter.telegram_client import make_client
from emitter.telegram_proxy import Proxy, mask, parse_proxy

SECRET = "0123456789abcdef0123456789abcdef"  # noqa: S105 - a made-up MTProxy secret


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("socks5://127.0.0.1:1080", Proxy("socks5", "127.0.0.1", 1080)),
        ("SOCKS5://u:p%40ss@proxy.example:1080", Proxy("socks5", "proxy.example", 1080, "u", "p@ss")),
        ("socks4://user@10.0.0.1:1080", Proxy("socks4", "10.0.0.1", 1080, "user")),
        ("http://u:pw@[::1]:3128/", Proxy("http", "::1", 3128, "u", "pw")),
        (f"mtproxy://{SECRET}@mt.example:443", Proxy("mtproxy", "mt.example", 443, secret=SECRET)),
        (f"mtproxy://DD{SECRET.upper()}@mt.example:443", Proxy("mtproxy", "mt.example", 443, secret=f"dd{SECRET}")),
    ],
)
def test_proxy_urls_parse(url: str, expected: Proxy) -> None:
    """Each supported form parses into its scheme, host, port and credentials."""
    assert parse_proxy(url) == expected


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("socks5://u:pw@host", "needs a host and a port"),
        ("socks5://u:pw@:1080", "needs a host and a port"),
        ("socks5://host:0", "needs a host and a port"),
        ("socks5://host:port", "its port is not a number"),
        ("tor://host:9050", "no known proxy scheme"),
        ("host:1080", "no known proxy scheme"),
        ("socks4://u:pw@host:1080", "SOCKS 4 has a user id but no password"),
        ("socks5://:pw@host:1080", "a password without a user"),
        ("http://host:3128/path", "has a path or query"),
        (f"mtproxy://ee{SECRET}@host:443", "fake-TLS"),
        ("mtproxy://host:443", "an MTProxy secret is 32 hex digits"),
    ],
)
def test_bad_proxy_urls_say_what_was_expected(url: str, says: str) -> None:
    """A bad URL is refused with the reason and the forms expected, its password masked."""
    with pytest.raises(ValueError, match="expected socks5://") as info:
        parse_proxy(url)
    assert says in str(info.value)
    assert "pw" not in str(info.value).replace("password", "")
    assert SECRET not in str(info.value)


def test_the_password_never_shows() -> None:
    """repr, describe() and mask() name the user, host and port but never the password or secret."""
    proxy = parse_proxy("socks5://emitter:hunter2-pw@127.0.0.1:21080")
    assert repr(proxy) == "Proxy(socks5://emitter:***@127.0.0.1:21080)"
    assert proxy.describe() == "socks5://emitter:***@127.0.0.1:21080"
    assert mask("socks5://emitter:hunter2-pw@127.0.0.1:21080") == "socks5://emitter:***@127.0.0.1:21080"
    assert mask(f"mtproxy://{SECRET}@h:443") == "mtproxy://***@h:443"
    mt = parse_proxy(f"mtproxy://{SECRET}@h:443")
    assert SECRET not in repr(mt) + mt.describe()


def test_the_client_connects_through_the_proxy() -> None:
    """make_client hands Telethon the proxy (python-socks form, resolved remotely) or the MTProxy connection."""
    base = {"api_id": 1, "api_hash": SecretStr("h"), "session": SecretStr("")}
    client = make_client(TelegramSettings(**base, proxy=SecretStr("socks5://u:pw@127.0.0.1:21080")))  # type: ignore[arg-type]
    assert client._proxy == {
        "proxy_type": "socks5",
        "addr": "127.0.0.1",
        "port": 21080,
        "rdns": True,
        "username": "u",
        "password": "pw",
    }
    mt = make_client(TelegramSettings(**base, proxy=SecretStr(f"mtproxy://{SECRET}@127.0.0.1:443")))  # type: ignore[arg-type]
    assert mt._connection is ConnectionTcpMTProxyRandomizedIntermediate
    assert mt._proxy == ("127.0.0.1", 443, SECRET)
    assert make_client(TelegramSettings(**base))._proxy is None  # type: ignore[arg-type]


def test_require_proxy_without_one_builds_no_client() -> None:
    """Settings built in code with require_proxy and no proxy cannot make a client that would go direct."""
    settings = TelegramSettings(api_id=1, api_hash=SecretStr("h"), session=SecretStr(""), require_proxy=True)
    with pytest.raises(ConfigError, match="require_proxy"):
        make_client(settings)
