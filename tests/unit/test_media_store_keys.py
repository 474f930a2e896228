"""MediaStore's naming and what it shows of itself, without a server."""

from __future__ import annotations

import pytest

from emitter.media_store import MediaStore
from emitter.settings import MediaSettings

DIGEST = "9f" * 32
SECRET = "s3cr3t"  # noqa: S105 - made up: the store is never started


def store(prefix: str = "") -> MediaStore:
    """A store that is never started."""
    return MediaStore(
        MediaSettings(bucket="telegram-media", prefix=prefix, access_key_id="AKIAEXAMPLE", secret_access_key=SECRET)
    )


@pytest.mark.parametrize(("prefix", "key"), [("", f"media/{DIGEST}"), ("prod/a/", f"prod/a/media/{DIGEST}")])
def test_keys_are_the_content_hash_under_the_prefix(prefix: str, key: str) -> None:
    """An object's key is <prefix>media/<sha256 hex>, its URI s3://bucket/key."""
    assert store(prefix).key(DIGEST) == key
    assert store(prefix).uri(DIGEST) == f"s3://telegram-media/{key}"


@pytest.mark.parametrize("bad", ["9F" * 32, "9f" * 31, "9f" * 32 + "0", "xyz", ""])
def test_anything_but_a_sha256_is_refused(bad: str) -> None:
    """A key is made only from 64 lower-case hex digits: one name per content."""
    with pytest.raises(ValueError, match="is not a SHA-256"):
        store().key(bad)


def test_repr_names_the_access_key_not_the_secret() -> None:
    """repr shows bucket and access key id, never the secret key."""
    text = repr(store())
    assert "AKIAEXAMPLE" in text
    assert SECRET not in text
