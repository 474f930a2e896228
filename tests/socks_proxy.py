"""A real SOCKS5 proxy for tests: Debian's `microsocks`, with a user and password, started and stopped at will.

Its outgoing connections are bound to 127.0.0.2 (`-b`), so a server on 127.0.0.1 tells a proxied connection
(peer 127.0.0.2) from a direct one (peer 127.0.0.1) by the peer address alone; microsocks also logs every
connection it makes (`client[fd] 127.0.0.1: connected to host:port`). `make test` installs it (`make socks`);
without it the tests skip with the install hint, except in CI (`CI` set), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import NoReturn

import pytest

INSTALL_HINT = "microsocks is not installed: `make socks` (or `apt-get install -y microsocks`)"
PORT = 21080
OUTGOING = "127.0.0.2"
"""The address microsocks connects from: what a server behind it sees as the peer."""
USER = "emitter"
PASSWORD = "proxy-pw-must-not-leak"  # noqa: S105 - a test proxy's password, made to be searched for in logs
URL = f"socks5://{USER}:{PASSWORD}@127.0.0.1:{PORT}"
START_TIMEOUT = 10.0


def _missing(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the proxy tests)")
    pytest.skip(reason)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Microsocks:
    """One microsocks process on 127.0.0.1:`port`; `start()` and `stop()` may be called again and again."""

    def __init__(self, log_path: Path, *, port: int = PORT) -> None:
        binary = shutil.which("microsocks")
        if binary is None:
            _missing(INSTALL_HINT)
        self.binary = binary
        self.port = port
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        if self._proc is not None:
            return
        if _listening(self.port):
            raise AssertionError(f"port {self.port} is taken: another proxy test is running on this machine")
        with self.log_path.open("ab") as log:
            args = ["-i", "127.0.0.1", "-p", str(self.port), "-u", USER, "-P", PASSWORD, "-b", OUTGOING]
            self._proc = subprocess.Popen([self.binary, *args], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not _listening(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"microsocks did not listen on {self.port}: {self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop it (its open connections die with it)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def log(self) -> str:
        """What microsocks printed so far: one line per connection it made."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
