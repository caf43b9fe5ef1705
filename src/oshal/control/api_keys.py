"""API keys: ``osk_<prefix>_<secret>``, stored as a SHA-256 digest, shown once."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

KEY_SCHEME = "osk"


@dataclass(frozen=True, slots=True)
class IssuedKey:
    plaintext: str
    prefix: str
    digest: bytes


def issue() -> IssuedKey:
    prefix = secrets.token_hex(6)
    plaintext = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    return IssuedKey(plaintext, prefix, digest(plaintext))


def digest(plaintext: str) -> bytes:
    # Keys carry 256 bits of randomness, so a fast hash is enough; no password stretching needed.
    return hashlib.sha256(plaintext.encode()).digest()


def parse_prefix(plaintext: str) -> str | None:
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or len(parts[1]) != 12:
        return None
    return parts[1]
