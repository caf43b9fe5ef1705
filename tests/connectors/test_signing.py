"""Signed connector manifests: keys, signatures, the trust store, and the ``oshal connector`` CLI as real processes."""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import hashlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from oshal.cli.connectors import load_manifest
from oshal.connectors.manifest import ConnectorManifest
from oshal.connectors.publisher_keys import (
    generate_keypair,
    key_id,
    load_private_key,
    parse_public_key,
    private_key_pem,
    public_key_text,
    public_raw_of,
)
from oshal.connectors.signing import (
    Signature,
    require_valid,
    sign_manifest,
    verify_manifest,
    write_keypair,
)
from oshal.connectors.trust import TrustStore, validate_publisher
from oshal.errors import Conflict, Forbidden, Invalid, NotFound

SRC = str(Path(__file__).resolve().parents[2] / "src")


def manifest_data() -> dict[str, Any]:
    """A small shop connector: two operations, an OAuth2 scheme with scopes."""
    return {
        "id": "acme-shop",
        "version": "1.2.0",
        "publisher": "acme",
        "category": "commerce",
        "title": "Acme Shop",
        "description": "Orders and products of the Acme shop.",
        "base_url": "https://api.acme.example/v1",
        "auth": [{"kind": "oauth2_client_credentials", "token_url": "https://auth.acme.example/token",
                  "scopes": ["orders.read", "orders.write"]}],
        "operations": [
            {"name": "listOrders", "method": "GET", "path": "/orders", "summary": "List orders",
             "description": "Newest first.",
             "parameters": [{"name": "limit", "location": "query", "required": False,
                             "schema": {"type": "integer", "maximum": 100}}],
             "enabled": True},
            {"name": "createOrder", "method": "POST", "path": "/orders", "summary": "Place an order",
             "body_schema": {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]},
             "body_required": True, "effects": ["order"], "enabled": False},
        ],
    }


def build(data: dict[str, Any] | None = None) -> ConnectorManifest:
    return ConnectorManifest.model_validate(data or manifest_data())


class Publisher:
    """A key pair held in memory, as a publisher would hold it."""

    def __init__(self, name: str = "acme") -> None:
        private_raw, public_raw = generate_keypair()
        self.name = name
        self.pem = private_key_pem(private_raw)
        self.public_raw = public_raw
        self.public_text = public_key_text(public_raw)
        self.key_id = key_id(public_raw)


@pytest.fixture
def store(tmp_path: Path) -> TrustStore:
    return TrustStore.in_home(tmp_path / "home")


# --- keys ---------------------------------------------------------------------------------------------------


def test_keypair_is_raw_ed25519_and_key_id_is_a_sha256_prefix() -> None:
    private_raw, public_raw = generate_keypair()
    assert len(private_raw) == 32
    assert len(public_raw) == 32
    assert private_raw != generate_keypair()[0]
    kid = key_id(public_raw)
    assert kid == hashlib.sha256(public_raw).hexdigest()[:16]
    assert len(kid) == 16
    text = public_key_text(public_raw)
    assert text == "ed25519:" + base64.b64encode(public_raw).decode()
    assert "\n" not in text
    assert parse_public_key(text + "\n") == public_raw
    pem = private_key_pem(private_raw)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS8
    assert public_raw_of(load_private_key(pem)) == public_raw


