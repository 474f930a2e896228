"""The server side of Telegram's two-step verification: SRP-6a as Telegram specifies it (core.telegram.org/api/srp).

Written from the specification, not from Telethon's client code, so a client that computes its proof wrongly
fails here as it would against Telegram. The server never keeps the password: only the salts and the
verifier ``v = g^x mod p``, where ``x`` is the password hashed as the specification says (SHA-256 twice with
the salts, PBKDF2-HMAC-SHA512 with 100 000 iterations, SHA-256 again). For each `account.getPassword` it
picks a secret ``b``, publishes ``B = k·v + g^b`` with a fresh ``srp_id``, and later accepts the client's
``(A, M1)`` only if M1 matches the proof computed from its own side of the exchange.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from dataclasses import dataclass, field

from telethon.tl import types

# The 2048-bit safe prime Telegram's servers publish in account.password (clients check it is this one).
TELEGRAM_PRIME = int(
    "C71CAEB9C6B1C9048E6C522F70F13F73980D40238E3E21C14934D037563D930F48198A0AA7C14058229493D22530F4DB"
    "FA336F6E0AC925139543AED44CCE7C3720FD51F69458705AC68CD4FE6B6B13ABDC9746512969328454F18FAF8C595F64"
    "2477FE96BB2A941D5BCD1D4AC8CC49880708FA9B378E3C4F3A9060BEE67CF9A4A4A695811051907E162753B56B0F6B41"
    "0DBA74D8A84B2A14B3144E0EF1284754FD17ED950D5965B4B9DD46582DB1178D169C6BC465B0D6FF9CA3928FEF5B9AE4"
    "E418FC15E83EBEA0F87FA9FF5EED70050DED2849F47BF959D956850CE929851F0D8115F635B105EE2E4E15D04B2454BF"
    "6F4FADF034B10403119CD8E3B92FCC5B",
    16,
)
GENERATOR = 3
_SIZE = 256  # every number enters the hashes as 256 big-endian bytes


def _h(*parts: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.digest()


def _pad(number: int) -> bytes:
    return number.to_bytes(_SIZE, "big")


def password_hash(password: str, salt1: bytes, salt2: bytes) -> int:
    """x = PH2(password, salt1, salt2) of the specification."""
    ph1 = _h(salt2, _h(salt1, password.encode(), salt1), salt2)
    return int.from_bytes(_h(salt2, hashlib.pbkdf2_hmac("sha512", ph1, salt1, 100_000), salt2), "big")


def _good_exponent_result(value: int) -> bool:
    """The range check the specification asks of g^a and g^b: 2^1984 < value < p - 2^1984."""
    return value.bit_length() > 1984 and (TELEGRAM_PRIME - value).bit_length() > 1984


@dataclass(frozen=True, slots=True)
class Challenge:
    """One account.password answer: the server's secret b and what it published from it."""

    srp_id: int
    b: int
    srp_b: int


@dataclass
class SrpPassword:
    """A two-step verification password as the server holds it: salts and verifier, never the password."""

    salt1: bytes
    salt2: bytes
    verifier: int
    hint: str | None = None
    _challenges: dict[int, Challenge] = field(default_factory=dict)

    @classmethod
    def create(cls, password: str, rng: random.Random, hint: str | None = None) -> SrpPassword:
        """Set a password: new salts, and the verifier g^x mod p."""
        salt1, salt2 = rng.randbytes(40), rng.randbytes(16)
        x = password_hash(password, salt1, salt2)
        return cls(salt1, salt2, pow(GENERATOR, x, TELEGRAM_PRIME), hint)

    @property
    def algo(self) -> types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow:
        """The TL description of the key derivation, as account.password carries it."""
        return types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
            salt1=self.salt1, salt2=self.salt2, g=GENERATOR, p=_pad(TELEGRAM_PRIME)
        )

    def challenge(self, rng: random.Random) -> Challenge:
        """A fresh (srp_id, B) for the client; the secret b stays here until the client answers."""
        k = int.from_bytes(_h(_pad(TELEGRAM_PRIME), _pad(GENERATOR)), "big")
        while True:
            b = int.from_bytes(rng.randbytes(_SIZE), "big")
            g_b = pow(GENERATOR, b, TELEGRAM_PRIME)
            srp_b = (k * self.verifier + g_b) % TELEGRAM_PRIME
            if _good_exponent_result(g_b) and 0 < srp_b < TELEGRAM_PRIME:
                break
        found = Challenge(rng.randrange(1, 2**63), b, srp_b)
        self._challenges[found.srp_id] = found
        return found

    def known(self, srp_id: int) -> bool:
        """Whether `srp_id` names a challenge this password issued and nobody answered yet."""
        return srp_id in self._challenges

    def verify(self, srp_id: int, a_bytes: bytes, m1: bytes) -> bool:
        """Whether the client's (A, M1) proves it knows the password; each challenge is answered once."""
        challenge = self._challenges.pop(srp_id)
        p = TELEGRAM_PRIME
        a = int.from_bytes(a_bytes, "big")
        if not 1 < a < p or not _good_exponent_result(a):
            return False
        u = int.from_bytes(_h(_pad(a), _pad(challenge.srp_b)), "big")
        if u == 0:
            return False
        s = pow(a * pow(self.verifier, u, p), challenge.b, p)
        key = _h(_pad(s))
        hp, hg = _h(_pad(p)), _h(_pad(GENERATOR))
        expected = _h(
            bytes(x ^ y for x, y in zip(hp, hg, strict=True)),
            _h(self.salt1),
            _h(self.salt2),
            _pad(a),
            _pad(challenge.srp_b),
            key,
        )
        return hmac.compare_digest(expected, m1)


@dataclass
class SentCode:
    """A login code the fake "delivered" to the account's other devices (auth.sendCode)."""

    phone: str
    code: str
    expired: bool = False
