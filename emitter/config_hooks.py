"""Configuration from code: connection engines that hand `TgData` its settings.

By default `TgData` reads the INI file and the environment (`emitter.settings.load_settings`). A connection
engine replaces that with any source you like — a secrets manager, a database table, a Kubernetes secret
mounted somewhere odd — by implementing one method::

    class VaultEngine:
        def get_settings(self) -> Settings:
            secret = vault.read("telegram")
            return settings_from({"api_id": secret["id"], "api_hash": secret["hash"], "session": secret["session"]})

    tg = TgData(connection_engine=VaultEngine())

Values go through the same validation as the INI file: a bad one raises `ConfigError` naming the key.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

from emitter.settings import Settings, load_settings

__all__ = [
    "CallableConnectionEngine",
    "ConnectionEngine",
    "EnvConnectionEngine",
    "IniConnectionEngine",
    "settings_from",
]

ENV_VARIABLES: Final[Mapping[str, str]] = {
    "TELEGRAM_API_ID": "api_id",
    "TELEGRAM_API_HASH": "api_hash",
    "TELEGRAM_SESSION": "session",
    "TELEGRAM_SESSION_FILE": "session_file",
    "TELEGRAM_PHONE": "phone",
}
"""The variables `EnvConnectionEngine` reads, and the `[telegram]` key each one sets."""

ConfigSource = Callable[[], "Settings | Mapping[str, Any]"]
"""What `CallableConnectionEngine` calls: returns `Settings`, the ``[telegram]`` keys, or whole sections."""


@runtime_checkable
class ConnectionEngine(Protocol):
    """Supplies the configuration `TgData` connects with."""

    def get_settings(self) -> Settings:
        """The validated settings (raise `ConfigError` for a bad value)."""
        ...


def settings_from(values: Mapping[str, Any], config_file: Path | None = None) -> Settings:
    """Validated settings from code: the ``[telegram]`` keys, or ``{"section": {"key": value}}``.

    The values win over the INI file and the environment, which still fill in what they do not name.

    Args:
        values: ``{"api_id": 1, "api_hash": "…"}`` or ``{"telegram": {…}, "kafka": {…}}``.
        config_file: the INI file underneath (default: as `load_settings` finds it).
    """
    sections = set(Settings.model_fields)
    nested = all(key in sections and isinstance(v, Mapping) for key, v in values.items()) and bool(values)
    overrides: Mapping[str, Mapping[str, Any]] = values if nested else {"telegram": values}
    return load_settings(config_file, overrides)


class IniConnectionEngine:
    """The default: the INI file (tgdata's ``config.ini`` layout loads unchanged) and the environment.

    Args:
        config_file: the INI file; None finds it as `load_settings` does ($EMITTER_CONFIG, ./config.ini).
    """

    def __init__(self, config_file: str | os.PathLike[str] | None = None) -> None:
        self.config_file = None if config_file is None else Path(config_file)

    def get_settings(self) -> Settings:
        """The settings of the INI file and the environment."""
        return load_settings(self.config_file)


class EnvConnectionEngine:
    """The account from ``TELEGRAM_API_ID``, ``TELEGRAM_API_HASH`` and ``TELEGRAM_SESSION`` or
    ``TELEGRAM_SESSION_FILE`` (plus ``TELEGRAM_PHONE``), as containers set them.

    They win over the INI file, if one is found. Unset variables are left to the other sources.

    Args:
        environ: the variables to read (default: the process environment).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = environ

    def get_settings(self) -> Settings:
        """The settings, with the ``TELEGRAM_*`` variables applied."""
        environ = os.environ if self.environ is None else self.environ
        values = {key: environ[var] for var, key in ENV_VARIABLES.items() if environ.get(var)}
        return settings_from(values)


class CallableConnectionEngine:
    """Settings from a function you provide (a secrets manager, a database, a test).

    Args:
        source: called once per `get_settings`; returns `Settings`, the ``[telegram]`` keys as a mapping,
            or whole sections (``{"telegram": {…}, "kafka": {…}}``).
    """

    def __init__(self, source: ConfigSource) -> None:
        self.source = source

    def get_settings(self) -> Settings:
        """The settings the function returns, validated."""
        found = self.source()
        if isinstance(found, Settings):
            return found
        return settings_from(found)