@pytest.mark.parametrize("text, fragment", [
    ("rsa:AAAA", "does not start with 'ed25519:'"),
    ("ed25519:not base64!!", "not valid base64"),
    ("ed25519:" + base64.b64encode(b"short").decode(), "is 5 bytes"),
])
def test_malformed_public_keys_are_invalid(text: str, fragment: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_public_key(text)
    assert fragment in caught.value.message
    assert caught.value.hint is not None


def test_a_non_key_private_file_is_invalid() -> None:
    with pytest.raises(Invalid) as caught:
        load_private_key(b"ed25519:AAAA\n")
    assert caught.value.message == "the private key is not a PEM PKCS8 key"


def test_write_keypair_modes_and_refusal_to_overwrite(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    files = write_keypair(folder, "acme")
    assert files.private_path == folder / "acme.key"
    assert files.public_path == folder / "acme.pub"
    assert stat.S_IMODE(files.private_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.public_path.stat().st_mode) == 0o644
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    public_line = files.public_path.read_text()
    assert public_line == files.public_key + "\n"
    assert public_line.count("\n") == 1
    assert key_id(parse_public_key(public_line)) == files.key_id
    private = load_private_key(files.private_path.read_bytes())
    assert key_id(public_raw_of(private)) == files.key_id
    before = files.private_path.read_bytes()
    with pytest.raises(Conflict) as caught:
        write_keypair(folder, "acme")
    assert "already exists" in caught.value.message
    assert files.private_path.read_bytes() == before
    replaced = write_keypair(folder, "acme", force=True)
    assert replaced.key_id != files.key_id
    assert stat.S_IMODE(replaced.private_path.stat().st_mode) == 0o600
    assert sorted(p.name for p in folder.iterdir()) == ["acme.key", "acme.pub"]


# --- sign and verify ----------------------------------------------------------------------------------------


def test_sign_then_verify_round_trip(store: TrustStore) -> None:
    acme = Publisher()
    manifest = build()
    store.trust("acme", acme.public_text)
    sig = sign_manifest(manifest, acme.pem, "acme")
    assert sig.publisher == "acme"
    assert sig.key_id == acme.key_id
    assert sig.algorithm == "ed25519"
    assert sig.digest == manifest.digest() == hashlib.sha256(manifest.canonical_bytes()).hexdigest()
    assert len(base64.b64decode(sig.value)) == 64
    signed_at = dt.datetime.fromisoformat(sig.signed_at)
    assert signed_at.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.UTC) - signed_at).total_seconds()) < 60
    assert Signature.from_json(sig.to_json()) == sig
    assert json.loads(sig.to_json()) == sig.to_dict()

    result = verify_manifest(manifest, sig, store)
    assert result.ok is True
    assert result.reason is None
    assert result.hint is None
    assert result.digest == result.signed_digest == manifest.digest()
    assert result.key_id == acme.key_id
    assert result.message == f"manifest 'acme-shop' is signed by 'acme' with trusted key {acme.key_id}"
    assert require_valid(manifest, sig, store) == result


def test_formatting_does_not_matter_only_content(tmp_path: Path, store: TrustStore) -> None:
    acme = Publisher()
    store.trust("acme", acme.public_text)
    as_yaml, as_json = tmp_path / "shop.yaml", tmp_path / "shop.json"
    as_yaml.write_text(yaml.safe_dump(manifest_data(), sort_keys=False))
    reordered = dict(reversed(list(manifest_data().items())))
    as_json.write_text(json.dumps(reordered, indent=4))
    sig = sign_manifest(load_manifest(as_yaml), acme.pem, "acme")
    assert verify_manifest(load_manifest(as_json), sig, store).ok is True


def _add_operation(d: dict[str, Any]) -> None:
    d["operations"].append({"name": "refundOrder", "method": "POST", "path": "/orders/{id}/refund",
                            "effects": ["refund"]})


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(d: dict[str, Any]) -> None:
        target: Any = d
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
    return change


TAMPERING: dict[str, Callable[[dict[str, Any]], None]] = {
    "operation added": _add_operation,
    "operation removed": lambda d: d["operations"].pop(1),
    "manifest description changed": _set(("description",), "Orders, products and refunds."),
    "operation description changed": _set(("operations", 0, "description"), "Oldest first."),
    "operation summary changed": _set(("operations", 1, "summary"), "Place an order (free)"),
    "parameter schema changed": _set(("operations", 0, "parameters", 0, "schema", "maximum"), 10_000),
    "body schema changed": _set(("operations", 1, "body_schema", "required"), []),
    "auth scope added": _set(("auth", 0, "scopes"), ["orders.read", "orders.write", "payments.write"]),
    "auth scope removed": _set(("auth", 0, "scopes"), ["orders.read"]),
    "enabled flipped on": _set(("operations", 1, "enabled"), True),
    "enabled flipped off": _set(("operations", 0, "enabled"), False),
    "base_url changed": _set(("base_url",), "https://api.evil.example/v1"),
    "token_url changed": _set(("auth", 0, "token_url"), "https://auth.evil.example/token"),
    "private network allowed": _set(("allow_private_network",), True),
}


