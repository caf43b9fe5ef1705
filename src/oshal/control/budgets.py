"""Budgets: set and read them, reserve a model call's maximum cost against every budget above it, pause work a
budget cannot pay for and resume it whenever room returns, release reservations of calls that never reported, and
report budgets that cost no reservation covered took past their limit (overruns).

Settlement is not here: the collector settles a call's reservation with its cost in the same statement that
writes the ledger row, so cost is captured once; it then asks here to resume what the room it freed now fits.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from redis.asyncio import Redis

from oshal.audit import trail
from oshal.control.ticket_actions import BUDGET_REASON, RUNAWAY_REASON, Lifecycle
from oshal.errors import BudgetExceeded, Invalid, NotFound
from oshal.ledger import PriceTable
from oshal.ledger.budgets import max_call_cost
from oshal.logs import get_logger
from oshal.settings import Settings
from oshal.store import budgets as repo
from oshal.store import ledger as ledger_repo
from oshal.store.db import Database
from oshal.types import new_id

log = get_logger(__name__)
SCOPES = ("tenant", "bot", "type", "ticket")
PERIODS = ("day", "month", "lifetime")
NOTIFY_CHANNEL = "oshal:budget"
_RESUME_BATCH = 200
_RESUME_SAFETY_NET_S = 60.0  # a freed room whose resume pass was lost (a crash in between) waits at most this


@dataclass(frozen=True, slots=True)
class Reservation:
    id: UUID
    amount: int


class BudgetService:
    def __init__(self, db: Database, redis: Redis, prices: Callable[[], PriceTable], lifecycle: Lifecycle,
                 settings: Settings) -> None:
        self.db = db
        self.redis = redis
        self.prices = prices
        self.lifecycle = lifecycle
        self.settings = settings
        self.on_overrun: Callable[[], Awaitable[object]] | None = None  # e.g. run the spend scan at once
        self._overruns_seen = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._swept_day: dt.date | None = None
        self._full_pass_at = 0.0

    # --- operators ---------------------------------------------------------------------------------------------

    async def set(self, tenant: UUID, *, scope: str, subject: str, period: str, limit_micros: int,
                  soft_micros: int | None, by: UUID, actor: str) -> dict[str, Any]:
        """Create or change a budget; raising one resumes the work it had paused."""
        if scope not in SCOPES or period not in PERIODS:
            raise Invalid(f"scope must be one of {', '.join(SCOPES)} and period one of {', '.join(PERIODS)}")
        if (scope == "tenant") != (subject == ""):
            raise Invalid("a tenant budget has no subject; a bot, type or ticket budget names one",
                          hint="e.g. --scope bot --subject summarizer")
        if limit_micros < 0 or (soft_micros is not None and not 0 <= soft_micros <= limit_micros):
            raise Invalid("the limit must be >= 0 and the soft threshold between 0 and the limit")
        async with self.db.tenant(tenant) as conn:
            row = await repo.upsert(conn, budget_id=new_id(), tenant=tenant, scope=scope, subject=subject,
                                    period=period, limit_micros=limit_micros, soft_micros=soft_micros, by=by)
            await trail.record(conn, trail.Entry(tenant, actor, "budget.set", f"{scope}:{subject}:{period}",
                                                 {"limit_micros": limit_micros, "soft_micros": soft_micros}))
        await self.resume([tenant])
        return row

    async def listing(self, tenant: UUID) -> list[dict[str, Any]]:
        async with self.db.tenant(tenant) as conn:
            return await repo.listing(conn)

    async def get(self, tenant: UUID, budget_id: UUID) -> dict[str, Any]:
        async with self.db.tenant(tenant) as conn:
            row = await repo.get(conn, budget_id)
        if row is None:
            raise NotFound(f"budget {budget_id} not found", hint="list them with `oshal budget list`")
        return row

    async def delete(self, tenant: UUID, budget_id: UUID, *, actor: str) -> None:
        async with self.db.tenant(tenant) as conn:
            if not await repo.delete(conn, budget_id):
                raise NotFound(f"budget {budget_id} not found")
            await trail.record(conn, trail.Entry(tenant, actor, "budget.delete", str(budget_id), {}))
        await self.resume([tenant])

    # --- the call path -----------------------------------------------------------------------------------------

    async def reserve(self, tenant: UUID, ticket: UUID, bot: str, *, provider: str, model: str, input_bytes: int,
                      max_output_tokens: int) -> Reservation:
        """Hold the call's maximum cost against every budget above it, or refuse it before it is made (and pause
        the ticket: it resumes when the budget allows)."""
        price = self.prices().lookup(provider, model, dt.datetime.now(dt.UTC))
        amount = max_call_cost(price, input_bytes=input_bytes, max_output_tokens=max_output_tokens)
        reservation = new_id()
        s = self.settings
        [row] = await self.db.call(repo.reserve(tenant, reservation, ticket, bot, amount,
                                                ttl_s=s.reservation_ttl_s, max_calls=s.max_model_calls,
                                                window_s=s.max_model_calls_window_s))
        if row["ok"]:
            if row["soft_crossed"]:
                await self._soft_threshold(tenant, list(row["soft_crossed"]))
            return Reservation(reservation, amount)
        message = _refusal(row, amount)
        runaway = row["reason"] == "runaway"
        await self.lifecycle.budget_refused(tenant, ticket, f"{RUNAWAY_REASON if runaway else BUDGET_REASON}: "
                                                            f"{message}")
        if row["released_hold"]:  # the room held for this ticket went back: others may fit it
            await self.resume([tenant])
        raise BudgetExceeded(message, hint=_HINTS[row["reason"]])

    async def _soft_threshold(self, tenant: UUID, budgets: list[UUID]) -> None:
        for budget in budgets:
            row = await self.get(tenant, budget)
            message = {"tenant": str(tenant), "budget": str(budget), "scope": row["scope"],
                       "subject": row["subject"], "period": row["period"], "spent": row["spent"],
                       "reserved": row["reserved"], "soft_micros": row["soft_micros"],
                       "limit_micros": row["limit_micros"]}
            log.warning("budget soft threshold crossed", **message)
            await self.redis.publish(NOTIFY_CHANNEL, json.dumps(message))

    # --- background --------------------------------------------------------------------------------------------

    async def expire(self, limit: int = 1000) -> int:
        """Release what calls that never reported still hold (the sweeper runs this)."""
        async with self.db.system() as conn:
            return await repo.expire_reservations(conn, limit)

    async def resume(self, tenants: Iterable[UUID] | None = None, limit: int = _RESUME_BATCH) -> int:
        """Resume budget-paused tickets (of ``tenants``, or all) that fit the room their budgets have now, oldest
        first: each one's next call is estimated by what its refused call asked, and that much is held for it until
        the call takes it over. Called whenever room may have returned; cheap when nothing is paused."""
        wanted = None if tenants is None else sorted(set(tenants))
        rows = await self.db.call_in_platform_scope(repo.resume_fitting(wanted, limit, self.settings.reservation_ttl_s))
        resumed = 0
        for row in rows:
            resumed += await self.lifecycle.resume_after_budget(row["tenant_id"], row["ticket_id"])
        if resumed:
            log.info("budget-paused tickets resumed: their budgets have room again", tickets=resumed)
        return resumed

    async def after_settlement(self, tenants: Iterable[UUID]) -> int:
        """The collector committed calls that settled (most below their reservation) or attempts that failed (a
        refused call's attempt reporting makes its paused ticket resumable): resume what now fits."""
        try:
            return await self.resume(tenants)
        except Exception:  # the sweeper's safety-net pass resumes them; a result batch is never failed for this
            log.exception("resuming budget-paused tickets after a settlement failed")
            return 0

    async def sweep(self) -> int:
        """The sweeper's pass: release what calls that never reported still hold, then resume what fits when that
        released anything, a new day (and so maybe a new window) began, or a minute passed (a safety net for a
        resume lost to a crash); report new overruns. Returns how many tickets resumed."""
        released = await self.expire()
        today = dt.datetime.now(dt.UTC).date()
        rolled, self._swept_day = self._swept_day is not None and today != self._swept_day, today
        resumed = 0
        if released or rolled or time.monotonic() - self._full_pass_at >= _RESUME_SAFETY_NET_S:
            self._full_pass_at = time.monotonic()
            resumed = await self.resume()
        await self.report_overruns()
        return resumed

    async def report_overruns(self) -> int:
        """Budgets newly marked overrun: log them and have the spend scan file its finding at once."""
        rows = await self.db.call_in_platform_scope(repo.overruns_since(self._overruns_seen))
        for row in rows:
            log.error("budget overrun: cost no reservation covered took it past its limit; its scope is paused "
                      "until an operator sets it again", tenant=str(row["tenant_id"]), budget=str(row["budget_id"]),
                      over_micros=row["overrun_micros"], reason=row["reason"])
            self._overruns_seen = max(self._overruns_seen, row["overrun_at"])
        if rows and self.on_overrun is not None:
            await self.on_overrun()
        return len(rows)

    async def roll_up(self) -> int:
        """Fold per-call ledger rows older than the retention into daily totals."""
        before = dt.datetime.now(dt.UTC) - dt.timedelta(days=self.settings.ledger_retention_days)
        async with self.db.system() as conn:
            return await ledger_repo.roll_up(conn, before)


_HINTS = {
    "budget": "the ticket resumes when its budget has room again (a call settling, a new window, or `oshal budget "
              "set`)",
    "overrun": "review the overrun finding (`oshal security findings`), then set the budget again (`oshal budget "
               "set`) and the ticket resumes",
    "runaway": "resume the ticket if these calls are intended",
}


def _refusal(row: dict[str, Any], amount: int) -> str:
    if row["reason"] == "runaway":
        return (f"this ticket made {row['limit_micros']} model calls within the runaway window; no more are "
                "allowed until an operator resumes it")
    subject = f" {row['subject']}" if row["subject"] else ""
    if row["reason"] == "overrun":
        return (f"{row['scope']}{subject} budget ({row['period']}) of ${row['limit_micros'] / 1e6:,.6f} was overrun "
                "by cost no reservation covered; its calls are paused until an operator sets it again")
    return (f"{row['scope']}{subject} budget ({row['period']}) of ${row['limit_micros'] / 1e6:,.6f} has "
            f"${row['remaining'] / 1e6:,.6f} left; this call may cost up to ${amount / 1e6:,.6f}")
