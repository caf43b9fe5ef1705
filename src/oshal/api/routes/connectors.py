"""/v1/connectors, /v1/connections, tool policies, /v1/approvals and /v1/grants."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oshal.api.deps import (
    Caller,
    ConnectorCatalog,
    Db,
    Operator,
    PlatformOperator,
    Registry,
    Secrets,
    TicketLifecycle,
)
from oshal.audit import trail
from oshal.connectors.manifest import ConnectorManifest
from oshal.control.auth import Principal
from oshal.control.ticket_actions import Lifecycle
from oshal.errors import Invalid, NotFound
from oshal.store import connectors as repo
from oshal.store.db import Database

router = APIRouter(prefix="/v1", tags=["connectors"])


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImportRequest(_In):
    document: dict[str, Any] = Field(description="An OpenAPI 3.x or Swagger 2.0 document, parsed.")
    origin: str = Field(default="", max_length=2000, description="Where it came from (file or URL).")
    id: str | None = Field(default=None, max_length=63)
    publisher: str = Field(default="imported", min_length=1, max_length=100)
    category: str = "other"
    replace: bool = False


class OperationsChange(_In):
    enable: list[str] = Field(default_factory=list, max_length=1000)
    disable: list[str] = Field(default_factory=list, max_length=1000)
    allow_risky: bool = Field(default=False, description="Required to enable write, money or destructive ops.")


class ConnectorSettings(_In):
    base_url: str | None = Field(default=None, max_length=2000)
    allow_private_network: bool | None = Field(
        default=None, description="Allow loopback/private addresses (on-premises APIs); off by default.")


class SignatureIn(_In):
    signature: dict[str, Any]


class ConnectionIn(_In):
    connector: str = Field(min_length=1, max_length=63)
    secret: str = Field(min_length=1, max_length=16_000, description="API key, token or client secret.")
    client_id: str | None = Field(default=None, max_length=500)
    expires_at: dt.datetime | None = Field(
        default=None, description="When the credential stops working; calls after it fail closed (tenant-wide).")
    user: UUID | None = Field(
        default=None, description="Store it for one user (an API key id): that user's tickets use it instead of "
                                  "the tenant-wide credential.")


class PolicyIn(_In):
    connector: str = Field(min_length=1, max_length=63)
    operation: str = Field(min_length=1, max_length=128)
    mode: Literal["auto", "ask", "off"]


class Decision(_In):
    reason: str | None = Field(default=None, max_length=1000)


def connector_summary(row: dict[str, Any]) -> dict[str, Any]:
    operations = row["manifest"].get("operations", [])
    return {"id": row["id"], "version": row["version"], "publisher": row["publisher"], "category": row["category"],
            "title": row["title"], "state": row["state"], "quarantine_reason": row["quarantine_reason"],
            "disabled_reason": row.get("disabled_reason"),
            "operations": len(operations), "enabled_operations": sum(1 for op in operations if op.get("enabled")),
            "digest": row["digest"], "signed": row["signature"] is not None, "updated_at": row["updated_at"]}


@router.get("/connectors")
async def list_connectors(catalog: ConnectorCatalog, who: Caller) -> list[dict[str, Any]]:
    return [connector_summary(row) for row in await catalog.entries()]


@router.get("/connectors/{connector_id}")
async def show_connector(connector_id: str, catalog: ConnectorCatalog, who: Caller) -> dict[str, Any]:
    row = await catalog.get(connector_id)
    return {**connector_summary(row), "manifest": row["manifest"], "signature": row["signature"]}


@router.post("/connectors/import", status_code=201)
async def import_connector(body: ImportRequest, catalog: ConnectorCatalog, who: PlatformOperator) -> dict[str, Any]:
    """Import an API description as a draft connector: every operation disabled until reviewed."""
    row = await catalog.import_document(body.document, connector_id=body.id, publisher=body.publisher,
                                           category=body.category, origin=body.origin, replace=body.replace)
    return connector_summary(row)


class ManifestIn(_In):
    manifest: dict[str, Any]
    replace: bool = False


@router.post("/connectors", status_code=201)
async def add_connector(body: ManifestIn, catalog: ConnectorCatalog, who: PlatformOperator) -> dict[str, Any]:
    """Add a connector manifest built elsewhere (an MCP import) as a draft, every operation disabled."""
    try:
        manifest = ConnectorManifest.model_validate(body.manifest)
    except ValidationError as e:
        raise Invalid(f"not a connector manifest: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}") from e
    return connector_summary(await catalog.add_draft(manifest, replace=body.replace))


@router.post("/connectors/{connector_id}/operations")
async def change_operations(connector_id: str, body: OperationsChange, catalog: ConnectorCatalog,
                            who: PlatformOperator) -> dict[str, Any]:
    """Enable or disable operations; the connector returns to draft until it is signed again."""
    return connector_summary(await catalog.set_operations(connector_id, enable=body.enable, disable=body.disable,
                                                    allow_risky=body.allow_risky))


@router.patch("/connectors/{connector_id}")
async def configure_connector(connector_id: str, body: ConnectorSettings, catalog: ConnectorCatalog,
                              who: PlatformOperator) -> dict[str, Any]:
    """Change where a connector points; it returns to draft until it is signed again."""
    return connector_summary(await catalog.configure(connector_id, base_url=body.base_url,
                                               allow_private_network=body.allow_private_network))


@router.post("/connectors/{connector_id}/signature")
async def sign_connector(connector_id: str, body: SignatureIn, catalog: ConnectorCatalog,
                         who: PlatformOperator) -> dict[str, Any]:
    """Enable a connector with a publisher's signature over its current manifest (checked against trust)."""
    return connector_summary(await catalog.attach_signature(connector_id, body.signature))


