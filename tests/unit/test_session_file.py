"""The Telethon session file holds the account's auth key: it must never exist readable by others."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from emitter.settings import load_settings
from emitter.telegram_source import make_client


def test_a_new_session_file_is_owner_only_from_the_start(tmp_path: Path) -> None:
    """Under a permissive umask the file Telethon creates is 0600 before any connect, and the umask is restored."""
    settings = load_settings(
        None, {"telegram": {"api_id": 1, "api_hash": "0" * 32, "session_file": str(tmp_path / "account")}}
    )
    previous = os.umask(0o022)
    try:
        client = make_client(settings.telegram)
        try:
            path = tmp_path / "account.session"
            assert path.exists()  # created by the constructor: nothing had a chance to chmod it yet
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert os.umask(0o022) == 0o022
        finally:
            client.session.close()
    finally:
        os.umask(previous)
