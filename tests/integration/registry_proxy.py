"""The real schema registry for tests (dev/registry), and a pass-through in front of it that counts requests
and can demand basic auth or speak TLS — what a managed registry does that our local one does not."""

from __future__ import annotations

import base64
import http.client
import os
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
DEV_REGISTRY = ROOT / "dev" / "registry"
CCOMPAT = "/apis/ccompat/v7"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dev_registry(command: str, port: int, state_dir: Path | None = None, timeout: float = 300) -> None:
    """Run `dev/registry start|stop` for the registry on `port` (its own state dir unless the default)."""
    env = dict(os.environ, REGISTRY_PORT=str(port), REGISTRY_MANAGEMENT_PORT=str(free_port()))
    if state_dir is not None:
        env["REGISTRY_STATE_DIR"] = str(state_dir)
    done = subprocess.run([str(DEV_REGISTRY), command], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"dev/registry {command} failed: {done.stderr.strip()}"


class _Forwarder(BaseHTTPRequestHandler):
    server: RegistryProxy

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: pytest shows stderr of failed tests, and request lines are noise there."""

    def _forward(self) -> None:
        proxy = self.server
        with proxy.lock:
            proxy.requests.append(f"{self.command} {self.path}")
        if proxy.expected_auth is not None and self.headers.get("Authorization") != proxy.expected_auth:
            self._answer(401, b'{"error_code":401,"message":"Unauthorized"}')
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "authorization"}}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            self._answer(response.status, response.read(), response.getheader("Content-Type"))
        finally:
            upstream.close()

    def _answer(self, status: int, body: bytes, content_type: str | None = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type or "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _forward


class RegistryProxy(ThreadingHTTPServer):
    """Forwards every request to the real registry at `upstream` and records it."""

    daemon_threads = True

    def __init__(self, upstream: str, *, username: str | None = None, password: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Forwarder)
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.expected_auth = None
        if username is not None:
            token = base64.b64encode(f"{username}:{password}".encode()).decode()
            self.expected_auth = f"Basic {token}"
        self.scheme = "http"

    def use_tls(self, certificate: Path, key: Path) -> None:
        """Answer over TLS with this certificate (call before `running`)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.scheme = "https"

    @property
    def url(self) -> str:
        """The registry's Confluent API through this proxy."""
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}{CCOMPAT}"

    def schema_requests(self) -> list[str]:
        """The requests that fetched a schema by id."""
        with self.lock:
            return [r for r in self.requests if "/schemas/ids/" in r]


@contextmanager
def running(proxy: RegistryProxy) -> Iterator[RegistryProxy]:
    """Serve in a thread for the duration of the block."""
    thread = threading.Thread(target=proxy.serve_forever, name="registry proxy", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(timeout=10)


def make_server_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate it signed for 127.0.0.1: (ca.pem, server.pem, server.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    ext = directory / "server.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
    )
    commands = [
        [
            *("openssl", "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2"),
            *("-keyout", str(ca_key), "-out", str(ca), "-subj", "/CN=registry test CA"),
            *("-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"),
        ],
        [
            *("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256"),
            *("-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1"),
        ],
        [
            *("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key)),
            *("-CAcreateserial", "-days", "2", "-sha256", "-extfile", str(ext), "-out", str(cert)),
        ],
    ]
    for command in commands:
        subprocess.run(command, check=True, capture_output=True, timeout=60)
    return ca, cert, key