class DisableIn(_In):
    reason: str = Field(min_length=1, max_length=500, description="Why; shown with the connector and audited.")


@router.post("/connectors/{connector_id}/disable")
async def disable_connector(connector_id: str, body: DisableIn, catalog: ConnectorCatalog,
                            who: PlatformOperator) -> dict[str, Any]:
    """Take an enabled connector out of service: calls through it are refused until it is enabled again (its
    signature is kept, so that needs no new signature)."""
    return connector_summary(await catalog.disable(connector_id, reason=body.reason, actor=who.actor,
                                                   tenant=who.tenant_id))


@router.post("/connectors/{connector_id}/enable")
async def enable_connector(connector_id: str, catalog: ConnectorCatalog, who: PlatformOperator) -> dict[str, Any]:
    """Put a disabled connector back in service if its signature still checks out; otherwise it is quarantined."""
    return connector_summary(await catalog.enable(connector_id, actor=who.actor, tenant=who.tenant_id))


@router.post("/connectors/verify")
async def verify_connectors(catalog: ConnectorCatalog, who: PlatformOperator) -> dict[str, list[str]]:
    """Re-check every enabled connector; changed or untrusted ones are quarantined."""
    return {"quarantined": await catalog.reverify()}


@router.post("/connections", status_code=201)
async def add_connection(body: ConnectionIn, catalog: ConnectorCatalog, secrets: Secrets, db: Db,
                         who: Operator) -> dict[str, Any]:
    """Store this tenant's credential for a connector (encrypted at rest) and link it. Never returned."""
    await catalog.get(body.connector)
    name = f"connector.{body.connector}"
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise Invalid("expires_at needs a time zone", hint='e.g. "2027-01-31T00:00:00Z"')
    await secrets.put(who.tenant_id, name, body.secret, user_id=body.user)
    async with db.tenant(who.tenant_id) as conn:
        existing = {r["connector_id"]: r for r in await repo.connections(conn)}.get(body.connector)
        if body.user is not None and existing is not None:  # a user's credential leaves the tenant's as it is
            row = existing
        else:
            row = await repo.upsert_connection(conn, who.tenant_id, body.connector, name, body.client_id,
                                               body.expires_at)
    return {k: v for k, v in row.items() if k != "tenant_id"} | {"user": body.user}


