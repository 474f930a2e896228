"""Telethon's AES-IGE, which every MTProto message passes through, is cryptg's (a dependency), not libssl via ctypes."""

from __future__ import annotations

import os

from telethon.crypto import AES, aes, libssl


def test_telethon_encrypts_with_cryptg_and_agrees_with_libssl() -> None:
    """cryptg is the backend Telethon picked, and its ciphertext and plaintext match libssl's for one message."""
    assert aes.cryptg is not None, "cryptg is not installed: Telethon falls back to libssl through ctypes"
    key, iv, data = os.urandom(32), os.urandom(32), os.urandom(40_960)
    cipher = AES.encrypt_ige(data, key, iv)
    if libssl.encrypt_ige is not None:  # the machine's libssl, when ctypes finds one: the same bytes
        assert cipher == libssl.encrypt_ige(data, key, iv)
    assert cipher != data
    assert AES.decrypt_ige(cipher, key, iv) == data
