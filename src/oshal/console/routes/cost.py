"""Cost: spend by bot, model and day (and by tenant, for platform operators), with budgets and what is left."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import Request, Response

from oshal.console.charts import Bar, bars, meter
from oshal.console.render import page, usd
from oshal.console.routes.common import console_router
from oshal.console.session import Viewer, plane_of
from oshal.control.plane import ControlPlane
from oshal.store import access
from oshal.store import ledger as ledger_repo

router = console_router()
_DAYS = 30


@router.get("/cost")
async def cost(request: Request, who: Viewer) -> Response:
    cp = plane_of(request)
    since = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=_DAYS - 1)
    async with cp.db.tenant(who.tenant_id) as conn:
        by_bot = await ledger_repo.summary(conn, "bot", since)
        by_model = await ledger_repo.summary(conn, "model", since)
        by_day = {str(r["key"])[:10]: int(r["cost_micros"] or 0) for r in await ledger_repo.summary(conn, "day", since)}
    budgets = await cp.budgets.listing(who.tenant_id)
    days = [(since + dt.timedelta(days=i)).date().isoformat() for i in range(_DAYS)]
    daily = bars([Bar(d[5:], by_day.get(d, 0) / 1_000_000, f"{d}: {usd(by_day.get(d, 0))}") for d in days],
                 title=f"Spend per day, last {_DAYS} days (USD)", unit=" USD")
    tenants: list[dict[str, Any]] = []
    if request.state.platform_operator:
        tenants = await _by_tenant(cp, since)
    for b in budgets:
        b["meter"] = meter(int(b["spent"]) + int(b["reserved"]), int(b["limit_micros"]),
                           label=f"{b['scope']} {b['subject']} {b['period']} used")
    return await page(request, "cost.html", title="Cost", by_bot=by_bot, by_model=by_model, daily=daily,
                      total=sum(int(r["cost_micros"] or 0) for r in by_bot), budgets=budgets, tenants=tenants,
                      days=_DAYS)


async def _by_tenant(cp: ControlPlane, since: dt.datetime) -> list[dict[str, Any]]:
    """Each tenant's spend, read inside that tenant's own scope (a platform operator's view)."""
    async with cp.db.system() as conn:
        tenants = await access.list_tenants(conn)
    out = []
    for tenant in tenants:
        async with cp.db.tenant(tenant["id"]) as conn:
            rows = await ledger_repo.summary(conn, "tenant", since)
        out.append({"name": tenant["name"], "calls": sum(int(r["calls"] or 0) for r in rows),
                    "cost_micros": sum(int(r["cost_micros"] or 0) for r in rows)})
    return sorted(out, key=lambda t: (-t["cost_micros"], t["name"]))
