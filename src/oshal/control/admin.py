"""Tenants and API keys: operator actions, plus the bootstrap of the first operator key."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

import psycopg

from oshal.audit import trail
from oshal.control import api_keys
from oshal.control.auth import Authenticator
from oshal.errors import Conflict, Invalid, NotFound
from oshal.store import access
from oshal.store.db import Database
from oshal.types import Role, new_id

SYSTEM_TENANT = "system"


class AdminService:
    def __init__(self, db: Database, auth: Authenticator | None = None) -> None:
        self.db = db
        self.auth = auth
        self._system_tenant: UUID | None = None

    async def create_tenant(self, name: str, *, actor: str) -> dict[str, Any]:
        tenant_id = new_id()
        async with self.db.system() as conn:
            row = await access.create_tenant(conn, tenant_id, name)
            if row is None:
                raise Conflict(f"tenant {name!r} already exists", hint="tenant names are unique")
            await trail.record(conn, trail.Entry(tenant_id, actor, "tenant.create", name, {}))
        return row

    async def list_tenants(self) -> list[dict[str, Any]]:
        async with self.db.system() as conn:
            return await access.list_tenants(conn)

    async def resolve_tenant(self, ref: str) -> UUID:
        """A tenant by id or by name."""
        async with self.db.system() as conn:
            try:
                row = await access.tenant_by_id(conn, UUID(ref))
            except ValueError:
                row = await access.tenant_by_name(conn, ref)
        if row is None:
            raise NotFound(f"tenant {ref!r} not found", hint="list tenants with `oshal tenant list`")
        tenant_id: UUID = row["id"]
        return tenant_id

    async def tenant_name(self, tenant_id: UUID) -> str:
        async with self.db.system() as conn:
            row = await access.tenant_by_id(conn, tenant_id)
        return "" if row is None else str(row["name"])

    async def create_key(self, tenant_id: UUID, role: Role, name: str,
                         expires_in_days: int | None, *, actor: str) -> tuple[str, dict[str, Any]]:
        if expires_in_days is not None and expires_in_days <= 0:
            raise Invalid("expires_in_days must be positive")
        issued = api_keys.issue()
        expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=expires_in_days)) if expires_in_days else None
        async with self.db.tenant(tenant_id) as conn:
            row = await access.insert_key(conn, key_id=new_id(), tenant_id=tenant_id, prefix=issued.prefix,
                                          digest=issued.digest, role=role.value, name=name, expires_at=expires)
            await trail.record(conn, trail.Entry(tenant_id, actor, "key.create", issued.prefix,
                                                 {"key_id": str(row["id"]), "role": role.value, "name": name,
                                                  "expires_at": expires.isoformat() if expires else None}))
        return issued.plaintext, row

    async def list_keys(self, tenant_id: UUID) -> list[dict[str, Any]]:
        async with self.db.tenant(tenant_id) as conn:
            return await access.list_keys(conn)

    async def revoke_key(self, tenant_id: UUID, key_id: UUID, *, actor: str) -> dict[str, Any]:
        async with self.db.tenant(tenant_id) as conn:
            row = await access.revoke_key(conn, key_id)
            if row is None:
                raise NotFound(f"key {key_id} not found in this tenant")
            await trail.record(conn, trail.Entry(tenant_id, actor, "key.revoke", str(row["prefix"]),
                                                 {"key_id": str(key_id)}))
        if self.auth:
            self.auth.forget(key_id)
        return row

    async def system_tenant(self) -> UUID:
        if self._system_tenant is not None:
            return self._system_tenant
        async with self.db.system() as conn:
            row = await access.tenant_by_name(conn, SYSTEM_TENANT)
            if row is None:
                row = await access.create_tenant(conn, new_id(), SYSTEM_TENANT)
                if row is None:  # created concurrently
                    row = await access.tenant_by_name(conn, SYSTEM_TENANT)
        assert row is not None
        self._system_tenant = row["id"]
        return self._system_tenant

    async def register_bootstrap_key(self, plaintext: str) -> None:
        """Register an operator-provided key as the system tenant's operator key, unless it is already known."""
        prefix = api_keys.parse_prefix(plaintext)
        if prefix is None:
            raise Invalid("OSHAL_BOOTSTRAP_KEY is not an oshal key", hint="make one with `oshal key mint`")
        async with self.db.system() as conn:
            if await access.key_check(conn, prefix, api_keys.digest(plaintext)) is not None:
                return
        tenant = await self.system_tenant()
        try:
            async with self.db.tenant(tenant) as conn:
                await access.insert_key(conn, key_id=new_id(), tenant_id=tenant, prefix=prefix,
                                        digest=api_keys.digest(plaintext), role=Role.OPERATOR.value,
                                        name="bootstrap admin", expires_at=None)
                await trail.record(conn, trail.Entry(tenant, "platform", "key.create", prefix,
                                                     {"role": "operator", "name": "bootstrap admin"}))
        except psycopg.errors.UniqueViolation as e:  # the prefix is taken, by a key whose digest differs
            raise Conflict("OSHAL_BOOTSTRAP_KEY's prefix belongs to a different key",
                           hint="mint a new bootstrap key with `oshal key mint`") from e

    async def bootstrap(self, existing_key: str | None) -> str | None:
        """Ensure the system tenant and an operator key exist; returns a new key, or None if ``existing_key`` works."""
        if existing_key and self.auth:
            try:
                principal = await self.auth.authenticate(existing_key)
                if principal.role is Role.OPERATOR:
                    return None
            except Exception:  # noqa: S110 - any failure means: issue a fresh key
                pass
        plaintext, _ = await self.create_key(await self.system_tenant(), Role.OPERATOR, "bootstrap admin", None,
                                             actor="platform")
        return plaintext
