"""The Postgres secret store: envelope-encrypted credentials in the tenant's own RLS-scoped rows.

Every statement runs in ``Database.tenant`` transactions as the API role, so row-level security decides what
is visible; nothing here needs cross-tenant rights.

Keys
    Each tenant has one *active* data key (DEK, 32 random bytes) in ``data_keys``, stored wrapped
    (AES-256-GCM) by the key-encryption key (KEK) with the KEK's fingerprint in ``kek_id``. Values are
    encrypted under the DEK and bound to ``tenant|name[|user]`` (see :mod:`.envelope`). The KEK itself is
    never stored in the database.

KEK rotation without downtime (:meth:`BuiltinSecretStore.rotate`)
    1. Configure every process with the new KEK as current and the old one as a *previous* KEK. Each DEK row
       says which KEK wrapped it, so a process unwraps with whichever configured KEK has that fingerprint:
       reads work throughout, new DEKs are wrapped by the new KEK.
    2. Run ``rotate()`` once. It lists the tenants (the API role may read ``tenants``) and, per tenant, in
       that tenant's transaction, locks the DEKs wrapped by any other KEK, unwraps them and stores them
       re-wrapped by the current KEK. Ciphertexts are not touched. This was chosen over SECURITY DEFINER
       functions: it needs no extra privileges and RLS stays in force; the cost is one short transaction
       per tenant, which is fine for an operator-run task. It is idempotent: run it again to pick up
       tenants created meanwhile, or after fixing a missing previous KEK (the report counts what changed).
    3. Drop the old KEK from the configuration. A store holding only the old KEK can no longer unwrap.

Data-key rotation (:meth:`BuiltinSecretStore.rotate_data_key`)
    In one tenant transaction: lock the tenant's DEKs, make a new active one, re-encrypt every credential
    under it, then retire the old DEKs by erasing their wrapped bytes (nothing references them any more).
    Writers take ``FOR SHARE`` on the active DEK, so a concurrent ``put`` either finishes before the
    rotation starts (and is re-encrypted by it) or waits and then uses the new key. Rotations of one tenant
    (KEK or data key) serialize on a transaction-scoped advisory lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal
from uuid import UUID, uuid4

import psycopg

from oshal.errors import ConfigError, Forbidden, NotFound, Unavailable
from oshal.secrets.encryption import (
    KEK_ENV,
    KEY_BYTES,
    credential_aad,
    decrypt,
    encrypt,
    kek_id,
    new_data_key,
    unwrap,
    wrap,
)
from oshal.secrets.port import RotationReport, check_name, check_value, not_found, scope
from oshal.store import access
from oshal.store import secrets as repo
from oshal.store.db import Conn, Database


def _uuid(value: UUID | str) -> UUID:
    """Canonical form: the AAD is built from str(uuid), so '...ABC' and '...abc' must not differ."""
    return value if isinstance(value, UUID) else UUID(str(value))


def _opt_uuid(value: UUID | str | None) -> UUID | None:
    return None if value is None else _uuid(value)


class BuiltinSecretStore:
    """Secret store on the platform's Postgres. ``kek`` wraps new and re-wrapped DEKs; ``previous_keks``
    are only used to unwrap DEKs not yet re-wrapped while a KEK rotation is in progress."""

    backend: Literal["builtin", "vault"] = "builtin"

    def __init__(self, db: Database, kek: bytes, *, previous_keks: Sequence[bytes] = ()) -> None:
        for key in (kek, *previous_keks):
            if len(key) != KEY_BYTES:
                raise ConfigError(f"a key-encryption key must be {KEY_BYTES} bytes, got {len(key)}",
                                  hint=f"check {KEK_ENV} and any previous KEKs passed in")
        self._db = db
        self._kek = bytes(kek)
        self._kek_id = kek_id(self._kek)
        self._keks = {kek_id(k): bytes(k) for k in previous_keks}
        self._keks[self._kek_id] = self._kek

    @property
    def kek_id(self) -> str:
        return self._kek_id

    @property
    def kek_ids(self) -> list[str]:
        """Fingerprints of every KEK this store can unwrap with, current first."""
        return [self._kek_id, *sorted(k for k in self._keks if k != self._kek_id)]

    # -- keys -----------------------------------------------------------------------------------------
    def _unwrap(self, row: dict[str, Any]) -> bytes:
        kek = self._keks.get(row["kek_id"])
        if kek is None:
            raise ConfigError(
                f"a data key is wrapped by the key-encryption key {row['kek_id']}, which this process does not "
                f"have (it has {', '.join(self.kek_ids)})",
                hint=f"set {KEK_ENV} to that KEK, or configure it as a previous KEK until rotation has finished",
            )
        if not row["wrapped"]:
            raise ConfigError(f"data key {row['id']} was retired and no longer exists",
                              hint="the credentials using it must be stored again")
        return unwrap(kek, row["wrapped"])

    async def _active_key(self, conn: Conn, tenant_id: UUID) -> tuple[UUID, bytes]:
        """The tenant's active DEK (created on first use), share-locked until the transaction ends."""
        for _ in range(3):
            row = await repo.active_key(conn, tenant_id)
            if row is not None:
                return row["id"], self._unwrap(row)
            key_id, dek = uuid4(), new_data_key()
            if await repo.insert_active_key(conn, key_id, tenant_id, wrap(self._kek, dek), self._kek_id):
                return key_id, dek
            # Another writer created (or a rotation replaced) the active key meanwhile: read it again.
        raise Unavailable("could not obtain this tenant's data key under concurrent rotation",
                          hint="retry the request")

    # -- credentials ----------------------------------------------------------------------------------
    async def put(self, tenant_id: UUID, name: str, value: str, *, user_id: UUID | None = None) -> None:
        tenant, user = _uuid(tenant_id), _opt_uuid(user_id)
        check_name(name)
        data = check_value(value)
        try:
            async with self._db.tenant(tenant) as conn:
                key_id, dek = await self._active_key(conn, tenant)
                ciphertext = encrypt(dek, data, credential_aad(tenant, name, user))
                await repo.upsert_credential(conn, tenant, name, user, ciphertext, key_id)
        except psycopg.errors.ForeignKeyViolation:
            raise NotFound(f"tenant {tenant} not found", hint="create the tenant first") from None

    async def get(self, tenant_id: UUID, name: str, *, user_id: UUID | None = None) -> str:
        async with self._db.tenant(_uuid(tenant_id)) as conn:
            return await self.get_in(conn, tenant_id, name, user_id=user_id)

    async def get_in(self, conn: Conn, tenant_id: UUID, name: str, *, user_id: UUID | None = None) -> str:
        tenant, user = _uuid(tenant_id), _opt_uuid(user_id)
        check_name(name)
        row = await repo.credential(conn, tenant, name, user)
        if row is None:
            raise not_found(name, user)
        return self._decrypt(row["ciphertext"], self._unwrap(row), tenant, name, user).decode()

    async def resolve_in(self, conn: Conn, tenant_id: UUID, name: str, *, user_id: UUID | None) -> str:
        tenant, user = _uuid(tenant_id), _opt_uuid(user_id)
        check_name(name)
        row = await repo.resolve_credential(conn, tenant, name, user)
        if row is None:
            raise not_found(name, None)
        found_user = row["user_id"]
        return self._decrypt(row["ciphertext"], self._unwrap(row), tenant, name, found_user).decode()

    def open_row(self, tenant_id: UUID, name: str, row: dict[str, Any]) -> str:
        """Decrypt a credential row read elsewhere (ciphertext, credential_user, data_key_id, wrapped, kek_id)."""
        dek = self._unwrap({"id": row["data_key_id"], "wrapped": row["wrapped"], "kek_id": row["kek_id"]})
        return self._decrypt(row["ciphertext"], dek, _uuid(tenant_id), name, row["credential_user"]).decode()

    @staticmethod
    def _decrypt(blob: bytes, dek: bytes, tenant: UUID, name: str, user: UUID | None) -> bytes:
        try:
            return decrypt(dek, blob, credential_aad(tenant, name, user))
        except Forbidden as e:
            raise Forbidden(f"{scope(name, user)} cannot be decrypted: it was not encrypted for this tenant and "
                            "name, or it was altered", hint="store it again (put)") from e

    async def delete(self, tenant_id: UUID, name: str, *, user_id: UUID | None = None) -> bool:
        tenant, user = _uuid(tenant_id), _opt_uuid(user_id)
        check_name(name)
        async with self._db.tenant(tenant) as conn:
            return await repo.delete_credential(conn, tenant, name, user)

    async def names(self, tenant_id: UUID, *, user_id: UUID | None = None) -> list[str]:
        tenant, user = _uuid(tenant_id), _opt_uuid(user_id)
        async with self._db.tenant(tenant) as conn:
            return await repo.credential_names(conn, tenant, user)

    # -- rotation -------------------------------------------------------------------------------------
    async def rotate(self) -> RotationReport:
        """Re-wrap every tenant's data keys under the current KEK (see the module docstring)."""
        async with self._db.system() as conn:
            tenants = await access.tenant_ids(conn)
        rewrapped = current = 0
        for tenant in tenants:
            async with self._db.tenant(tenant) as conn:
                await repo.lock_rotation(conn, tenant)
                current += await repo.count_keys_wrapped_by(conn, tenant, self._kek_id)
                stale = await repo.lock_keys_not_wrapped_by(conn, tenant, self._kek_id)
                if not stale:
                    continue
                updates = [(wrap(self._kek, self._unwrap(row)), self._kek_id, row["id"]) for row in stale]
                await repo.rewrap_keys(conn, updates)
                rewrapped += len(updates)
        return RotationReport(backend="builtin", kek_id=self._kek_id, tenants=len(tenants),
                              data_keys_rewrapped=rewrapped, data_keys_current=current,
                              note="data keys re-wrapped; credential ciphertexts unchanged")

    async def rotate_data_key(self, tenant_id: UUID) -> RotationReport:
        """New DEK for one tenant; its credentials re-encrypted under it; the old DEKs destroyed."""
        tenant = _uuid(tenant_id)
        async with self._db.tenant(tenant) as conn:
            await repo.lock_rotation(conn, tenant)
            old = {row["id"]: self._unwrap(row) for row in await repo.lock_live_keys(conn, tenant)}
            new_id, new_dek = uuid4(), new_data_key()
            await repo.replace_active_key(conn, new_id, tenant, wrap(self._kek, new_dek), self._kek_id)
            updates: list[tuple[bytes, UUID, UUID, str, UUID | None]] = []
            for row in await repo.lock_credentials(conn, tenant):
                name, user = row["name"], row["user_id"]
                dek = old.get(row["data_key_id"])
                if dek is None:
                    raise ConfigError(f"{scope(name, user)} uses a data key that no longer exists",
                                      hint="delete it or store it again, then rotate")
                aad = credential_aad(tenant, name, user)
                plaintext = self._decrypt(row["ciphertext"], dek, tenant, name, user)
                updates.append((encrypt(new_dek, plaintext, aad), new_id, tenant, name, user))
            if updates:
                await repo.reencrypt_credentials(conn, updates)
            await repo.retire_keys_except(conn, tenant, new_id)
        return RotationReport(backend="builtin", kek_id=self._kek_id, tenants=1, data_keys_created=1,
                              credentials_reencrypted=len(updates),
                              note=f"{len(old)} previous data key(s) retired and erased")

    async def close(self) -> None:
        """The store does not own the database pool; nothing to release."""
