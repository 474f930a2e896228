"""The device identity a session shows Telegram, pinned so that a session is not re-fingerprinted on each start.

Telegram lists every session of an account with the device model, system version, app version and languages
its client sent in `initConnection`. Telethon's defaults come from the machine (the kernel release, the
Telethon version), so an upgrade or a move to another host would present the same auth key as a different
device: exactly what makes an account look hijacked. `emitter login` therefore records the identity it used in
a small file beside the session file; later runs reuse it, a configured key overrides it, and a run whose
configured identity differs from the recorded one warns.

The choosing is pure (`choose`); reading and writing the record are the only I/O.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from emitter.errors import ConfigError
from emitter.settings import TelegramSettings

FIELDS = ("device_model", "system_version", "app_version", "lang_code", "system_lang_code")
"""The identity's keys: `telegram.<key>` settings, TelegramClient keywords and initConnection fields alike."""

SUFFIX = ".identity.json"


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """What a client sends Telegram in initConnection about itself."""

    device_model: str
    system_version: str
    app_version: str
    lang_code: str
    system_lang_code: str

    @classmethod
    def of(cls, source: Any) -> DeviceIdentity:
        """The identity carried by anything with the five attributes (an InitConnectionRequest, say)."""
        return cls(*(str(getattr(source, name)) for name in FIELDS))

    def as_env(self) -> str:
        """The identity as environment assignments that pin it (for a session that has no file beside it)."""
        return " ".join(f"EMITTER_TELEGRAM__{k.upper()}={shlex.quote(v)}" for k, v in asdict(self).items())


def configured(settings: TelegramSettings) -> dict[str, str]:
    """The identity keys the settings set (unset ones are left to the record or to Telethon)."""
    return {name: value for name in FIELDS if (value := getattr(settings, name)) is not None}


@dataclass(frozen=True, slots=True)
class Choice:
    """The identity keys to give the client, and the configured keys that differ from the recorded ones."""

    keywords: dict[str, str]
    changed: tuple[str, ...]


def choose(settings: Mapping[str, str], recorded: DeviceIdentity | None) -> Choice:
    """Settings win over the record, key by key; without either Telethon's defaults apply (keys left out)."""
    base = asdict(recorded) if recorded is not None else {}
    keywords = {**base, **settings}
    changed = tuple(name for name in FIELDS if name in settings and name in base and settings[name] != base[name])
    return Choice(keywords, changed)


def describe_change(recorded: DeviceIdentity, keywords: Mapping[str, str], changed: tuple[str, ...]) -> str:
    """One line naming each changed key with its recorded and configured value (none of them is a secret)."""
    parts = [f"{name} {getattr(recorded, name)!r} → {keywords[name]!r}" for name in changed]
    return "; ".join(parts)


def record_path(session_filename: str | os.PathLike[str]) -> Path:
    """Where the identity of a session file is recorded: `<session file>.identity.json` beside it."""
    return Path(f"{os.fspath(session_filename)}{SUFFIX}")


def read_record(path: Path) -> DeviceIdentity | None:
    """The recorded identity, or None when there is no record.

    Raises:
        ConfigError: the file exists but is not an identity record (one line naming the file).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"cannot read the device identity {path}: {e.strerror}") from e
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str) and doc[k] for k in FIELDS):
        raise ConfigError(
            f"{path} is not a device identity: expected a JSON object with the strings {', '.join(FIELDS)} "
            "(delete it and run `emitter login` to record a new one)"
        )
    return DeviceIdentity(*(doc[f.name] for f in fields(DeviceIdentity)))


def write_record(path: Path, identity: DeviceIdentity) -> None:
    """Record the identity beside the session, owner-only like the session file, replacing any older record."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(asdict(identity), f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.chmod(tmp, 0o600)  # an older tmp file may have had another mode
    os.replace(tmp, path)
