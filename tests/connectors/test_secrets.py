"""Credentials at rest: envelope encryption in Postgres (real embedded server, API role, RLS) and Vault (fake KV v2).

Tenants are made through the real API with unique names; each test deletes its own credential and data-key
rows (the shared clean-up fixture does not know these tables).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import stat
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from conftest import Platform, TenantClient, make_tenant
from external.fake_vault import FakeVault
from oshal.errors import ConfigError, Forbidden, Invalid, NotFound, OshalError, TooLarge, Unavailable
from oshal.secrets import RotationReport, SecretStore, encryption, open_secret_store
from oshal.secrets.builtin import BuiltinSecretStore
from oshal.secrets.vault import VaultSecretStore
from oshal.settings import Settings
from oshal.store.db import Database

SECRET_TABLES = ("credentials", "data_keys")


def _kek() -> bytes:
    return os.urandom(32)


def _canary() -> str:
    return f"canary-{uuid.uuid4().hex}-s3cr3t"


def _text(error: OshalError) -> str:
    return f"{error} {error.hint or ''} {error.to_dict()}"


@pytest.fixture
async def db(platform: Platform) -> AsyncIterator[Database]:
    database = Database(platform.engines.api_url, min_size=1, max_size=4, name="test-secrets")
    await database.open()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def new_tenant(platform: Platform) -> Iterator[Callable[[str], UUID]]:
    made: list[TenantClient] = []

    def make(label: str) -> UUID:
        client = make_tenant(platform, f"{label}-{uuid.uuid4().hex[:10]}")
        made.append(client)
        return UUID(client.tenant_id)

    yield make
    ids = [c.tenant_id for c in made]
    with platform.superuser() as conn:
        conn.execute("DELETE FROM credentials WHERE tenant_id = ANY(%s::uuid[])", (ids,))
        conn.execute("DELETE FROM data_keys WHERE tenant_id = ANY(%s::uuid[])", (ids,))
    for client in made:
        client.http.close()


def _rows(platform: Platform, table: str, tenant: UUID) -> list[dict[str, Any]]:
    with platform.superuser() as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(f"SELECT * FROM {table} WHERE tenant_id = %s ORDER BY created_at, id::text"
                    if table == "data_keys" else
                    f"SELECT * FROM {table} WHERE tenant_id = %s ORDER BY name, user_id", (tenant,))
        return cur.fetchall()


# -- envelope ----------------------------------------------------------------------------------------
def test_envelope_round_trip_and_bindings() -> None:
    kek, dek = _kek(), encryption.new_data_key()
    wrapped = encryption.wrap(kek, dek)
    assert len(wrapped) == 1 + 12 + 32 + 16 and dek not in wrapped
    assert encryption.unwrap(kek, wrapped) == dek
    assert encryption.kek_id(kek) == hashlib.sha256(kek).hexdigest()[:16]

    aad = encryption.credential_aad("0b6e3c1a-0000-4000-8000-000000000001", "github")
    assert aad == b"0b6e3c1a-0000-4000-8000-000000000001|github"
    blob = encryption.encrypt(dek, b"the-value", aad)
    assert encryption.decrypt(dek, blob, aad) == b"the-value"
    assert encryption.encrypt(dek, b"the-value", aad) != blob  # random nonce

    other_kek = _kek()
    with pytest.raises(ConfigError) as wrong_kek:
        encryption.unwrap(other_kek, wrapped)
    assert encryption.kek_id(other_kek) in str(wrong_kek.value)
    assert kek.hex() not in _text(wrong_kek.value) and dek.hex() not in _text(wrong_kek.value)

    for bad_aad, bad_blob in ((b"other|github", blob), (aad, blob[:-1] + bytes([blob[-1] ^ 1])), (aad, b"\x01x")):
        with pytest.raises(Forbidden) as denied:
            encryption.decrypt(dek, bad_blob, bad_aad)
        assert "the-value" not in _text(denied.value)
    with pytest.raises(ConfigError, match="32 bytes"):
        encryption.wrap(b"short", dek)


# -- KEK loading -------------------------------------------------------------------------------------
def test_prod_mode_without_a_kek_refuses_and_says_how_to_make_one(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OSHAL_SECRETS_KEK", raising=False)
    settings = Settings(mode="prod", home=tmp_path)
    with pytest.raises(ConfigError) as missing:
        encryption.load_kek(settings)
    assert "OSHAL_SECRETS_KEK" in str(missing.value)
    assert missing.value.hint is not None and "base64.b64encode(os.urandom(32))" in missing.value.hint
    assert not (tmp_path / "secrets" / "kek").exists()  # fail closed: nothing generated
    with pytest.raises(ConfigError, match="OSHAL_SECRETS_KEK"):
        open_secret_store(settings, None)

    short = base64.b64encode(b"x" * 16).decode()
    garbage = "not base64 at all!!"
    for bad in (short, garbage):
        with pytest.raises(ConfigError) as invalid:
            encryption.load_kek(Settings(mode="prod", home=tmp_path, secrets_kek=bad))
        assert "OSHAL_SECRETS_KEK" in str(invalid.value) and bad not in _text(invalid.value)

    good = _kek()
    assert encryption.load_kek(Settings(mode="prod", home=tmp_path,
                                      secrets_kek=base64.b64encode(good).decode())) == good


def test_dev_mode_generates_a_private_kek_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OSHAL_SECRETS_KEK", raising=False)
    settings = Settings(mode="dev", home=tmp_path)
    first = encryption.load_kek(settings)
    path = tmp_path / "secrets" / "kek"
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert base64.b64decode(path.read_text().strip()) == first
    assert encryption.load_kek(settings) == first
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".kek")] == []  # no temp file left
    path.write_text("tampered")
    with pytest.raises(ConfigError) as broken:
        encryption.load_kek(settings)
    assert str(path) in str(broken.value)


# -- builtin backend ---------------------------------------------------------------------------------
async def test_put_get_names_delete_round_trip(platform: Platform, db: Database,
                                               new_tenant: Callable[[str], UUID]) -> None:
    tenant, user = new_tenant("sec-rt"), uuid.uuid4()
    store = open_secret_store(Settings(secrets_kek=base64.b64encode(_kek()).decode()), db)
    assert isinstance(store, BuiltinSecretStore) and isinstance(store, SecretStore)
    value, user_value = _canary(), "ünïcode ✓ " + _canary()

    await store.put(tenant, "github.token", value)
    await store.put(tenant, "stripe", "sk_live_1")
    await store.put(tenant, "github.token", user_value, user_id=user)
    assert await store.get(tenant, "github.token") == value
    assert await store.get(str(tenant).upper(), "github.token", user_id=user) == user_value  # type: ignore[arg-type]
    assert await store.names(tenant) == ["github.token", "stripe"]
    assert await store.names(tenant, user_id=user) == ["github.token"]

    await store.put(tenant, "stripe", "sk_live_2")
    assert await store.get(tenant, "stripe") == "sk_live_2"
    versions = {(r["name"], r["user_id"]): r["version"] for r in _rows(platform, "credentials", tenant)}
    assert versions == {("github.token", None): 1, ("github.token", user): 1, ("stripe", None): 2}

    assert await store.delete(tenant, "stripe") is True
    assert await store.delete(tenant, "stripe") is False
    with pytest.raises(NotFound) as missing:
        await store.get(tenant, "stripe")
    assert "'stripe'" in str(missing.value) and missing.value.hint is not None and "put" in missing.value.hint
    with pytest.raises(NotFound):
        await store.get(tenant, "github.token", user_id=uuid.uuid4())
    with pytest.raises(Invalid):
        await store.put(tenant, "../etc/passwd", "x")
    with pytest.raises(Invalid):
        await store.put(tenant, "empty", "")
    with pytest.raises(TooLarge):
        await store.put(tenant, "huge", "x" * (64 * 1024 + 1))
    with pytest.raises(NotFound, match="tenant"):
        await store.put(uuid.uuid4(), "orphan", "x")
    assert (await store.rotate_data_key(tenant)).credentials_reencrypted == 2


async def test_plaintext_and_data_keys_never_reach_the_database(platform: Platform, db: Database,
                                                                new_tenant: Callable[[str], UUID]) -> None:
    tenant, kek = new_tenant("sec-canary"), _kek()
    store = BuiltinSecretStore(db, kek)
    value = _canary()
    await store.put(tenant, "api-key", value)
    await store.put(tenant, "api-key-user", value, user_id=uuid.uuid4())

    keys = _rows(platform, "data_keys", tenant)
    creds = _rows(platform, "credentials", tenant)
    assert len(keys) == 1 and len(creds) == 2
    dek = encryption.unwrap(kek, keys[0]["wrapped"])
    with platform.superuser() as conn:
        dump = b"".join(
            row[0].encode() for table in SECRET_TABLES
            for row in conn.execute(f"SELECT t::text FROM {table} t WHERE tenant_id = %s", (tenant,)).fetchall())
        raw = b"".join(bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode()
                       for row in keys + creds for v in row.values())
    for haystack in (dump, raw):
        for needle in (value.encode(), value.encode().hex().encode(), dek, dek.hex().encode(), kek,
                       kek.hex().encode(), base64.b64encode(kek)):
            assert needle not in haystack
    assert keys[0]["kek_id"] == encryption.kek_id(kek) and keys[0]["active"] is True
    assert {c["data_key_id"] for c in creds} == {keys[0]["id"]}
    assert all(len(c["ciphertext"]) == 1 + 12 + len(value) + 16 for c in creds)
    assert await store.get(tenant, "api-key") == value


async def test_a_ciphertext_moved_to_another_name_or_tenant_does_not_decrypt(
        platform: Platform, db: Database, new_tenant: Callable[[str], UUID]) -> None:
    a, b = new_tenant("sec-move-a"), new_tenant("sec-move-b")
    store = BuiltinSecretStore(db, _kek())
    value = _canary()
    await store.put(a, "original", value)
    await store.put(b, "victim", "b-value")
    [row_a] = _rows(platform, "credentials", a)
    [key_a] = _rows(platform, "data_keys", a)
    with platform.superuser() as conn:
        # Same tenant, same data key, other name: only the AAD differs.
        conn.execute("INSERT INTO credentials (tenant_id, name, ciphertext, data_key_id) VALUES (%s, 'copy', %s, %s)",
                     (a, row_a["ciphertext"], row_a["data_key_id"]))
        # Same name, same data key, other user.
        conn.execute("INSERT INTO credentials (tenant_id, name, user_id, ciphertext, data_key_id) "
                     "VALUES (%s, 'original', %s, %s, %s)", (a, uuid.uuid4(), row_a["ciphertext"],
                                                                 row_a["data_key_id"]))
        # Another tenant with a copy of A's data key: only the tenant in the AAD differs.
        copied_key = uuid.uuid4()
        conn.execute("INSERT INTO data_keys (id, tenant_id, wrapped, kek_id, active) VALUES (%s, %s, %s, %s, false)",
                     (copied_key, b, key_a["wrapped"], key_a["kek_id"]))
        conn.execute("INSERT INTO credentials (tenant_id, name, ciphertext, data_key_id) "
                     "VALUES (%s, 'original', %s, %s)", (b, row_a["ciphertext"], copied_key))
        # Another tenant's row overwritten with A's ciphertext under B's own key.
        conn.execute("UPDATE credentials SET ciphertext = %s WHERE tenant_id = %s AND name = 'victim'",
                     (row_a["ciphertext"], b))
    user_copy = next(r["user_id"] for r in _rows(platform, "credentials", a) if r["user_id"] is not None)
    attempts = [(a, "copy", None), (a, "original", user_copy), (b, "original", None), (b, "victim", None)]
    for tenant, name, user in attempts:
        with pytest.raises(Forbidden) as denied:
            await store.get(tenant, name, user_id=user)
        assert value not in _text(denied.value) and f"'{name}'" in str(denied.value)
    assert await store.get(a, "original") == value


async def test_tenant_b_cannot_read_tenant_a_through_the_store_or_the_api_role(
        platform: Platform, db: Database, new_tenant: Callable[[str], UUID]) -> None:
    a, b = new_tenant("sec-iso-a"), new_tenant("sec-iso-b")
    store = BuiltinSecretStore(db, _kek())
    value = _canary()
    await store.put(a, "shared-name", value)
    with pytest.raises(NotFound) as hidden:
        await store.get(b, "shared-name")
    assert value not in _text(hidden.value)
    assert await store.names(b) == []
    assert await store.delete(b, "shared-name") is False
    assert await store.rotate_data_key(b) == RotationReport(
        backend="builtin", kek_id=store.kek_id, tenants=1, data_keys_created=1, credentials_reencrypted=0,
        note="0 previous data key(s) retired and erased")
    assert await store.get(a, "shared-name") == value

    with psycopg.connect(platform.engines.api_url) as conn:
        for table in SECRET_TABLES:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table  # no tenant: nothing
        conn.rollback()
        with conn.transaction():
            conn.execute("SELECT set_config('oshal.tenant_id', %s, true)", (str(b),))
            assert conn.execute("SELECT count(*) FROM credentials").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM data_keys WHERE tenant_id = %s", (a,)).fetchone() == (0,)
            assert conn.execute("UPDATE credentials SET version = 9 WHERE tenant_id = %s", (a,)).rowcount == 0
            assert conn.execute("DELETE FROM credentials WHERE tenant_id = %s", (a,)).rowcount == 0
            [key_a] = _rows(platform, "data_keys", a)
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute("INSERT INTO credentials (tenant_id, name, ciphertext, data_key_id) "
                             "VALUES (%s, 'planted', '\\x00', %s)", (a, key_a["id"]))
        with conn.transaction():
            conn.execute("SELECT set_config('oshal.tenant_id', %s, true)", (str(a),))
            assert conn.execute("SELECT name FROM credentials").fetchall() == [("shared-name",)]
        for statement in ("DELETE FROM data_keys", "TRUNCATE credentials",
                          "ALTER TABLE credentials DISABLE ROW LEVEL SECURITY",
                          "UPDATE data_keys SET tenant_id = tenant_id", "UPDATE credentials SET tenant_id = tenant_id"):
            conn.rollback()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        conn.rollback()
    assert [r["name"] for r in _rows(platform, "credentials", a)] == ["shared-name"]


def test_rls_is_enabled_and_forced_on_both_tables(platform: Platform) -> None:
    with platform.superuser() as conn:
        flags = dict(conn.execute(
            "SELECT relname, relrowsecurity AND relforcerowsecurity FROM pg_class "
            "WHERE relname = ANY(%s) AND relkind = 'r'", (list(SECRET_TABLES),)).fetchall())
        policies = conn.execute(
            "SELECT tablename, policyname, cmd, roles::text[], qual, with_check FROM pg_policies "
            "WHERE tablename = ANY(%s) ORDER BY tablename", (list(SECRET_TABLES),)).fetchall()
        grants = conn.execute(
            "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type) FROM "
            "information_schema.role_table_grants WHERE grantee = 'oshal_api' AND table_name = ANY(%s) "
            "GROUP BY table_name ORDER BY table_name", (list(SECRET_TABLES),)).fetchall()
    assert flags == {"credentials": True, "data_keys": True}
    expected = "(tenant_id = (NULLIF(current_setting('oshal.tenant_id'::text, true), ''::text))::uuid)"
    assert policies == [(t, "tenant_isolation", "ALL", ["public"], expected, expected) for t in SECRET_TABLES]
    # Column-level UPDATE grants do not show here; table-level ones must be exactly these.
    assert grants == [("credentials", "DELETE,INSERT,SELECT"), ("data_keys", "INSERT,SELECT")]


async def test_kek_rotation_rewraps_every_data_key_and_leaves_ciphertexts(
        platform: Platform, db: Database, new_tenant: Callable[[str], UUID]) -> None:
    a, b, empty = new_tenant("sec-kek-a"), new_tenant("sec-kek-b"), new_tenant("sec-kek-c")
    old_kek, new_kek = _kek(), _kek()
    old_store = BuiltinSecretStore(db, old_kek)
    values = {a: _canary(), b: _canary()}
    for tenant, value in values.items():
        await old_store.put(tenant, "token", value)
        await old_store.put(tenant, "token", value + "-user", user_id=tenant)
    before = {t: [bytes(r["ciphertext"]) for r in _rows(platform, "credentials", t)] for t in values}

    # The new KEK alone cannot read keys the old one wrapped: it names the fingerprint it is missing.
    new_only = BuiltinSecretStore(db, new_kek)
    with pytest.raises(ConfigError) as missing:
        await new_only.get(a, "token")
    assert encryption.kek_id(old_kek) in str(missing.value) and values[a] not in _text(missing.value)

    rotating = BuiltinSecretStore(db, new_kek, previous_keks=[old_kek])
    assert rotating.kek_ids == [encryption.kek_id(new_kek), encryption.kek_id(old_kek)]
    assert await rotating.get(a, "token") == values[a]  # reads work mid-rotation
    await rotating.put(empty, "fresh", "new-kek-value")  # new keys come wrapped by the new KEK
    report = await rotating.rotate()
    assert report.backend == "builtin" and report.kek_id == encryption.kek_id(new_kek)
    assert (report.data_keys_rewrapped, report.data_keys_current) == (2, 1)
    assert report.tenants >= 3

    for tenant in (a, b, empty):
        assert {k["kek_id"] for k in _rows(platform, "data_keys", tenant)} == {encryption.kek_id(new_kek)}
    for tenant, value in values.items():
        assert [bytes(r["ciphertext"]) for r in _rows(platform, "credentials", tenant)] == before[tenant]
        assert await new_only.get(tenant, "token") == value
        assert await new_only.get(tenant, "token", user_id=tenant) == value + "-user"
        with pytest.raises(ConfigError) as stale:
            await old_store.get(tenant, "token")
        assert encryption.kek_id(new_kek) in str(stale.value) and value not in _text(stale.value)
    assert await new_only.get(empty, "fresh") == "new-kek-value"
    again = await new_only.rotate()
    assert (again.data_keys_rewrapped, again.data_keys_current) == (0, 3)


async def test_data_key_rotation_reencrypts_and_destroys_the_old_key(
        platform: Platform, db: Database, new_tenant: Callable[[str], UUID]) -> None:
    a, b = new_tenant("sec-dek-a"), new_tenant("sec-dek-b")
    store = BuiltinSecretStore(db, _kek())
    values = {("one", None): _canary(), ("two", None): _canary(), ("one", a): _canary()}
    for (name, user), value in values.items():
        await store.put(a, name, value, user_id=user)
    await store.put(b, "other", "b-value")
    [old_key] = _rows(platform, "data_keys", a)
    old_cts = {(r["name"], r["user_id"]): bytes(r["ciphertext"]) for r in _rows(platform, "credentials", a)}
    b_before = _rows(platform, "credentials", b) + _rows(platform, "data_keys", b)

    report = await store.rotate_data_key(a)
    assert (report.data_keys_created, report.credentials_reencrypted, report.tenants) == (1, 3, 1)

    keys = {k["id"]: k for k in _rows(platform, "data_keys", a)}
    [new_id] = [i for i, k in keys.items() if k["active"]]
    assert new_id != old_key["id"] and len(keys) == 2
    assert keys[old_key["id"]]["active"] is False and bytes(keys[old_key["id"]]["wrapped"]) == b""
    rows = _rows(platform, "credentials", a)
    assert {r["data_key_id"] for r in rows} == {new_id}
    assert all(bytes(r["ciphertext"]) != old_cts[(r["name"], r["user_id"])] for r in rows)
    assert {(r["name"], r["user_id"]): r["version"] for r in rows} == dict.fromkeys(values, 1)
    for (name, user), value in values.items():
        assert await store.get(a, name, user_id=user) == value
    assert _rows(platform, "credentials", b) + _rows(platform, "data_keys", b) == b_before

    # The retired key is gone for good: a ciphertext still pointing at it cannot be read.
    with platform.superuser() as conn:
        conn.execute("UPDATE credentials SET data_key_id = %s, ciphertext = %s WHERE tenant_id = %s AND name = 'two'",
                     (old_key["id"], old_cts[("two", None)], a))
    with pytest.raises(ConfigError, match="retired") as retired:
        await store.get(a, "two")
    assert values[("two", None)] not in _text(retired.value)
    # New writes use the new key; a KEK rotation skips the erased one.
    await store.put(a, "three", "3")
    assert {r["data_key_id"] for r in _rows(platform, "credentials", a) if r["name"] == "three"} == {new_id}
    assert (await store.rotate()).data_keys_current == 2  # a's new key and b's key


async def test_concurrent_writers_and_rotations_keep_one_active_key(
        platform: Platform, db: Database, new_tenant: Callable[[str], UUID]) -> None:
    tenant = new_tenant("sec-race")
    store = BuiltinSecretStore(db, _kek())
    first = {f"first-{i}": _canary() for i in range(8)}
    await asyncio.gather(*(store.put(tenant, name, value) for name, value in first.items()))
    keys = _rows(platform, "data_keys", tenant)
    assert len(keys) == 1 and keys[0]["active"] is True  # racing first writers created exactly one key

    later = {f"later-{i}": _canary() for i in range(8)}
    results = await asyncio.gather(
        store.rotate_data_key(tenant), *(store.put(tenant, n, v) for n, v in later.items()),
        store.rotate_data_key(tenant))
    assert results[0].data_keys_created == results[-1].data_keys_created == 1
    keys = _rows(platform, "data_keys", tenant)
    active = [k["id"] for k in keys if k["active"]]
    assert len(keys) == 3 and len(active) == 1
    assert [bytes(k["wrapped"]) for k in keys if not k["active"]] == [b"", b""]
    assert {r["data_key_id"] for r in _rows(platform, "credentials", tenant)} == set(active)
    for name, value in {**first, **later}.items():
        assert await store.get(tenant, name) == value


async def test_error_messages_never_contain_the_value(platform: Platform, db: Database,
                                                      new_tenant: Callable[[str], UUID]) -> None:
    tenant, kek = new_tenant("sec-errors"), _kek()
    store = BuiltinSecretStore(db, kek)
    value = _canary()
    await store.put(tenant, "secret", value)
    failures: list[OshalError] = []
    for attempt in (lambda: store.get(tenant, "nope"),
                    lambda: BuiltinSecretStore(db, _kek()).get(tenant, "secret"),
                    lambda: store.put(tenant, "bad name!", value),
                    lambda: store.put(tenant, "huge", value * 5000)):
        with pytest.raises(OshalError) as caught:
            await attempt()
        failures.append(caught.value)
    with platform.superuser() as conn:
        conn.execute("UPDATE credentials SET ciphertext = ciphertext || '\\x00'::bytea WHERE tenant_id = %s",
                     (tenant,))
    with pytest.raises(Forbidden) as tampered:
        await store.get(tenant, "secret")
    failures.append(tampered.value)
    assert [type(f).__name__ for f in failures] == ["NotFound", "ConfigError", "Invalid", "TooLarge", "Forbidden"]
    for failure in failures:
        text = _text(failure)
        assert value not in text and value[:16] not in text and kek.hex() not in text


# -- vault backend -----------------------------------------------------------------------------------
@pytest.fixture
def vault() -> Iterator[FakeVault]:
    with FakeVault() as server:
        yield server


def _vault_settings(vault: FakeVault, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"secrets_backend": "vault", "vault_url": vault.url, "vault_token": vault.token}
    values.update(overrides)
    return Settings(**values)


async def test_vault_round_trip_names_and_delete(vault: FakeVault) -> None:
    store = open_secret_store(_vault_settings(vault))
    assert isinstance(store, VaultSecretStore) and store.backend == "vault"
    tenant, other, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    value = _canary()
    try:
        assert await store.names(tenant) == []
        await store.put(tenant, "github.token", value)
        await store.put(tenant, "stripe", "sk_1")
        await store.put(tenant, "stripe", "sk_2")
        await store.put(tenant, "github.token", "user-value", user_id=user)
        await store.put(other, "github.token", "other-tenant")

        assert vault.stored(f"oshal/{tenant}/github.token") == {"value": value}
        assert vault.stored(f"oshal/{tenant}/users/{user}/github.token") == {"value": "user-value"}
        assert await store.get(tenant, "github.token") == value
        assert await store.get(tenant, "stripe") == "sk_2"
        assert await store.get(tenant, "github.token", user_id=user) == "user-value"
        assert await store.get(other, "github.token") == "other-tenant"
        assert await store.names(tenant) == ["github.token", "stripe"]  # the users/ folder is not a name
        assert await store.names(tenant, user_id=user) == ["github.token"]

        assert await store.delete(tenant, "stripe") is True
        assert await store.delete(tenant, "stripe") is False
        assert vault.stored(f"oshal/{tenant}/stripe") is None
        with pytest.raises(NotFound) as missing:
            await store.get(tenant, "stripe")
        assert missing.value.hint is not None and "put" in missing.value.hint
        assert await store.names(tenant) == ["github.token"]

        report = await store.rotate()
        assert report.backend == "vault" and report.data_keys_rewrapped == 0 and "Vault" in report.note
        assert (await store.rotate_data_key(tenant)).credentials_reencrypted == 0
    finally:
        await store.close()
    methods = {(r.method, r.path.split("/")[3]) for r in vault.requests}
    assert {("POST", "data"), ("GET", "data"), ("LIST", "metadata"), ("GET", "metadata"),
            ("DELETE", "metadata")} == methods
    assert {r.headers["x-vault-token"] for r in vault.requests} == {vault.token}


async def test_vault_wrong_token_is_forbidden_without_leaking_the_token(vault: FakeVault) -> None:
    wrong = "hvs.wrong-token-" + uuid.uuid4().hex
    store = VaultSecretStore(vault.url, wrong, mount="secret", prefix="oshal")
    value = _canary()
    try:
        for attempt in (lambda: store.put(uuid.uuid4(), "x", value), lambda: store.get(uuid.uuid4(), "x"),
                        lambda: store.names(uuid.uuid4()), lambda: store.delete(uuid.uuid4(), "x")):
            with pytest.raises(Forbidden) as denied:
                await attempt()
            text = _text(denied.value)
            assert "permission denied" in str(denied.value) and "OSHAL_VAULT_TOKEN" in text
            assert wrong not in text and vault.token not in text and value not in text
            assert denied.value.__cause__ is None and denied.value.__suppress_context__
    finally:
        await store.close()
    assert vault.paths() == []


async def test_vault_configuration_errors_name_the_setting(vault: FakeVault,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("OSHAL_VAULT_URL", "OSHAL_VAULT_TOKEN"):
        monkeypatch.delenv(env, raising=False)
    with pytest.raises(ConfigError, match="OSHAL_VAULT_URL"):
        open_secret_store(Settings(secrets_backend="vault", vault_token="t"))
    with pytest.raises(ConfigError, match="OSHAL_VAULT_TOKEN"):
        open_secret_store(Settings(secrets_backend="vault", vault_url=vault.url))
    with monkeypatch.context() as patched:
        patched.setitem(sys.modules, "hvac", None)  # as if the extra were not installed
        with pytest.raises(ConfigError) as no_hvac:
            open_secret_store(_vault_settings(vault))
    assert "pip install 'oshal[vault]'" in str(no_hvac.value)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    unreachable = VaultSecretStore(f"http://127.0.0.1:{closed_port}", vault.token, timeout_s=2)
    with pytest.raises(Unavailable) as down:
        await unreachable.put(uuid.uuid4(), "x", "value-never-sent")
    assert f"127.0.0.1:{closed_port}" in str(down.value) and vault.token not in _text(down.value)
    await unreachable.close()
    store = open_secret_store(_vault_settings(vault, vault_mount="kv"))
    try:
        for attempt in (lambda: store.get(uuid.uuid4(), "x"), lambda: store.names(uuid.uuid4())):
            with pytest.raises(ConfigError) as unmounted:  # Vault: 404 "no handler for route"
                await attempt()
            assert "OSHAL_VAULT_MOUNT" in str(unmounted.value) and "'kv'" in str(unmounted.value)
    finally:
        await store.close()
