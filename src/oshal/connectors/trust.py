"""The trust store: which publishers' public keys this installation accepts signatures from.

Plain files, so an operator can read and back them up::

    <home>/trust/<publisher>/<key_id>.pub       one line ``ed25519:<base64>``
    <home>/trust/<publisher>/<key_id>.revoked   present once the key is revoked (holds the time)

Folders are 0700. A revoked key stays listed (as revoked) and cannot be trusted again: a new key is needed.
Publisher names and key ids are validated before they touch a path, so neither can escape the store.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from oshal.connectors.publisher_keys import KEY_ID_HEX, key_id, parse_public_key
from oshal.connectors.publisher_keys import public_key_text as format_public_key
from oshal.errors import Conflict, Invalid, NotFound
from oshal.secretfiles import write_private

PUBLISHER_PATTERN = r"[a-z0-9][a-z0-9._-]{0,99}"
_PUBLISHER = re.compile(PUBLISHER_PATTERN)
_KEY_ID = re.compile(f"[0-9a-f]{{{KEY_ID_HEX}}}")

KeyStatus = Literal["trusted", "revoked", "unknown"]


def is_valid_publisher(name: str) -> bool:
    return _PUBLISHER.fullmatch(name) is not None


def validate_publisher(name: str) -> str:
    """``name`` if it is a publisher name (``^[a-z0-9][a-z0-9._-]{0,99}$``), else Invalid."""
    if not is_valid_publisher(name):
        raise Invalid(f"publisher name {name!r} is not allowed",
                      hint="use 1 to 100 of a-z 0-9 . _ -, starting with a letter or digit (e.g. acme-labs)")
    return name


def validate_key_id(value: str) -> str:
    if _KEY_ID.fullmatch(value) is None:
        raise Invalid(f"key id {value!r} is not {KEY_ID_HEX} lowercase hex digits",
                      hint="copy it from `oshal connector trust --list`")
    return value


@dataclass(frozen=True)
class TrustedKey:
    """One publisher key in the store, trusted or revoked."""

    publisher: str
    key_id: str
    public_key: str
    trusted_at: str
    revoked_at: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def status(self) -> KeyStatus:
        return "revoked" if self.revoked else "trusted"

    def to_dict(self) -> dict[str, Any]:
        return {"publisher": self.publisher, "key_id": self.key_id, "status": self.status,
                "public_key": self.public_key, "trusted_at": self.trusted_at, "revoked_at": self.revoked_at}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _mtime(path: Path) -> str:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).isoformat(timespec="seconds")


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


class TrustStore:
    """Publisher public keys under ``root`` (normally ``<home>/trust``; see :meth:`in_home`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def in_home(cls, home: Path) -> TrustStore:
        return cls(home / "trust")

    def _dir(self, publisher: str) -> Path:
        return self.root / validate_publisher(publisher)

    def _load(self, publisher: str, kid: str) -> TrustedKey | None:
        """The key if its file exists and really is the key named ``kid``; a corrupt file counts as absent."""
        folder = self.root / publisher
        pub = folder / f"{kid}.pub"
        try:
            text = pub.read_text()
            raw = parse_public_key(text)
        except (OSError, Invalid):
            return None
        if key_id(raw) != kid:
            return None
        marker = folder / f"{kid}.revoked"
        revoked_at = None
        if marker.exists():
            revoked_at = marker.read_text().strip() or _mtime(marker)
        return TrustedKey(publisher, kid, format_public_key(raw), _mtime(pub), revoked_at)

    def trust(self, publisher: str, public_key_text: str) -> TrustedKey:
        """Accept signatures by ``publisher`` made with this key (idempotent). A revoked key is a Conflict."""
        folder = self._dir(publisher)
        raw = parse_public_key(public_key_text)
        kid = key_id(raw)
        if (folder / f"{kid}.revoked").exists():
            raise Conflict(f"key {kid} of publisher {publisher!r} was revoked and cannot be trusted again",
                           hint="ask the publisher for a new key (oshal connector keygen) and trust that one")
        existing = self._load(publisher, kid)
        if existing is not None:
            return existing
        _private_dir(self.root)
        _private_dir(folder)
        write_private(folder / f"{kid}.pub", format_public_key(raw) + "\n")
        loaded = self._load(publisher, kid)
        assert loaded is not None
        return loaded

    def revoke(self, publisher: str, kid: str) -> TrustedKey:
        """Void every signature made with this key. The key stays listed, as revoked (idempotent)."""
        folder = self._dir(publisher)
        validate_key_id(kid)
        key = self._load(publisher, kid)
        if key is None:
            raise NotFound(f"publisher {publisher!r} has no key {kid} in the trust store",
                           hint="list the keys with `oshal connector trust --list`")
        if key.revoked:
            return key
        write_private(folder / f"{kid}.revoked", _now() + "\n")
        revoked = self._load(publisher, kid)
        assert revoked is not None
        return revoked

    def keys(self, publisher: str) -> list[TrustedKey]:
        """Every key of ``publisher`` (trusted and revoked), by key id; [] for a publisher never trusted."""
        folder = self._dir(publisher)
        if not folder.is_dir():
            return []
        found = (self._load(publisher, p.stem) for p in sorted(folder.glob("*.pub"))
                 if _KEY_ID.fullmatch(p.stem))
        return [k for k in found if k is not None]

    def publishers(self) -> list[str]:
        """Publishers with at least one key in the store (trusted or revoked), sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and is_valid_publisher(p.name) and self.keys(p.name))

    def key_status(self, publisher: str, kid: str) -> KeyStatus:
        """trusted, revoked, or unknown (also for names that could never be in the store)."""
        if not is_valid_publisher(publisher) or _KEY_ID.fullmatch(kid) is None:
            return "unknown"
        key = self._load(publisher, kid)
        return "unknown" if key is None else key.status

    def is_trusted(self, publisher: str, kid: str) -> bool:
        return self.key_status(publisher, kid) == "trusted"

    def has_active_keys(self, publisher: str) -> bool:
        """Whether ``publisher`` is trusted at all: at least one of their keys is not revoked."""
        return is_valid_publisher(publisher) and any(not k.revoked for k in self.keys(publisher))

    def public_key(self, publisher: str, kid: str) -> bytes | None:
        """The raw public key if it is trusted (not revoked), else None."""
        if not is_valid_publisher(publisher) or _KEY_ID.fullmatch(kid) is None:
            return None
        key = self._load(publisher, kid)
        return None if key is None or key.revoked else parse_public_key(key.public_key)
