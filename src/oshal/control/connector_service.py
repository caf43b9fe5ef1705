"""The connector service: redeems a grant, resolves the tenant's credential in this process, calls the API.

The credential never leaves this module: not in results, errors, logs, streams or the grant records.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from oshal.connectors.broker import Broker, GrantRequest
from oshal.connectors.manifest import ConnectorManifest
from oshal.connectors.mcp_runtime import McpRuntime
from oshal.connectors.runtime import ConnectorRuntime, Credential
from oshal.connectors.secrets.store import SecretStore
from oshal.errors import Forbidden, OshalError
from oshal.logs import get_logger
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
        self._recording: set[asyncio.Task[None]] = set()

    async def execute(self, grant_token: str, request: GrantRequest) -> dict[str, Any]:
        """Redeem ``grant_token`` and make the call it grants."""
        async with self.db.tenant(request.tenant_id) as conn:
            prepared = await self.redeem(conn, grant_token, request)
        return await self.run(prepared, request)

    async def redeem(self, conn: Conn, grant_token: str, request: GrantRequest, *,
                     user_id: UUID | None = None) -> Prepared:
        """Consume the grant and read what the call needs, inside the caller's tenant transaction.

        ``user_id`` (who created the ticket) selects that user's own credential when they stored one.
        """
        grant_id = await self.broker.redeem_in(conn, grant_token, request)
        manifest = await self.broker.enabled_manifest(conn, request.connector_id)
        connection = await repo.connection(conn, request.connector_id)
        credential = None
        if manifest.source.get("kind") != "mcp":
            credential = await self._credential(conn, request, manifest, connection, user_id)
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
        except OshalError as e:
            self._record_later(request, grant_id, f"error: {e.code}", ok=False, error=e.message)
            raise
        ok = result.status < 400
        self._record_later(request, grant_id, str(result.status), ok=ok, error=None if ok else f"HTTP {result.status}")
        log.info("tool call", connector=request.connector_id, operation=request.operation, status=result.status,
                 ticket=str(request.ticket_id), bot=request.bot)
        return {"connector": request.connector_id, "operation": request.operation, "status": result.status,
                "data": result.data, "pages": result.pages, "truncated": result.truncated}

    async def _credential(self, conn: Conn, request: GrantRequest, manifest: ConnectorManifest,
                          connection: dict[str, Any] | None, user_id: UUID | None) -> Credential | None:
        kinds = [scheme.kind for scheme in manifest.auth if scheme.kind != "none"]
        if not kinds:
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
        return Credential(kind=kinds[0], secret=secret, client_id=connection["client_id"])

    def _record_later(self, request: GrantRequest, grant_id: UUID, outcome: str, *, ok: bool,
                      error: str | None) -> None:
        """The issue and the redeem are recorded before the call; its outcome and the connection's health are
        written off the caller's path (drained on shutdown), so they cost the bot no latency."""
        task = asyncio.create_task(self._record(request, grant_id, outcome, ok=ok, error=error))
        self._recording.add(task)
        task.add_done_callback(self._recorded)

    def _recorded(self, task: asyncio.Task[None]) -> None:
        self._recording.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("tool call outcome not recorded", error=str(task.exception()))

    async def drain(self) -> None:
        if self._recording:
            await asyncio.gather(*self._recording, return_exceptions=True)

    async def _record(self, request: GrantRequest, grant_id: UUID, outcome: str, *, ok: bool,
                      error: str | None) -> None:
        async with self.db.tenant(request.tenant_id) as conn:
            await repo.record_call(conn, grant_id, request.connector_id, outcome, ok=ok, error=error)
