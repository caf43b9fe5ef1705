"""AES-256-GCM envelope encryption: values under a per-tenant data key (DEK), DEKs under the KEK.

Layout of every blob this module produces: one format byte (``0x01``), a random 12-byte nonce, then the
AES-GCM ciphertext with its 16-byte tag. A wrapped DEK is such a blob with the DEK as plaintext and a fixed
context as associated data; a credential is such a blob with the value as plaintext and ``tenant|name``
(``tenant|name|user`` when user-scoped) as associated data, so a ciphertext copied to another tenant, name
or user no longer authenticates.

Error messages name what failed and what to do; they never contain key material or plaintext.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
from pathlib import Path
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from oshal.errors import ConfigError, Forbidden
from oshal.secretfiles import secrets_dir
from oshal.settings import Settings

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
FORMAT = b"\x01"
KEK_ENV = "OSHAL_SECRETS_KEK"
KEK_HINT = (
    f"set {KEK_ENV} to base64 of 32 random bytes; generate one with: "
    'python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"'
)
_WRAP_AAD = b"oshal/data-key/v1"
_OVERHEAD = len(FORMAT) + NONCE_BYTES + TAG_BYTES


def kek_id(kek: bytes) -> str:
    """A public fingerprint of a KEK (first 16 hex digits of its SHA-256): safe to store and to show."""
    return hashlib.sha256(kek).hexdigest()[:16]


def new_data_key() -> bytes:
    return os.urandom(KEY_BYTES)


def credential_aad(tenant_id: UUID | str, name: str, user_id: UUID | str | None = None) -> bytes:
    """What a credential ciphertext is bound to. Names cannot contain ``|`` (see the store's name rule)."""
    parts = [str(tenant_id), name] + ([str(user_id)] if user_id is not None else [])
    return "|".join(parts).encode()


def _check_key(key: bytes, what: str) -> None:
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{what} must be {KEY_BYTES} bytes, got {len(key)}", hint=KEK_HINT)


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return FORMAT + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, blob: bytes, aad: bytes) -> bytes | None:
    """The plaintext, or None when the blob is malformed or does not authenticate under ``key`` and ``aad``."""
    if len(blob) < _OVERHEAD or blob[:1] != FORMAT:
        return None
    nonce, body = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, body, aad)
    except InvalidTag:
        return None


def wrap(kek: bytes, dek: bytes) -> bytes:
    """Encrypt a data key under the KEK."""
    _check_key(kek, "the key-encryption key")
    _check_key(dek, "a data key")
    return _seal(kek, dek, _WRAP_AAD)


def unwrap(kek: bytes, wrapped: bytes) -> bytes:
    """Decrypt a data key; a KEK that did not wrap it raises ConfigError naming the KEK's fingerprint only."""
    _check_key(kek, "the key-encryption key")
    dek = _open(kek, bytes(wrapped), _WRAP_AAD)
    if dek is None or len(dek) != KEY_BYTES:
        raise ConfigError(
            f"a data key cannot be unwrapped with the key-encryption key {kek_id(kek)}: it was wrapped by another "
            "KEK or the stored key was altered",
            hint=f"configure the KEK that wrapped it ({KEK_ENV}, or as a previous KEK while rotating)",
        )
    return dek


def encrypt(dek: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt a value under a data key, bound to ``aad``."""
    _check_key(dek, "a data key")
    return _seal(dek, plaintext, aad)


def decrypt(dek: bytes, blob: bytes, aad: bytes) -> bytes:
    """Decrypt a value; a wrong key, wrong binding or altered blob raises Forbidden."""
    _check_key(dek, "a data key")
    plaintext = _open(dek, bytes(blob), aad)
    if plaintext is None:
        raise Forbidden(
            "a stored credential failed authentication: it was not encrypted for this tenant and name, "
            "or it was altered",
            hint="store the credential again under its own tenant and name",
        )
    return plaintext


def parse_kek(text: str, *, source: str = KEK_ENV) -> bytes:
    """Decode a base64 KEK; anything but exactly 32 bytes of strict base64 raises ConfigError (text not echoed)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{source} is not valid base64", hint=KEK_HINT) from None
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{source} must decode to {KEY_BYTES} bytes, got {len(key)}", hint=KEK_HINT)
    return key


def dev_kek_file(home: Path) -> Path:
    return secrets_dir(home) / "kek"


def _read_or_create_kek(path: Path) -> str:
    """Like ``secretfiles.read_or_create`` but base64 of 32 bytes, and safe against two processes racing:
    the key is written to a private temp file and hard-linked into place, so exactly one key ever wins."""
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(base64.b64encode(new_data_key()).decode() + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # atomic; loses quietly to a concurrent creator
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text()


def load_kek(settings: Settings) -> bytes:
    """The KEK from ``OSHAL_SECRETS_KEK``; in dev mode without it, a generated one kept in $OSHAL_HOME/secrets.

    Outside dev mode a missing or malformed KEK is an error: credentials are never stored under a key nobody
    configured on purpose.
    """
    if settings.secrets_kek is not None:
        return parse_kek(settings.secrets_kek.get_secret_value())
    if settings.mode != "dev":
        raise ConfigError(f"{KEK_ENV} is not set; outside dev mode stored credentials need an explicit KEK",
                          hint=KEK_HINT)
    path = dev_kek_file(settings.home)
    return parse_kek(_read_or_create_kek(path), source=str(path))
