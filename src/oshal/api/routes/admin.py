"""/v1/tenants (platform operators) and /v1/keys (a tenant's operators, for their own tenant)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from oshal.api.deps import Admin, Caller, Operator, PlatformOperator, tenant_named
from oshal.api.schemas import KeyCreate, KeyCreated, KeyOut, TenantCreate, TenantOut

router = APIRouter(prefix="/v1", tags=["admin"])


@router.post("/tenants", status_code=201, response_model=TenantOut)
async def create_tenant(body: TenantCreate, admin: Admin, who: PlatformOperator) -> TenantOut:
    return TenantOut.model_validate(await admin.create_tenant(body.name, actor=who.actor))


@router.get("/tenants", response_model=list[TenantOut])
async def list_tenants(admin: Admin, who: PlatformOperator) -> list[TenantOut]:
    return [TenantOut.model_validate(r) for r in await admin.list_tenants()]


@router.post("/keys", status_code=201, response_model=KeyCreated)
async def create_key(body: KeyCreate, admin: Admin, who: Operator) -> KeyCreated:
    """Create a key for the caller's tenant (a platform operator may name another). Shown once, never again."""
    tenant = await tenant_named(admin, who, body.tenant)
    plaintext, row = await admin.create_key(tenant, body.role, body.name, body.expires_in_days,
                                                actor=who.actor)
    return KeyCreated.model_validate({**row, "key": plaintext})


@router.get("/keys", response_model=list[KeyOut])
async def list_keys(admin: Admin, who: Operator,
                    tenant: Annotated[str | None, Query(description="tenant id or name")] = None) -> list[KeyOut]:
    tenant_id = await tenant_named(admin, who, tenant)
    return [KeyOut.model_validate(r) for r in await admin.list_keys(tenant_id)]


@router.delete("/keys/{key_id}", response_model=KeyOut)
async def revoke_key(key_id: UUID, admin: Admin, who: Operator,
                     tenant: Annotated[str | None, Query(description="tenant id or name")] = None) -> KeyOut:
    tenant_id = await tenant_named(admin, who, tenant)
    return KeyOut.model_validate(await admin.revoke_key(tenant_id, key_id, actor=who.actor))


@router.get("/whoami")
async def whoami(admin: Admin, who: Caller) -> dict[str, str]:
    """The caller's tenant (id and name), key and role."""
    name = await admin.tenant_name(who.tenant_id)
    return {"tenant_id": str(who.tenant_id), "tenant": name, "key_id": str(who.key_id), "role": who.role.value}
