"""Ed25519 signatures over connector manifests.

What gets signed is exactly :meth:`ConnectorManifest.canonical_bytes`: any change to an operation, a description,
a schema, an auth scope, an ``enabled`` flag or the base URL changes those bytes, so an approved-and-signed
manifest that was edited afterwards no longer verifies. Reformatting the file (key order, whitespace, JSON vs
YAML) does not change them.

Key files (their forms: :mod:`oshal.connectors.publisher_keys`): the private key ``NAME.key``, mode 0600, and
the public key ``NAME.pub``, safe to share.

Verification never raises for a bad signature: :func:`verify_manifest` returns a :class:`Verification` saying why.
Callers that must fail closed use :func:`require_valid`, which raises :class:`~oshal.errors.Forbidden`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from oshal.connectors.manifest import ConnectorManifest
from oshal.connectors.publisher_keys import (
    ALGORITHM,
    generate_keypair,
    key_id,
    load_private_key,
    private_key_pem,
    public_key_text,
    public_raw_of,
)
from oshal.connectors.trust import TrustStore, validate_publisher
from oshal.errors import Conflict, Forbidden, Invalid
from oshal.secretfiles import write_private

Reason = Literal["untrusted_publisher", "unknown_key", "publisher_mismatch", "digest_mismatch", "bad_signature",
                 "revoked_key"]
REASONS: tuple[Reason, ...] = ("untrusted_publisher", "unknown_key", "publisher_mismatch", "digest_mismatch",
                               "bad_signature", "revoked_key")
DEFAULT_IMPORT_PUBLISHER = "imported"  # what an import without --publisher records
_SIGNATURE_FIELDS = ("publisher", "key_id", "algorithm", "digest", "value", "signed_at")


# --- key files ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyFiles:
    """Where :func:`write_keypair` put a new key pair, and its id."""

    publisher: str
    key_id: str
    private_path: Path
    public_path: Path
    public_key: str

    def to_dict(self) -> dict[str, str]:
        return {"publisher": self.publisher, "key_id": self.key_id, "private_key": str(self.private_path),
                "public_key": str(self.public_path), "public_key_text": self.public_key}


def write_keypair(directory: Path, publisher: str, *, force: bool = False) -> KeyFiles:
    """Generate a key pair into ``directory/PUBLISHER.key`` (0600) and ``directory/PUBLISHER.pub``.

    Refuses (Conflict) to replace an existing key file unless ``force``: losing a private key means re-signing
    everything it signed and re-trusting its successor everywhere.
    """
    validate_publisher(publisher)
    private_path, public_path = directory / f"{publisher}.key", directory / f"{publisher}.pub"
    existing = [p for p in (private_path, public_path) if p.exists()]
    if existing and not force:
        raise Conflict(f"{existing[0]} already exists; refusing to overwrite a key",
                       hint="pass --force to replace it, or --out another folder")
    if not directory.exists():
        directory.mkdir(parents=True, mode=0o700)
        os.chmod(directory, 0o700)
    private_raw, public_raw = generate_keypair()
    write_private(private_path, private_key_pem(private_raw).decode("ascii"))
    os.chmod(private_path, 0o600)
    text = public_key_text(public_raw)
    _write_atomic(public_path, text + "\n", 0o644)
    return KeyFiles(publisher, key_id(public_raw), private_path, public_path, text)


def _write_atomic(path: Path, value: str, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


# --- signatures ---------------------------------------------------------------------------------------------


class MalformedSignature(Invalid, ValueError):
    """A signature document that is not one. Also a ValueError, for callers parsing stored signatures."""


@dataclass(frozen=True)
class Signature:
    """A detached signature over a manifest's canonical bytes (``MANIFEST.sig.json``).

    ``digest`` is the sha256 of the canonical bytes at signing time, so a verifier can say "the manifest changed"
    rather than just "bad signature". ``signed_at`` is informational: it is not covered by the signature.
    """

    publisher: str
    key_id: str
    algorithm: str
    digest: str
    value: str
    signed_at: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> Signature:
        hint = "a signature file is the JSON that `oshal connector sign` writes"
        if not isinstance(data, dict):
            raise MalformedSignature("a signature must be a JSON object", hint=hint)
        missing = [f for f in _SIGNATURE_FIELDS if f not in data]
        if missing:
            raise MalformedSignature(f"the signature lacks {', '.join(missing)}", hint=hint)
        unknown = sorted(set(data) - set(_SIGNATURE_FIELDS))
        if unknown:
            raise MalformedSignature(f"the signature has unknown fields: {', '.join(map(str, unknown))}", hint=hint)
        wrong = [f for f in _SIGNATURE_FIELDS if not isinstance(data[f], str)]
        if wrong:
            raise MalformedSignature(f"the signature's {', '.join(wrong)} must be strings", hint=hint)
        try:
            dt.datetime.fromisoformat(data["signed_at"])
        except ValueError as e:
            raise MalformedSignature(f"the signature's signed_at {data['signed_at']!r} is not an ISO 8601 time",
                          hint=hint) from e
        return cls(**{f: data[f] for f in _SIGNATURE_FIELDS})

    @classmethod
    def from_json(cls, text: str) -> Signature:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise MalformedSignature(f"the signature is not JSON: {e}",
                          hint="a signature file is the JSON that `oshal connector sign` writes") from e
        return cls.from_dict(data)


def sign_manifest(manifest: ConnectorManifest, private_key_pem: bytes, publisher: str) -> Signature:
    """Sign ``manifest``'s canonical bytes as ``publisher``, who must be the manifest's own publisher."""
    if publisher != manifest.publisher:
        raise Invalid(f"cannot sign as {publisher!r}: manifest {manifest.id!r} names publisher "
                      f"{manifest.publisher!r}",
                      hint="sign with the key of the manifest's publisher, or fix the manifest's publisher")
    validate_publisher(publisher)  # a name no trust store can hold would make a signature nobody can verify
    private = load_private_key(private_key_pem)
    body = manifest.canonical_bytes()
    return Signature(
        publisher=publisher,
        key_id=key_id(public_raw_of(private)),
        algorithm=ALGORITHM,
        digest=hashlib.sha256(body).hexdigest(),
        value=base64.b64encode(private.sign(body)).decode("ascii"),
        signed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


# --- verification -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """The verdict on one manifest and one signature: ``ok``, or the ``reason`` it is not (with a hint)."""

    ok: bool
    reason: Reason | None
    message: str
    hint: str | None
    manifest_id: str
    publisher: str
    key_id: str
    digest: str
    signed_digest: str


def verify_manifest(manifest: ConnectorManifest, signature: Signature, trust: TrustStore) -> Verification:
    """Check ``signature`` over ``manifest`` against ``trust``; never raises for a bad signature.

    Checks, in order: the signer is the manifest's publisher; the key is not revoked; the publisher is trusted;
    this key of theirs is trusted; the manifest's digest is the one signed; the signature value verifies.
    """
    digest = manifest.digest()
    pub, kid = signature.publisher, signature.key_id

    def verdict(reason: Reason | None, message: str, hint: str | None = None) -> Verification:
        return Verification(ok=reason is None, reason=reason, message=message, hint=hint, manifest_id=manifest.id,
                            publisher=pub, key_id=kid, digest=digest, signed_digest=signature.digest)

    if pub != manifest.publisher:
        return verdict("publisher_mismatch",
                       f"the signature is by {pub!r} but manifest {manifest.id!r} names publisher "
                       f"{manifest.publisher!r}",
                       "have the manifest's publisher sign it, or fix the manifest's publisher and re-sign")
    status = trust.key_status(pub, kid)
    if status == "revoked":
        return verdict("revoked_key", f"key {kid} of publisher {pub!r} was revoked; its signatures are void",
                       "ask the publisher to re-sign with a current key, then trust that key")
    if not trust.has_active_keys(pub):
        hint = f"if you trust them, add their public key: oshal connector trust {pub} PUBFILE"
        if pub == DEFAULT_IMPORT_PUBLISHER:
            hint = (f"{pub!r} is the publisher of connectors imported without --publisher: re-import with "
                    "--publisher NAME --replace (NAME: whose key signs it), then sign again")
        return verdict("untrusted_publisher", f"publisher {pub!r} is not in the trust store", hint)
    if status != "trusted":
        return verdict("unknown_key", f"publisher {pub!r} is trusted, but not their key {kid}",
                       f"if they rotated keys, trust the new one: oshal connector trust {pub} PUBFILE")
    if signature.digest != digest:
        return verdict("digest_mismatch",
                       f"the manifest changed after it was signed: manifest {manifest.id!r} has digest "
                       f"{digest[:16]}…, the signature is over {signature.digest[:16]}…",
                       "review the change, then re-approve and re-sign: oshal connector sign MANIFEST --key KEY")
    if signature.algorithm != ALGORITHM:
        return verdict("bad_signature", f"the signature's algorithm {signature.algorithm!r} is not {ALGORITHM!r}",
                       "get a fresh signature from the publisher")
    public_raw = trust.public_key(pub, kid)
    if public_raw is None:  # the key file vanished between the two reads
        return verdict("unknown_key", f"publisher {pub!r} is trusted, but not their key {kid}",
                       f"if they rotated keys, trust the new one: oshal connector trust {pub} PUBFILE")
    try:
        value = base64.b64decode(signature.value, validate=True)
        Ed25519PublicKey.from_public_bytes(public_raw).verify(value, manifest.canonical_bytes())
    except (InvalidSignature, binascii.Error, ValueError):
        return verdict("bad_signature",
                       f"the signature value does not verify with key {kid} of {pub!r}: it is corrupt or forged",
                       "do not use this manifest; get a fresh signature from the publisher")
    return verdict(None, f"manifest {manifest.id!r} is signed by {pub!r} with trusted key {kid}")


def require_valid(manifest: ConnectorManifest, signature: Signature, trust: TrustStore) -> Verification:
    """:func:`verify_manifest`, failing closed: Forbidden (with the reason) unless the signature is good."""
    result = verify_manifest(manifest, signature, trust)
    if not result.ok:
        raise Forbidden(f"{result.reason}: {result.message}", hint=result.hint)
    return result
