"""A real Redis for tests: `redis-server` on a free local port, started once per session, no persistence.

Use it by importing the fixture into a test module::

    from tests.redis_server import redis_url_fixture  # noqa: F401 - registers the `redis_url` fixture

Without the `redis-server` binary (or the `redis` package) the tests that need it are skipped with the
install hint — except in CI (`CI` set), where that is a failure: CI must run them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

INSTALL_HINT = (
    "redis-server is not installed: `apt-get install -y redis-server` (Debian/Ubuntu) or `brew install redis`; "
    "and the client: pip install -e '.[redis]'"
)
START_TIMEOUT = 15.0
_ATTEMPTS = 3


def _missing(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the Redis tests)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pong(port: int) -> bool:
    """Whether a Redis answers PING on the port (plain RESP, no client library needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _start(binary: str, port: int, workdir: Path) -> subprocess.Popen[bytes] | None:
    """Start redis-server on `port`; None if it exited (the port was taken in the meantime)."""
    log = (workdir / f"redis-{port}.log").open("wb")
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    proc = subprocess.Popen([binary, *args], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        if _pong(port):
            return proc
        time.sleep(0.05)
    _stop(proc)
    raise AssertionError(f"redis-server did not answer PING on port {port} within {START_TIMEOUT} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session", name="redis_url")
def redis_url_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a Redis started for this test session (stopped at its end)."""
    binary = shutil.which("redis-server")
    if binary is None or importlib.util.find_spec("redis") is None:
        _missing(INSTALL_HINT)
    workdir = tmp_path_factory.mktemp("redis")
    for _ in range(_ATTEMPTS):
        port = _free_port()
        proc = _start(binary, port, workdir)
        if proc is not None:
            break
    else:
        raise AssertionError(f"redis-server failed to start {_ATTEMPTS} times; see the logs in {workdir}")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(proc)
