"""Publisher keys: Ed25519 key pairs, their ids, and the forms they are stored and shared in.

* private key: PEM PKCS8, unencrypted (what ``NAME.key`` holds);
* public key: one line ``ed25519:<base64 of the 32 raw bytes>`` (what ``NAME.pub`` and the trust store hold).

A key's id is the first 16 hex digits of the sha256 of its 32 raw public bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from oshal.errors import Invalid

ALGORITHM = "ed25519"
PUBLIC_KEY_PREFIX = "ed25519:"
RAW_KEY_BYTES = 32
KEY_ID_HEX = 16


def generate_keypair() -> tuple[bytes, bytes]:
    """A fresh Ed25519 key pair as (raw private 32 bytes, raw public 32 bytes)."""
    private = Ed25519PrivateKey.generate()
    private_raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                        serialization.NoEncryption())
    return private_raw, public_raw_of(private)


def key_id(public_raw: bytes) -> str:
    """First 16 hex digits of sha256(raw public key): short enough to read, long enough not to collide."""
    return hashlib.sha256(public_raw).hexdigest()[:KEY_ID_HEX]


def private_key_pem(private_raw: bytes) -> bytes:
    """The raw private key as unencrypted PEM PKCS8 (what ``NAME.key`` holds)."""
    if len(private_raw) != RAW_KEY_BYTES:
        raise Invalid(f"an Ed25519 private key is {RAW_KEY_BYTES} bytes, not {len(private_raw)}")
    private = Ed25519PrivateKey.from_private_bytes(private_raw)
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def public_key_text(public_raw: bytes) -> str:
    """The one-line text form of a public key: ``ed25519:<base64 raw>``."""
    if len(public_raw) != RAW_KEY_BYTES:
        raise Invalid(f"an Ed25519 public key is {RAW_KEY_BYTES} bytes, not {len(public_raw)}")
    return PUBLIC_KEY_PREFIX + base64.b64encode(public_raw).decode("ascii")


def parse_public_key(text: str) -> bytes:
    """The raw 32 bytes of a public key in its one-line text form; Invalid if it is anything else."""
    line = text.strip()
    hint = "a public key file holds one line `ed25519:<base64>`, as `oshal connector keygen` writes it"
    if not line.startswith(PUBLIC_KEY_PREFIX):
        raise Invalid("the public key does not start with 'ed25519:'", hint=hint)
    try:
        raw = base64.b64decode(line[len(PUBLIC_KEY_PREFIX):], validate=True)
    except (binascii.Error, ValueError) as e:
        raise Invalid("the public key after 'ed25519:' is not valid base64", hint=hint) from e
    if len(raw) != RAW_KEY_BYTES:
        raise Invalid(f"the public key is {len(raw)} bytes; an Ed25519 public key is {RAW_KEY_BYTES}", hint=hint)
    return raw


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """Parse an unencrypted PEM PKCS8 Ed25519 private key; Invalid if it is not one."""
    hint = "use the NAME.key file that `oshal connector keygen` wrote"
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except TypeError as e:  # encrypted, and no password given
        raise Invalid("the private key is encrypted; oshal signs with unencrypted PKCS8 keys", hint=hint) from e
    except (ValueError, UnsupportedAlgorithm) as e:
        raise Invalid("the private key is not a PEM PKCS8 key", hint=hint) from e
    if not isinstance(private, Ed25519PrivateKey):
        raise Invalid(f"the private key is a {type(private).__name__.removeprefix('_')}, not an Ed25519 key",
                      hint=hint)
    return private


def public_raw_of(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
