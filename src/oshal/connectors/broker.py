"""The token broker: a grant per tool call, single-use, short-lived, and bound to tenant, bot, ticket,
connector, operation and the exact arguments. Signed by the control plane; every issue and redeem is a row.

The broker, not the caller, enforces the tool policy: an ``ask`` operation gets a grant only with an approved
approval for this ticket and these arguments, so nothing that skips the gateway can skip the approval.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from oshal import jsontext
from oshal.audit import trail
from oshal.connectors.manifest import ConnectorManifest
from oshal.connectors.manifest_cache import ManifestCache
from oshal.errors import Forbidden, NotFound
from oshal.mesh.signing import checked_key
from oshal.store import connectors as repo
from oshal.store import killswitches
from oshal.store.db import Conn, Database
from oshal.types import new_id

DEFAULT_TTL_S = 60.0


def arguments_hash(arguments: Mapping[str, Any]) -> str:
    return hashlib.sha256(jsontext.canonical(arguments).encode()).hexdigest()


class ApprovalRequired(Forbidden):
    """The operation is ``ask`` and no approval covers this call yet; an approval request now exists."""

    code = "approval_required"

    def __init__(self, message: str, approval_id: UUID) -> None:
        super().__init__(message, hint=f"an operator approves it: POST /v1/approvals/{approval_id}/approve")
        self.approval_id = approval_id


@dataclass(frozen=True, slots=True)
class GrantRequest:
    tenant_id: UUID
    bot: str
    ticket_id: UUID
    connector_id: str
    operation: str
    arguments: Mapping[str, Any]

    def binding(self, grant_id: UUID, expires: int) -> bytes:
        return "|".join((str(grant_id), str(self.tenant_id), self.bot, str(self.ticket_id), self.connector_id,
                         self.operation, arguments_hash(self.arguments), str(expires))).encode()


@dataclass(frozen=True, slots=True)
class Grant:
    id: UUID
    token: str
    expires_at: dt.datetime


class Broker:
    def __init__(self, db: Database, key: bytes, *, ttl_s: float = DEFAULT_TTL_S,
                 manifests: ManifestCache | None = None) -> None:
        self._db = db
        self._key = checked_key(key, "broker signing")
        self.ttl_s = ttl_s
        self.manifests = manifests or ManifestCache()

    def _sign(self, request: GrantRequest, grant_id: UUID, expires: int) -> str:
        return hmac.new(self._key, request.binding(grant_id, expires), hashlib.sha256).hexdigest()

    async def issue(self, request: GrantRequest) -> Grant:
        async with self._db.tenant(request.tenant_id) as conn:
            issued = await self.issue_in(conn, request)
        return self.granted(issued)  # raised after the transaction, so an approval request itself is kept

    async def issue_in(self, conn: Conn, request: GrantRequest,
                       head: dict[str, Any] | None = None) -> Grant | ApprovalRequired:
        """:meth:`issue` inside the caller's tenant transaction. A missing approval is returned, not raised:
        the caller raises it (see :meth:`granted`) once the transaction holding the approval request commits.
        ``head`` is the connector's state, digest and the bot's policy mode when the caller read them already.
        """
        digest = arguments_hash(request.arguments)
        grant_id, expires_at = new_id(), dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.ttl_s)
        await _refuse_if_killed(conn, request.bot)
        mode = await self._callable_mode(conn, request, head)
        approval_id, blocked = await self._approval(conn, request, digest) if mode == "ask" else (None, None)
        if blocked is not None:
            pending_id, state = blocked
            return ApprovalRequired(f"{request.connector_id}.{request.operation} needs an approval for this ticket "
                                    f"and these arguments (approval {pending_id} is {state})", pending_id)
        await repo.insert_grant(conn, grant_id, request.tenant_id, request.bot, request.ticket_id,
                                request.connector_id, request.operation, digest, approval_id, expires_at)
        await trail.record(conn, trail.Entry(
            request.tenant_id, f"bot:{request.bot}", "tool.grant", f"{request.connector_id}.{request.operation}",
            {"ticket": str(request.ticket_id), "grant": str(grant_id), "mode": mode,
             "approval": str(approval_id) if approval_id else None}))
        expires = int(expires_at.timestamp())
        return Grant(grant_id, f"{grant_id}.{expires}.{self._sign(request, grant_id, expires)}", expires_at)

    def sign_new(self, request: GrantRequest) -> Grant:
        """A signed grant for ``request`` that the caller records itself (the one-statement tool-call path)."""
        grant_id, expires_at = new_id(), dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.ttl_s)
        expires = int(expires_at.timestamp())
        return Grant(grant_id, f"{grant_id}.{expires}.{self._sign(request, grant_id, expires)}", expires_at)

    def verify(self, token: str, request: GrantRequest) -> UUID:
        """The redeem's checks that need no database: the grant is well formed, for exactly this call, live."""
        try:
            raw_id, raw_expires, signature = token.split(".")
            grant_id, expires = UUID(raw_id), int(raw_expires)
        except ValueError as e:
            raise Forbidden("malformed grant") from e
        if not hmac.compare_digest(self._sign(request, grant_id, expires), signature):
            raise Forbidden("grant does not match this call (tenant, bot, ticket, connector, operation or arguments)")
        if expires <= dt.datetime.now(dt.UTC).timestamp():
            raise Forbidden("grant has expired", hint="ask the broker for a new grant")
        return grant_id

    @staticmethod
    def granted(issued: Grant | ApprovalRequired) -> Grant:
        if isinstance(issued, ApprovalRequired):
            raise issued
        return issued

    async def enabled_manifest(self, conn: Conn, connector_id: str,
                               head: dict[str, Any] | None = None) -> ConnectorManifest:
        """The connector's manifest, if it is in the catalog and enabled; parsed once per digest."""
        row = head if head is not None else await repo.connector_head(conn, connector_id)
        if row is None:
            raise NotFound(f"connector {connector_id!r} is not in the catalog")
        if row["state"] != "enabled":
            reason = f": {row['quarantine_reason']}" if row["quarantine_reason"] else ""
            raise Forbidden(f"connector {connector_id!r} is {row['state']}{reason}",
                            hint="an operator reviews, signs and enables it first")
        digest = str(row["digest"])
        self.manifests.seen(connector_id, digest)
        return self.manifests.get(digest) or self.manifests.put(
            digest, await repo.connector_manifest(conn, connector_id))

    async def _callable_mode(self, conn: Conn, request: GrantRequest, head: dict[str, Any] | None) -> str:
        """The tool policy mode, after checking the connector and operation may be called at all."""
        if head is None or head.get("id") is None:
            head = await repo.connector_head_and_policy(conn, request.connector_id, request.bot, request.operation)
        op = (await self.enabled_manifest(conn, request.connector_id, head)).operation(request.operation)
        if op is None or not op.enabled:
            raise Forbidden(f"operation {request.operation!r} of {request.connector_id!r} is not enabled")
        mode = str(head["mode"]) if head else "off"
        if mode == "off":
            raise Forbidden(
                f"bot {request.bot!r} may not call {request.connector_id}.{request.operation} (tool policy off)",
                hint="an operator sets the bot's tool policy to auto or ask")
        return mode

    @staticmethod
    async def _approval(conn: Conn, request: GrantRequest,
                        digest: str) -> tuple[UUID | None, tuple[UUID, str] | None]:
        """(approval id, None) when approved; (None, (approval id, state)) when still blocked."""
        approval = await repo.approval_for(conn, request.ticket_id, request.connector_id, request.operation, digest)
        if approval is None:
            pending = await repo.request_approval(conn, new_id(), request.tenant_id, request.ticket_id, request.bot,
                                                  request.connector_id, request.operation, digest,
                                                  dict(request.arguments))
            return None, (pending, "pending")
        if approval["status"] != "approved":
            return None, (approval["id"], str(approval["status"]))
        return approval["id"], None

    async def redeem(self, token: str, request: GrantRequest) -> UUID:
        """Consume a grant for exactly this call. Replayed, expired or mismatched grants are refused."""
        async with self._db.tenant(request.tenant_id) as conn:
            return await self.redeem_in(conn, token, request)

    async def redeem_in(self, conn: Conn, token: str, request: GrantRequest) -> UUID:
        """:meth:`redeem` inside the caller's tenant transaction."""
        grant_id = self.verify(token, request)
        if not await repo.redeem_grant(conn, grant_id):
            raise Forbidden("grant already used or expired; grants are single-use")
        return grant_id

    async def record_outcome(self, tenant_id: UUID, grant_id: UUID, outcome: str) -> None:
        async with self._db.tenant(tenant_id) as conn:
            await repo.grant_outcome(conn, grant_id, outcome[:500])


async def _refuse_if_killed(conn: Conn, bot: str) -> None:
    row = await killswitches.engaged_for_bot(conn, bot)
    if row is not None:
        raise Forbidden(f"kill switch {row['scope']} is engaged: {row['reason']}",
                        hint="an operator releases it with `oshal kill release`")
