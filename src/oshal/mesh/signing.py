"""Dispatch signatures: the control plane signs each envelope's routing fields, the collector verifies them.

A bot (or anything with write access to an output stream) therefore cannot file a result against
another tenant's ticket or a phase it was never given.
"""

from __future__ import annotations

import hashlib
import hmac

from oshal.mesh.envelopes import Envelope

MIN_KEY_BYTES = 16


def checked_key(key: bytes, purpose: str) -> bytes:
    """An HMAC key long enough to sign with; refuses a short one, naming what it was for."""
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"{purpose} key must be at least {MIN_KEY_BYTES} bytes")
    return key


class DispatchSigner:
    def __init__(self, key: bytes) -> None:
        self._key = checked_key(key, "dispatch signing")

    def sign(self, envelope: Envelope) -> str:
        return hmac.new(self._key, envelope.routing(), hashlib.sha256).hexdigest()[:32]

    def verify(self, envelope: Envelope) -> bool:
        return hmac.compare_digest(self.sign(envelope), envelope.sig)


def derive_key(master: bytes, purpose: str) -> bytes:
    """A separate key per purpose from the one control-plane secret, so no two uses share a key."""
    return hmac.new(master, f"oshal:{purpose}".encode(), hashlib.sha256).digest()
