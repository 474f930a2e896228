"""The real S3-compatible server of the tests (SeaweedFS through dev/s3) and a raw client to look into it."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from types_aiobotocore_s3 import S3Client

from emitter.settings import MediaSettings
from tests.integration.conftest import ROOT, _reachable

S3_PORT = int(os.environ.get("TEST_S3_PORT", "28333"))
S3_ENDPOINT = f"http://127.0.0.1:{S3_PORT}"
# dev/s3's defaults: a development server on loopback, not a credential of anything real.
ACCESS_KEY = os.environ.get("S3_ACCESS_KEY", "emitter-dev")
SECRET_KEY = os.environ.get("S3_SECRET_KEY", "emitter-dev-secret")
BUCKET = "emitter-test"


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """The S3 endpoint, started through dev/s3 (idempotent); skips only where the server cannot be built."""
    env = dict(os.environ, S3_PORT=str(S3_PORT))
    started = subprocess.run(
        [str(ROOT / "dev" / "s3"), "start"], timeout=1800, env=env, capture_output=True, text=True, check=False
    )
    if started.returncode != 0:
        if shutil.which("go") is None:
            pytest.skip("dev/s3 cannot build SeaweedFS: no Go toolchain on this machine and no cached binary")
        pytest.fail(f"dev/s3 start failed:\n{started.stderr}")
    assert _reachable(f"127.0.0.1:{S3_PORT}"), f"no S3 server on 127.0.0.1:{S3_PORT}"
    return S3_ENDPOINT


def spool_of(prefix: str) -> Path:
    """The spool directory `media_settings` gives the store under `prefix`."""
    return Path(tempfile.gettempdir()) / f"emitter-test-spool-{prefix.strip('/')}"


def media_settings(endpoint: str, **overrides: object) -> MediaSettings:
    """Settings of a store in the shared test bucket under a prefix of its own (unless overridden)."""
    tag = uuid.uuid4().hex[:12]
    values: dict[str, object] = {
        "enabled": True,
        "endpoint_url": endpoint,
        "bucket": BUCKET,
        "prefix": f"test-{tag}/",
        # A spool of its own: the fake's file ids repeat from world to world, and a spool file left under the
        # shared default by another test (or run) with the same id would be continued as this file's bytes.
        "spool_dir": spool_of(f"test-{tag}/"),
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
    }
    values.update(overrides)
    return MediaSettings.model_validate(values)


@asynccontextmanager
async def raw_s3(endpoint: str = S3_ENDPOINT) -> AsyncIterator[S3Client]:
    """A plain client of the test server in the running loop, to look at what the store did (and to leave
    debris behind)."""
    config = AioConfig(request_checksum_calculation="when_required", s3={"addressing_style": "path"})
    async with get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=config,
    ) as client:
        yield client


@pytest.fixture
async def s3(s3_endpoint: str) -> AsyncIterator[S3Client]:
    """A plain client of the test server."""
    async with raw_s3(s3_endpoint) as client:
        yield client


async def delete_prefix(client: S3Client, bucket: str, prefix: str) -> None:
    """Remove every object and open upload under `prefix`, and its spool: test data must not pile up."""
    shutil.rmtree(spool_of(prefix), ignore_errors=True)
    uploads = await client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    for upload in uploads.get("Uploads", []):
        await client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    listing = await client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    for obj in listing.get("Contents", []):
        await client.delete_object(Bucket=bucket, Key=obj["Key"])


class _Forwarder(BaseHTTPRequestHandler):
    server: FaultyProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: request lines are noise in a failed test's output."""

    def _forward(self) -> None:
        proxy = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        with proxy.lock:
            proxy.requests.append(f"{self.command} {self.path}")
            query = set(self.path.partition("?")[2].split("&"))
            fault = next((f for f in proxy.faults if f[0] in query), None)
            if fault is not None:
                proxy.faults.remove(fault)
        if fault is not None and fault[1] == "hold":
            # Stalled in flight until the test lets go, then never answered: an upload stays open meanwhile.
            proxy.held.set()
            proxy.release.wait(timeout=120)
            fault = (fault[0], "drop")
        if fault is not None and fault[1] == "drop":
            self.close_connection = True  # the request was read, no answer comes: a connection reset
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None:
            status, code = (404, "NoSuchUpload") if fault[1] == "gone" else (500, "InternalError")
            error = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
            self._answer(status, {"Content-Type": "application/xml"}, error)
            return
        upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
        try:
            # The Host header stays the proxy's: the client signed its request for that host.
            upstream.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
            response = upstream.getresponse()
            headers = {k: v for k, v in response.getheaders() if k.lower() not in {"transfer-encoding", "connection"}}
            self._answer(response.status, headers, response.read())
        finally:
            upstream.close()

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() != "content-length" or self.command == "HEAD":  # a HEAD's length is the object's
                self.send_header(key, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward


class FaultyProxy(ThreadingHTTPServer):
    """An HTTP pass-through to the S3 server that logs requests and fails chosen ones once.

    Args:
        upstream_port: the real server's port.
        faults: (a query parameter such as "partNumber=2", "drop", "500", "gone" or "hold"): the first
            request with that parameter gets its connection closed without an answer, S3's InternalError, the
            NoSuchUpload of an upload someone aborted, or is held unanswered until `release` is set (`held`
            says it arrived) and then dropped; once per entry.
    """

    daemon_threads = True

    def __init__(self, upstream_port: int, faults: list[tuple[str, str]]) -> None:
        super().__init__(("127.0.0.1", 0), _Forwarder)
        self.upstream_port = upstream_port
        self.faults = list(faults)
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.held = threading.Event()
        """Set once a request matching a "hold" fault arrived."""
        self.release = threading.Event()
        """Set to let held requests go (they are dropped, never forwarded)."""

    @property
    def url(self) -> str:
        """The endpoint to give a store instead of the server's."""
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def faulty_proxy(faults: list[tuple[str, str]]) -> Iterator[FaultyProxy]:
    """A running FaultyProxy in front of the test server."""
    proxy = FaultyProxy(S3_PORT, faults)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.release.set()
        proxy.shutdown()
        proxy.server_close()
        thread.join(timeout=5)