@pytest.mark.parametrize("change", list(TAMPERING), ids=list(TAMPERING))
def test_every_kind_of_change_after_signing_is_a_digest_mismatch(store: TrustStore, change: str) -> None:
    acme = Publisher()
    store.trust("acme", acme.public_text)
    original = build()
    sig = sign_manifest(original, acme.pem, "acme")
    data = copy.deepcopy(manifest_data())
    TAMPERING[change](data)
    tampered = build(data)
    assert tampered.digest() != original.digest()

    result = verify_manifest(tampered, sig, store)
    assert result.ok is False
    assert result.reason == "digest_mismatch"
    assert result.message.startswith("the manifest changed after it was signed")
    assert result.digest == tampered.digest()
    assert result.signed_digest == original.digest()
    assert result.hint is not None and "re-approve and re-sign" in result.hint
    with pytest.raises(Forbidden) as caught:
        require_valid(tampered, sig, store)
    assert caught.value.message.startswith("digest_mismatch: the manifest changed after it was signed")


def test_tampering_that_also_rewrites_the_digest_is_a_bad_signature(store: TrustStore) -> None:
    acme = Publisher()
    store.trust("acme", acme.public_text)
    sig = sign_manifest(build(), acme.pem, "acme")
    data = manifest_data()
    data["operations"][1]["enabled"] = True
    tampered = build(data)
    forged = dataclasses.replace(sig, digest=tampered.digest())
    result = verify_manifest(tampered, forged, store)
    assert result.ok is False
    assert result.reason == "bad_signature"
    assert "corrupt or forged" in result.message


def test_another_key_of_a_trusted_publisher_is_unknown(store: TrustStore) -> None:
    trusted, other = Publisher(), Publisher()
    store.trust("acme", trusted.public_text)
    sig = sign_manifest(build(), other.pem, "acme")
    result = verify_manifest(build(), sig, store)
    assert result.ok is False
    assert result.reason == "unknown_key"
    assert result.key_id == other.key_id
    assert result.message == f"publisher 'acme' is trusted, but not their key {other.key_id}"
    assert result.hint == "if they rotated keys, trust the new one: oshal connector trust acme PUBFILE"


def test_a_publisher_not_in_the_store_is_untrusted(store: TrustStore) -> None:
    acme = Publisher()
    store.trust("globex", Publisher("globex").public_text)
    sig = sign_manifest(build(), acme.pem, "acme")
    result = verify_manifest(build(), sig, store)
    assert result.ok is False
    assert result.reason == "untrusted_publisher"
    assert result.message == "publisher 'acme' is not in the trust store"
    assert result.hint == "if you trust them, add their public key: oshal connector trust acme PUBFILE"
    with pytest.raises(Forbidden) as caught:
        require_valid(build(), sig, store)
    assert caught.value.message == "untrusted_publisher: publisher 'acme' is not in the trust store"


