"""Connectors: the shared catalog (signed, enabled operations, quarantined) and the tenant's connections with
their credential health. Never a credential."""

from __future__ import annotations

from fastapi import Request, Response

from oshal.api.routes.connectors import connector_summary
from oshal.console.render import page
from oshal.console.routes.common import console_router
from oshal.console.session import Viewer, plane_of
from oshal.store import connectors as connector_repo

router = console_router()
_SHOWN_CONNECTION_FIELDS = ("connector_id", "secret_name", "created_at", "last_success_at", "last_error_at",
                            "last_error", "expires_at", "health")


@router.get("/connectors")
async def connectors(request: Request, who: Viewer) -> Response:
    cp = plane_of(request)
    catalog = [connector_summary(row) for row in await cp.catalog.entries()]
    async with cp.db.tenant(who.tenant_id) as conn:
        rows = await connector_repo.connections(conn)
    connections = [{k: row.get(k) for k in _SHOWN_CONNECTION_FIELDS} for row in rows]
    return await page(request, "connectors.html", title="Connectors", catalog=catalog, connections=connections)