@router.post("/secrets/rotate")
async def rotate_secrets(secrets: Secrets, who: PlatformOperator) -> dict[str, Any]:
    """Re-wrap every tenant's data key under the current key-encryption key (no ciphertext is touched).

    To rotate the KEK without downtime: restart with the new key as OSHAL_SECRETS_KEK and the old one still
    accepted, call this, then drop the old key.
    """
    report = await secrets.rotate()
    return {k: v for k, v in vars(report).items()}


@router.get("/connections")
async def list_connections(db: Db, who: Caller) -> list[dict[str, Any]]:
    """Connections with credential health: last success, last error. Never the credential."""
    async with db.tenant(who.tenant_id) as conn:
        return [{k: v for k, v in row.items() if k != "tenant_id"} for row in await repo.connections(conn)]


@router.put("/bots/{bot}/tools")
async def set_tool_policy(bot: str, body: PolicyIn, registry: Registry, catalog: ConnectorCatalog, db: Db,
                          who: Operator) -> dict[str, str]:
    """A bot's policy for one operation: auto, ask (needs an approval per call) or off (the default)."""
    await registry.require({bot})
    manifest = (await catalog.get(body.connector))["manifest"]
    if not any(op["name"] == body.operation for op in manifest.get("operations", [])):
        raise NotFound(f"connector {body.connector!r} has no operation {body.operation!r}")
    async with db.tenant(who.tenant_id) as conn:
        await repo.set_policy(conn, who.tenant_id, bot, body.connector, body.operation, body.mode, who.key_id)
        await trail.record(conn, trail.Entry(who.tenant_id, who.actor, "tool_policy.set",
                                             f"{bot}:{body.connector}.{body.operation}", {"mode": body.mode}))
    return {"bot": bot, "connector": body.connector, "operation": body.operation, "mode": body.mode}


@router.get("/bots/{bot}/tools")
async def list_tool_policies(bot: str, db: Db, who: Caller) -> list[dict[str, Any]]:
    async with db.tenant(who.tenant_id) as conn:
        return [{k: v for k, v in row.items() if k != "tenant_id"} for row in await repo.policies(conn, bot)]


@router.get("/approvals")
async def list_approvals(db: Db, who: Caller,
                         status: Annotated[Literal["pending", "approved", "rejected"] | None, Query()] = None,
                         ) -> list[dict[str, Any]]:
    async with db.tenant(who.tenant_id) as conn:
        return await repo.approvals(conn, status)


async def decide_tool_approval(db: Database, lifecycle: Lifecycle, who: Principal, approval_id: UUID, status: str,
                  reason: str | None) -> dict[str, Any]:
    async with db.tenant(who.tenant_id) as conn:
        row = await repo.decide(conn, approval_id, status, who.key_id, reason)
        if row is None:
            raise NotFound(f"no pending approval {approval_id}",
                           hint="list them with GET /v1/approvals?status=pending")
        await trail.record(conn, trail.Entry(who.tenant_id, who.actor, f"approval.{status}", str(approval_id),
                                             {"ticket": str(row["ticket_id"]), "reason": reason}))
    await lifecycle.tool_approval_decided(who.tenant_id, row["ticket_id"], status == "approved",
                                          actor=f"key:{who.key_id}", reason=reason)
    return dict(row)


@router.post("/approvals/{approval_id}/approve")
async def approve(approval_id: UUID, db: Db, lifecycle: TicketLifecycle, who: Operator,
                  body: Decision | None = None) -> dict[str, Any]:
    return await decide_tool_approval(db, lifecycle, who, approval_id, "approved", body.reason if body else None)


@router.post("/approvals/{approval_id}/reject")
async def reject(approval_id: UUID, body: Decision, db: Db, lifecycle: TicketLifecycle,
                 who: Operator) -> dict[str, Any]:
    return await decide_tool_approval(db, lifecycle, who, approval_id, "rejected", body.reason)


@router.get("/grants")
async def list_grants(db: Db, who: Caller, ticket: Annotated[UUID | None, Query()] = None) -> list[dict[str, Any]]:
    """Every grant issued (and whether it was redeemed, with what outcome)."""
    async with db.tenant(who.tenant_id) as conn:
        return await repo.grants(conn, ticket)