def test_a_revoked_key_stays_listed_and_its_signatures_fail(store: TrustStore) -> None:
    acme, successor = Publisher(), Publisher()
    store.trust("acme", acme.public_text)
    store.trust("acme", successor.public_text)
    sig = sign_manifest(build(), acme.pem, "acme")
    assert verify_manifest(build(), sig, store).ok is True

    revoked = store.revoke("acme", acme.key_id)
    assert revoked.revoked is True
    assert revoked.status == "revoked"
    assert dt.datetime.fromisoformat(revoked.revoked_at or "").utcoffset() == dt.timedelta(0)
    assert store.revoke("acme", acme.key_id) == revoked  # idempotent
    assert store.is_trusted("acme", acme.key_id) is False
    assert store.is_trusted("acme", successor.key_id) is True
    assert store.key_status("acme", acme.key_id) == "revoked"
    assert store.public_key("acme", acme.key_id) is None
    listed = {k.key_id: k.status for k in store.keys("acme")}
    assert listed == {acme.key_id: "revoked", successor.key_id: "trusted"}
    assert (store.root / "acme" / f"{acme.key_id}.pub").is_file()
    assert (store.root / "acme" / f"{acme.key_id}.revoked").is_file()

    result = verify_manifest(build(), sig, store)
    assert result.ok is False
    assert result.reason == "revoked_key"
    assert result.message == f"key {acme.key_id} of publisher 'acme' was revoked; its signatures are void"
    assert verify_manifest(build(), sign_manifest(build(), successor.pem, "acme"), store).ok is True

    with pytest.raises(Conflict) as caught:
        store.trust("acme", acme.public_text)
    assert "cannot be trusted again" in caught.value.message
    store.revoke("acme", successor.key_id)
    assert store.has_active_keys("acme") is False
    assert verify_manifest(build(), sig, store).reason == "revoked_key"  # not merely "untrusted"


def test_revoking_a_key_not_in_the_store_is_not_found(store: TrustStore) -> None:
    store.trust("acme", Publisher().public_text)
    with pytest.raises(NotFound) as caught:
        store.revoke("acme", "0123456789abcdef")
    assert caught.value.message == "publisher 'acme' has no key 0123456789abcdef in the trust store"
    with pytest.raises(Invalid):
        store.revoke("acme", "../../etc/passwd")


@pytest.mark.parametrize("value", [
    base64.b64encode(b"\x00" * 64).decode(),   # well-formed but wrong
    "not//base64==!",                           # not even base64
    "",
])
def test_a_forged_signature_value_is_a_bad_signature(store: TrustStore, value: str) -> None:
    acme = Publisher()
    store.trust("acme", acme.public_text)
    manifest = build()
    forged = dataclasses.replace(sign_manifest(manifest, acme.pem, "acme"), value=value)
    result = verify_manifest(manifest, forged, store)
    assert result.ok is False
    assert result.reason == "bad_signature"
    assert result.message == f"the signature value does not verify with key {acme.key_id} of 'acme': " \
                             "it is corrupt or forged"
    with pytest.raises(Forbidden) as caught:
        require_valid(manifest, forged, store)
    assert caught.value.message.startswith("bad_signature: ")


def test_a_signature_over_another_manifest_is_a_bad_signature(store: TrustStore) -> None:
    acme = Publisher()
    store.trust("acme", acme.public_text)
    data = manifest_data()
    data["id"] = "acme-other"
    other = sign_manifest(build(data), acme.pem, "acme")
    manifest = build()
    replayed = dataclasses.replace(other, digest=manifest.digest())
    assert verify_manifest(manifest, replayed, store).reason == "bad_signature"


def test_publisher_mismatch(store: TrustStore) -> None:
    acme, globex = Publisher(), Publisher("globex")
    store.trust("acme", acme.public_text)
    store.trust("globex", globex.public_text)
    with pytest.raises(Invalid) as caught:
        sign_manifest(build(), globex.pem, "globex")
    assert caught.value.message == "cannot sign as 'globex': manifest 'acme-shop' names publisher 'acme'"

    data = manifest_data()
    data["publisher"] = "globex"
    by_globex = sign_manifest(build(data), globex.pem, "globex")
    result = verify_manifest(build(), by_globex, store)  # globex's signature presented for acme's manifest
    assert result.ok is False
    assert result.reason == "publisher_mismatch"
    assert result.message == "the signature is by 'globex' but manifest 'acme-shop' names publisher 'acme'"
    relabelled = dataclasses.replace(by_globex, publisher="acme")
    assert verify_manifest(build(), relabelled, store).reason == "unknown_key"


