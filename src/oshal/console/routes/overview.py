"""The overview: the fleet, the last 24 hours of work and spend, what waits for an operator, open findings."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from fastapi import Request, Response

from oshal.api.routes.fleet import bot_views
from oshal.console.charts import Bar, bars
from oshal.console.render import page
from oshal.console.routes.common import console_router
from oshal.console.session import Viewer, plane_of
from oshal.store import connectors as connector_repo
from oshal.store import ledger as ledger_repo
from oshal.store import tickets as ticket_repo
from oshal.types import TERMINAL_STATUSES, first_id_at

router = console_router()
_FAILED = ("failed", "dead_letter", "escalated")


@router.get("/")
async def overview(request: Request, who: Viewer) -> Response:
    cp = plane_of(request)
    now = dt.datetime.now(dt.UTC)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    window_start = (now - dt.timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
    async with cp.db.tenant(who.tenant_id) as conn:
        activity = await ticket_repo.activity(conn, first_id_at(int(window_start.timestamp() * 1000)))
        gates = await ticket_repo.awaiting_approval(conn, 100)
        tool_approvals = await connector_repo.approvals(conn, "pending")
        spend = await ledger_repo.spend_by_bot(conn, day_start)
    bots = await bot_views(cp.db, cp.redis, cp.kill)
    findings = await cp.security.summary() if request.state.platform_operator else None
    by_status: Counter[str] = Counter()
    per_hour: Counter[dt.datetime] = Counter()
    for row in activity:
        by_status[row["status"]] += row["n"]
        if row["hour"] is not None and row["status"] == "done":
            per_hour[row["hour"]] += row["n"]
    hours = [window_start + dt.timedelta(hours=i) for i in range(24)]
    chart = bars([Bar(h.strftime("%H:00"), per_hour.get(h, 0), f"{h:%H:00} UTC: {per_hour.get(h, 0)} done")
                  for h in hours], title="Tickets done per hour, last 24 hours (UTC)")
    total = sum(by_status.values())
    cost = sum(int(r["cost_micros"] or 0) for r in spend)
    stats: dict[str, Any] = {
        "created": total, "done": by_status.get("done", 0),
        "open": sum(n for s, n in by_status.items() if s not in TERMINAL_STATUSES),
        "failed": sum(by_status.get(s, 0) for s in _FAILED), "cost_today": cost,
        "calls_today": sum(int(r["calls"] or 0) for r in spend),
    }
    online = sum(1 for b in bots if b.status == "online")
    return await page(request, "overview.html", title="Overview", stats=stats, by_status=sorted(by_status.items()),
                      chart=chart, bots=bots, online=online, gates=gates, tool_approvals=tool_approvals,
                      spend=spend[:5], findings=findings)
