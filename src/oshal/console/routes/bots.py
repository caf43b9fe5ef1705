"""Bots: each one's live state (heartbeats, replicas, lane pending and lag, kill switch) and its recent work."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import Request, Response

from oshal.api.routes.fleet import bot_views
from oshal.console.render import page
from oshal.console.routes.common import console_router
from oshal.console.session import Viewer, plane_of
from oshal.store import tickets as ticket_repo

router = console_router()


@router.get("/bots")
async def bots(request: Request, who: Viewer) -> Response:
    cp = plane_of(request)
    views = await bot_views(cp.db, cp.redis, cp.kill)
    async with cp.db.tenant(who.tenant_id) as conn:
        recent = await ticket_repo.recent_per_bot(conn, 5)
    work: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in recent:
        work[row["bot"]].append(row)
    return await page(request, "bots.html", title="Bots", bots=views, work=work,
                      online=sum(1 for b in views if b.status == "online"))