def test_an_unsupported_algorithm_is_a_bad_signature(store: TrustStore) -> None:
    acme = Publisher()
    store.trust("acme", acme.public_text)
    sig = dataclasses.replace(sign_manifest(build(), acme.pem, "acme"), algorithm="rsa")
    result = verify_manifest(build(), sig, store)
    assert result.reason == "bad_signature"
    assert result.message == "the signature's algorithm 'rsa' is not 'ed25519'"


@pytest.mark.parametrize("text, fragment", [
    ("[]", "must be a JSON object"),
    ('{"publisher": "acme"}', "lacks key_id, algorithm, digest, value, signed_at"),
    ("{", "is not JSON"),
])
def test_malformed_signature_files_are_invalid(text: str, fragment: str) -> None:
    with pytest.raises(Invalid) as caught:
        Signature.from_json(text)
    assert fragment in caught.value.message
    assert isinstance(caught.value, ValueError)  # callers parsing stored rows may catch ValueError


# --- trust store --------------------------------------------------------------------------------------------


def test_trust_store_layout_modes_and_listing(store: TrustStore) -> None:
    acme, globex = Publisher(), Publisher("globex")
    assert store.publishers() == []
    assert store.keys("acme") == []
    key = store.trust("acme", acme.public_text + "\n")
    assert key.key_id == acme.key_id
    assert key.public_key == acme.public_text
    assert key.revoked_at is None
    assert store.trust("acme", acme.public_text) == key  # idempotent
    store.trust("globex", globex.public_text)
    assert store.publishers() == ["acme", "globex"]
    assert [k.key_id for k in store.keys("acme")] == [acme.key_id]
    assert store.is_trusted("acme", acme.key_id) is True
    assert store.is_trusted("acme", globex.key_id) is False
    assert store.public_key("acme", acme.key_id) == acme.public_raw
    pub = store.root / "acme" / f"{acme.key_id}.pub"
    assert pub.read_text() == acme.public_text + "\n"
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    assert stat.S_IMODE((store.root / "acme").stat().st_mode) == 0o700


def test_a_trust_file_whose_content_is_not_its_key_id_is_ignored(store: TrustStore) -> None:
    acme, intruder = Publisher(), Publisher()
    store.trust("acme", acme.public_text)
    (store.root / "acme" / f"{acme.key_id}.pub").write_text(intruder.public_text + "\n")
    assert store.is_trusted("acme", acme.key_id) is False
    assert store.keys("acme") == []
    forged = sign_manifest(build(), intruder.pem, "acme")
    result = verify_manifest(build(), dataclasses.replace(forged, key_id=acme.key_id), store)
    assert (result.ok, result.reason) == (False, "untrusted_publisher")


BAD_NAMES = ["../evil", "..", ".", "Acme", "", ".hidden", "-acme", "a/b", "acme\n", "a b", "a" * 101, "acme/../x",
             "ácme"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n) for n in BAD_NAMES])
def test_invalid_publisher_names_are_refused(store: TrustStore, tmp_path: Path, name: str) -> None:
    public = Publisher().public_text
    with pytest.raises(Invalid) as caught:
        store.trust(name, public)
    assert caught.value.message == f"publisher name {name!r} is not allowed"
    with pytest.raises(Invalid):
        store.keys(name)
    with pytest.raises(Invalid):
        store.revoke(name, "0123456789abcdef")
    with pytest.raises(Invalid):
        write_keypair(tmp_path / "keys", name)
    assert store.is_trusted(name, "0123456789abcdef") is False
    assert store.has_active_keys(name) is False
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written anywhere


@pytest.mark.parametrize("name", ["a", "acme", "acme-labs.eu_1", "0day", "z" * 100])
def test_valid_publisher_names_are_accepted(store: TrustStore, name: str) -> None:
    assert validate_publisher(name) == name
    key = store.trust(name, Publisher().public_text)
    assert store.publishers() == [name]
    assert (store.root / name / f"{key.key_id}.pub").is_file()


