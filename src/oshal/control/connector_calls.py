"""The connector service: redeems a grant, resolves the tenant's credential in this process, calls the API.

The credential never leaves this module: not in results, errors, logs, streams or the grant records.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from oshal.connectors.broker import Broker, GrantRequest, arguments_hash
from oshal.connectors.manifest import AuthKind, ConnectorManifest
from oshal.connectors.mcp_runtime import McpRuntime, ToolDrift
from oshal.connectors.runtime import ConnectorRuntime, Credential
from oshal.control.batches import TenantBatches
from oshal.errors import Forbidden, OshalError
from oshal.logs import get_logger
from oshal.secrets.builtin import BuiltinSecretStore
from oshal.secrets.port import SecretStore, not_found
from oshal.store import connectors as repo
from oshal.store.db import Conn, Database

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Prepared:
    grant_id: UUID
    manifest: ConnectorManifest
    connection: dict[str, Any] | None
    credential: Credential | None  # its repr never shows the secret


class ConnectorService:
    def __init__(self, db: Database, broker: Broker, secrets: SecretStore, runtime: ConnectorRuntime,
                 mcp: McpRuntime) -> None:
        self.db = db
        self.broker = broker
        self.secrets = secrets
        self.runtime = runtime
        self.mcp = mcp
        # Outcomes and the connections' health are written off the caller's path, many calls per transaction.
        self._outcomes: TenantBatches[_Outcome] = TenantBatches(
            db, lambda o: o.tenant, _write_outcomes, what="tool call outcomes", linger_s=0.1)

    async def execute(self, grant_token: str, request: GrantRequest) -> dict[str, Any]:
        """Redeem ``grant_token`` and make the call it grants."""
        async with self.db.tenant(request.tenant_id) as conn:
            prepared = await self.redeem(conn, grant_token, request)
        return await self.run(prepared, request)

    async def redeem(self, conn: Conn, grant_token: str, request: GrantRequest, *,
                     user_id: UUID | None = None, context: dict[str, Any] | None = None) -> Prepared:
        """Consume the grant and read what the call needs, inside the caller's tenant transaction.

        ``user_id`` (who created the ticket) selects that user's own credential when they stored one;
        ``context`` is :func:`repo.call_context` when the caller read it in this transaction already.
        """
        grant_id = await self.broker.redeem_in(conn, grant_token, request)
        if context is not None and context.get("id") is not None:
            manifest = await self.broker.enabled_manifest(conn, request.connector_id, context)
            connection = None if context["connection_connector"] is None else _connection(
                request.connector_id, context["secret_name"], context["client_id"], context["expires_at"])
        else:
            manifest = await self.broker.enabled_manifest(conn, request.connector_id)
            connection = await repo.connection(conn, request.connector_id)
        credential = None
        if manifest.source.get("kind") != "mcp":
            credential = await self._credential(conn, request, manifest, connection, user_id)
        return Prepared(grant_id, manifest, connection, credential)

    async def prepare_auto(self, request: GrantRequest) -> Prepared | None:
        """The common case in one round trip: an ``auto`` operation of an enabled connector whose manifest this
        process has parsed, with the built-in secret store. The grant is issued and redeemed (both recorded)
        inside one statement. None: anything else, for the general path to handle (and explain)."""
        latest = self.broker.manifests.latest(request.connector_id)
        if latest is None or not isinstance(self.secrets, BuiltinSecretStore):
            return None
        digest, manifest = latest
        op = manifest.operation(request.operation)
        if op is None or not op.enabled or manifest.source.get("kind") == "mcp":
            return None
        grant = self.broker.sign_new(request)
        [row] = await self.db.call(repo.tool_call(
            request.tenant_id, request.ticket_id, request.bot, request.connector_id, request.operation, digest,
            grant.id, arguments_hash(request.arguments), grant.expires_at))
        if not row["granted"]:
            return None
        grant_id = self.broker.verify(grant.token, request)
        connection = _connection(request.connector_id, row["secret_name"], row["client_id"],
                                 row["connection_expires"])
        kind = _auth_kind(manifest)
        credential = None
        if kind is not None:
            if row["ciphertext"] is None:
                raise not_found(str(row["secret_name"]), None)
            secret = self.secrets.open_row(request.tenant_id, str(row["secret_name"]), row)
            credential = Credential(kind=kind, secret=secret, client_id=row["client_id"])
        return Prepared(grant_id, manifest, connection, credential)

    async def run(self, prepared: Prepared, request: GrantRequest) -> dict[str, Any]:
        grant_id, manifest, connection = prepared.grant_id, prepared.manifest, prepared.connection
        try:
            if manifest.source.get("kind") == "mcp":  # an MCP server: its tools run over MCP, not HTTP
                result = await self.mcp.call(manifest, request.operation, request.arguments)
            else:
                async def keep_rotated(token: str) -> None:
                    # A provider that rotates refresh tokens invalidates the old one: store the new one at once.
                    if connection is not None:
                        await self.secrets.put(request.tenant_id, str(connection["secret_name"]), token)

                result = await self.runtime.call(manifest, request.operation, request.arguments,
                                                 prepared.credential, on_refresh_token=keep_rotated)
        except ToolDrift as e:
            self._record_later(request, grant_id, f"error: {e.code}", ok=False, error=e.message)
            await self._quarantine(manifest, f"MCP tool drift: {e.message}")
            raise
        except OshalError as e:
            self._record_later(request, grant_id, f"error: {e.code}", ok=False, error=e.message)
            raise
        ok = result.status < 400
        self._record_later(request, grant_id, str(result.status), ok=ok, error=None if ok else f"HTTP {result.status}")
        log.info("tool call", connector=request.connector_id, operation=request.operation, status=result.status,
                 ticket=str(request.ticket_id), bot=request.bot)
        return {"connector": request.connector_id, "operation": request.operation, "status": result.status,
                "data": result.data, "pages": result.pages, "truncated": result.truncated}

    async def _quarantine(self, manifest: ConnectorManifest, reason: str) -> None:
        """A connector whose server no longer matches its signed manifest is quarantined until re-signed, exactly
        like one whose manifest changed: every later call is refused with the reason, whichever tool it names."""
        async with self.db.system() as conn:
            quarantined = await repo.quarantine_enabled(conn, manifest.id, manifest.digest(), reason[:500])
        if quarantined:
            log.warning("connector quarantined", connector=manifest.id, reason=reason)

    async def _credential(self, conn: Conn, request: GrantRequest, manifest: ConnectorManifest,
                          connection: dict[str, Any] | None, user_id: UUID | None) -> Credential | None:
        kind = _auth_kind(manifest)
        if kind is None:
            return None
        if connection is None:
            raise Forbidden(f"tenant has no connection for connector {request.connector_id!r}",
                            hint="an operator adds one: POST /v1/connections")
        expires = connection.get("expires_at")
        if expires is not None and expires <= dt.datetime.now(dt.UTC):
            raise Forbidden(f"the credential for connector {request.connector_id!r} expired at {expires.isoformat()}",
                            hint="an operator stores a new one: POST /v1/connections (oshal connection add)")
        secret = await self.secrets.resolve_in(conn, request.tenant_id, str(connection["secret_name"]),
                                               user_id=user_id)
        return Credential(kind=kind, secret=secret, client_id=connection["client_id"])

    def _record_later(self, request: GrantRequest, grant_id: UUID, outcome: str, *, ok: bool,
                      error: str | None) -> None:
        """The issue and the redeem are recorded before the call; its outcome and the connection's health are
        written off the caller's path, many calls per transaction (drained on shutdown), so they cost the bot
        no latency and the database one write per batch."""
        self._outcomes.add(_Outcome(request.tenant_id, grant_id, request.connector_id, outcome, ok, error))

    async def drain(self) -> None:
        await self._outcomes.drain()


@dataclass(frozen=True, slots=True)
class _Outcome:
    tenant: UUID
    grant_id: UUID
    connector_id: str
    outcome: str
    ok: bool
    error: str | None


async def _write_outcomes(conn: Conn, outcomes: Sequence[_Outcome]) -> None:
    await repo.record_calls(conn, [(o.grant_id, o.connector_id, o.outcome, o.ok, o.error) for o in outcomes])


def _auth_kind(manifest: ConnectorManifest) -> AuthKind | None:
    """The kind of credential the connector needs (None: it needs none)."""
    return next((scheme.kind for scheme in manifest.auth if scheme.kind != "none"), None)


def _connection(connector_id: str, secret_name: str, client_id: str | None,
                expires_at: dt.datetime | None) -> dict[str, Any]:
    return {"connector_id": connector_id, "secret_name": secret_name, "client_id": client_id,
            "expires_at": expires_at}
