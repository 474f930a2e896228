"""The real S3-compatible server of the tests (SeaweedFS through dev/s3) and a raw client to look into it."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator

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


def media_settings(endpoint: str, **overrides: object) -> MediaSettings:
    """Settings of a store in the shared test bucket under a prefix of its own (unless overridden)."""
    values: dict[str, object] = {
        "enabled": True,
        "endpoint_url": endpoint,
        "bucket": BUCKET,
        "prefix": f"test-{uuid.uuid4().hex[:12]}/",
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
    }
    values.update(overrides)
    return MediaSettings.model_validate(values)


@pytest.fixture
async def s3(s3_endpoint: str) -> AsyncIterator[S3Client]:
    """A plain client of the test server, to look at what the store did (and to leave debris behind)."""
    config = AioConfig(request_checksum_calculation="when_required", s3={"addressing_style": "path"})
    async with get_session().create_client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=config,
    ) as client:
        yield client


async def delete_prefix(client: S3Client, bucket: str, prefix: str) -> None:
    """Remove every object and open upload under `prefix`: test data must not pile up in the dev server."""
    uploads = await client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    for upload in uploads.get("Uploads", []):
        await client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    listing = await client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    for obj in listing.get("Contents", []):
        await client.delete_object(Bucket=bucket, Key=obj["Key"])