def test_a_signature_naming_an_impossible_publisher_is_rejected_not_raised(store: TrustStore) -> None:
    acme = Publisher()
    store.trust("acme", acme.public_text)
    data = manifest_data()
    data["publisher"] = "../acme"
    manifest = build(data)
    sig = dataclasses.replace(sign_manifest(build(), acme.pem, "acme"), publisher="../acme")
    result = verify_manifest(manifest, sig, store)
    assert result.ok is False
    assert result.reason == "untrusted_publisher"
    with pytest.raises(Invalid) as caught:
        sign_manifest(manifest, acme.pem, "../acme")
    assert caught.value.message == "publisher name '../acme' is not allowed"


# --- CLI, as real processes ---------------------------------------------------------------------------------


def oshal(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    env.update({"OSHAL_HOME": str(home), "COLUMNS": "200",
                "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))})
    return subprocess.run([sys.executable, "-m", "oshal.cli.main", "connector", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def said(proc: subprocess.CompletedProcess[str]) -> str:
    """stderr with Rich's line wrapping undone."""
    return " ".join(proc.stderr.split())


def test_cli_keygen_trust_sign_verify_then_edit_fails(tmp_path: Path) -> None:
    home = tmp_path / "home"
    manifest_file = tmp_path / "shop.json"
    manifest_file.write_text(json.dumps(manifest_data(), indent=2))

    made = oshal(home, "keygen", "--publisher", "acme", "--json")
    assert made.returncode == 0, made.stderr
    keys = json.loads(made.stdout)
    assert keys["publisher"] == "acme"
    assert keys["private_key"] == str(home / "keys" / "acme.key")
    assert keys["public_key"] == str(home / "keys" / "acme.pub")
    assert stat.S_IMODE((home / "keys" / "acme.key").stat().st_mode) == 0o600
    assert key_id(parse_public_key((home / "keys" / "acme.pub").read_text())) == keys["key_id"]

    again = oshal(home, "keygen", "--publisher", "acme")
    assert again.returncode == 6
    assert "already exists; refusing to overwrite a key" in said(again)
    assert "--force" in said(again)

    untrusted = oshal(home, "sign", str(manifest_file), "--key", keys["private_key"])
    assert untrusted.returncode == 0, untrusted.stderr
    assert f"key id     {keys['key_id']}" in untrusted.stdout
    assert "is not in this trust store" in said(untrusted)
    refused = oshal(home, "verify", str(manifest_file))
    assert refused.returncode == 5
    assert "untrusted_publisher: publisher 'acme' is not in the trust store" in said(refused)
    assert "oshal connector trust acme PUBFILE" in said(refused)

    trusted = oshal(home, "trust", "acme", keys["public_key"], "--json")
    assert trusted.returncode == 0, trusted.stderr
    assert json.loads(trusted.stdout) == {
        "publisher": "acme", "key_id": keys["key_id"], "status": "trusted", "public_key": keys["public_key_text"],
        "trusted_at": json.loads(trusted.stdout)["trusted_at"], "revoked_at": None}

    signed = oshal(home, "sign", str(manifest_file), "--key", keys["private_key"], "--json")
    assert signed.returncode == 0, signed.stderr
    sig_doc = json.loads(signed.stdout)
    sig_file = tmp_path / "shop.json.sig.json"
    assert sig_doc["signature_file"] == str(sig_file)
    assert sig_doc["digest"] == build().digest()
    assert sig_doc["key_id"] == keys["key_id"]
    assert sig_doc["trusted_here"] is True
    assert Signature.from_json(sig_file.read_text()).digest == build().digest()

    ok = oshal(home, "verify", str(manifest_file))
    assert ok.returncode == 0, ok.stderr
    assert f"ok manifest 'acme-shop' is signed by 'acme' with trusted key {keys['key_id']}" in ok.stdout
    ok_json = oshal(home, "verify", str(manifest_file), "--json")
    assert ok_json.returncode == 0
    verdict = json.loads(ok_json.stdout)
    assert (verdict["ok"], verdict["reason"], verdict["digest"]) == (True, None, build().digest())

    edited = manifest_data()
    edited["auth"][0]["scopes"].append("payments.write")
    manifest_file.write_text(json.dumps(edited, indent=2))
    changed = oshal(home, "verify", str(manifest_file))
    assert changed.returncode == 5
    assert "changed after it was signed" in changed.stderr
    assert "digest_mismatch: the manifest changed after it was signed" in said(changed)
    assert "digest_mismatch" in said(changed)
    assert "re-approve and re-sign" in said(changed)
    assert changed.stdout == ""
    changed_json = oshal(home, "verify", str(manifest_file), "--json")
    assert changed_json.returncode == 5
    assert json.loads(changed_json.stdout)["reason"] == "digest_mismatch"


def test_cli_trust_list_revoke_and_errors(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out_dir = tmp_path / "publisher-keys"
    made = oshal(home, "keygen", "--publisher", "acme", "--out", str(out_dir), "--json")
    assert made.returncode == 0, made.stderr
    keys = json.loads(made.stdout)
    assert keys["private_key"] == str(out_dir / "acme.key")
    assert oshal(home, "trust", "acme", str(out_dir / "acme.pub")).returncode == 0

    manifest_file = tmp_path / "shop.yaml"
    manifest_file.write_text(yaml.safe_dump(manifest_data()))
    sig_out = tmp_path / "elsewhere.sig.json"
    signed = oshal(home, "sign", str(manifest_file), "--key", keys["private_key"], "--publisher", "acme",
                   "--out", str(sig_out))
    assert signed.returncode == 0, signed.stderr
    assert sig_out.is_file()
    assert not (tmp_path / "shop.yaml.sig.json").exists()
    missing = oshal(home, "verify", str(manifest_file))
    assert missing.returncode == 4
    assert "no signature" in said(missing)
    assert oshal(home, "verify", str(manifest_file), "--signature", str(sig_out)).returncode == 0

    listed = oshal(home, "trust", "--list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(k["publisher"], k["key_id"], k["status"]) for k in json.loads(listed.stdout)] == [
        ("acme", keys["key_id"], "trusted")]

    revoked = oshal(home, "trust", "--revoke", "acme", keys["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    assert f"key {keys['key_id']} of acme revoked" in revoked.stdout
    after = json.loads(oshal(home, "trust", "--list", "--json").stdout)
    assert [(k["key_id"], k["status"]) for k in after] == [(keys["key_id"], "revoked")]
    void = oshal(home, "verify", str(manifest_file), "--signature", str(sig_out))
    assert void.returncode == 5
    assert f"revoked_key: key {keys['key_id']} of publisher 'acme' was revoked" in said(void)

    traversal = oshal(home, "trust", "../evil", str(out_dir / "acme.pub"))
    assert traversal.returncode == 3
    assert "publisher name '../evil' is not allowed" in said(traversal)
    assert sorted(p.name for p in (home / "trust").iterdir()) == ["acme"]

    wrong_publisher = oshal(home, "sign", str(manifest_file), "--key", keys["private_key"], "--publisher", "globex")
    assert wrong_publisher.returncode == 3
    assert "cannot sign as 'globex'" in said(wrong_publisher)

    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"id": "X", "publisher": "acme", "operations": [{"name": "1bad"}]}))
    invalid = oshal(home, "sign", str(broken), "--key", keys["private_key"])
    assert invalid.returncode == 3
    assert "is not a valid connector manifest" in said(invalid)
    assert "id: String should match pattern" in said(invalid)
    assert "version: Field required" in said(invalid)

    usage = oshal(home, "trust", "acme")
    assert usage.returncode == 2
