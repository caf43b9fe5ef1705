"""Applications: each application's flows (workflows that name it, e.g. the operations loop's incidents) and its
recent work, read from the platform's own tickets — the console knows no application's code."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import Request, Response

from oshal.console.render import page
from oshal.console.routes.common import console_router
from oshal.console.session import Viewer, plane_of
from oshal.store import tickets as ticket_repo

router = console_router()
_RECENT = 50


@router.get("/apps")
async def applications(request: Request, who: Viewer) -> Response:
    cp = plane_of(request)
    flows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for definition in await cp.workflows.list(who.tenant_id):
        if definition.get("application"):
            flows[str(definition["application"])].append(definition)
    work: dict[str, list[dict[str, Any]]] = {}
    async with cp.db.tenant(who.tenant_id) as conn:
        for app, definitions in sorted(flows.items()):
            work[app] = await ticket_repo.newest_of_types(conn, [d["name"] for d in definitions], _RECENT)
    return await page(request, "apps.html", title="Applications", flows=dict(sorted(flows.items())), work=work)
