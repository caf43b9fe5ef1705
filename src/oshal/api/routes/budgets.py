"""/v1/budgets (spend limits per tenant, bot, ticket type or ticket) and /v1/ledger/reconcile."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from oshal.api.deps import Budgets, Caller, Db, Operator, PlatformOperator, Prices, Registry, ReloadPrices
from oshal.audit import trail
from oshal.errors import Conflict, Invalid
from oshal.store import ledger as ledger_repo

router = APIRouter(prefix="/v1", tags=["budgets"])
DRIFT_FLAG = 0.005  # a provider/model whose reported cost differs from ours by more than 0.5% is flagged


class BudgetIn(BaseModel):
    """A tenant budget names no subject; a bot, type or ticket budget names one. soft_micros <= limit_micros."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"properties": {"scope": {"const": "tenant"}, "subject": {"const": ""}}},
        {"required": ["scope", "subject"], "properties": {"scope": {"enum": ["bot", "type", "ticket"]},
                                                          "subject": {"minLength": 1}}}]})
    scope: Literal["tenant", "bot", "type", "ticket"]
    subject: str = Field(default="", max_length=200, description="The bot, ticket type or ticket id; empty for "
                         "the tenant.")
    period: Literal["day", "month", "lifetime"]
    limit_micros: int = Field(ge=0, le=10**15, description="Micro-dollars: 1 USD = 1,000,000.")
    soft_micros: int | None = Field(default=None, ge=0, le=10**15, description="Notify when spend reaches this.")

    @model_validator(mode="after")
    def _consistent(self) -> BudgetIn:
        if self.soft_micros is not None and self.soft_micros > self.limit_micros:
            raise ValueError("soft_micros must not exceed limit_micros")
        if (self.scope == "tenant") != (self.subject == ""):
            raise ValueError("a tenant budget has no subject; a bot, type or ticket budget names one")
        return self


@router.put("/budgets")
async def set_budget(body: BudgetIn, budgets: Budgets, registry: Registry, who: Operator) -> dict[str, Any]:
    """Create or change the budget of (scope, subject, period); raising it resumes the work it paused."""
    if body.scope == "ticket":
        try:
            UUID(body.subject)
        except ValueError as e:
            raise Invalid(f"a ticket budget's subject must be a ticket id, not {body.subject!r}") from e
    if body.scope == "bot":
        await registry.require({body.subject})
    return await budgets.set(who.tenant_id, scope=body.scope, subject=body.subject, period=body.period,
                             limit_micros=body.limit_micros, soft_micros=body.soft_micros, by=who.key_id,
                             actor=who.actor)


@router.get("/budgets")
async def list_budgets(budgets: Budgets, who: Caller) -> list[dict[str, Any]]:
    """Every budget with its current window: spent, reserved (by calls in flight), remaining."""
    return await budgets.listing(who.tenant_id)


@router.get("/budgets/{budget_id}")
async def show_budget(budget_id: UUID, budgets: Budgets, who: Caller) -> dict[str, Any]:
    return await budgets.get(who.tenant_id, budget_id)


@router.delete("/budgets/{budget_id}", status_code=204)
async def delete_budget(budget_id: UUID, budgets: Budgets, who: Operator) -> Response:
    await budgets.delete(who.tenant_id, budget_id, actor=who.actor)
    return Response(status_code=204)


# $1M per million tokens: far above any real price, far below what would overflow a ledger row's bigint.
PRICE_MAX = 10**12


class PriceIn(BaseModel):
    provider: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=200, description="A model id, or * for every model of the provider.")
    effective_from: dt.datetime = Field(description="Calls from this time on use the price; earlier ones never "
                                        "change.")
    input: int = Field(ge=0, le=PRICE_MAX, description="Micro-dollars per million uncached input tokens.")
    output: int = Field(ge=0, le=PRICE_MAX, description="Micro-dollars per million output tokens.")
    cached_read: int = Field(default=0, ge=0, le=PRICE_MAX)
    cache_write: int = Field(default=0, ge=0, le=PRICE_MAX)
    cache_write_1h: int | None = Field(default=None, ge=0, le=PRICE_MAX)
    reasoning: int | None = Field(default=None, ge=0, le=PRICE_MAX,
                                  description="Per million reasoning tokens; unset: output.")
    request: int = Field(default=0, ge=0, le=PRICE_MAX, description="Micro-dollars per request.")


@router.post("/prices", status_code=201)
async def add_price(body: PriceIn, db: Db, reload_prices: ReloadPrices, who: PlatformOperator) -> dict[str, Any]:
    """Add an effective-dated price (a new row; rows are never changed, so past costs stay as they were)."""
    if body.effective_from.tzinfo is None:
        raise Invalid("effective_from needs a time zone", hint="e.g. 2026-12-01T00:00:00Z")
    async with db.system() as conn:
        inserted = await ledger_repo.insert_price(conn, body.model_dump())
        if not inserted:
            raise Conflict(f"{body.provider}/{body.model} already has a price from {body.effective_from.isoformat()}",
                           hint="prices are history: add one with a later effective_from")
        await trail.record(conn, trail.Entry(who.tenant_id, who.actor, "price.add", f"{body.provider}/{body.model}",
                                             body.model_dump(mode="json")))
    await reload_prices()  # this replica at once; others within a minute
    return body.model_dump(mode="json")


@router.get("/prices")
async def list_prices(prices: Prices, who: Caller) -> list[dict[str, Any]]:
    """Every price row in effect or scheduled (bundled and added), oldest first per model."""
    return [p.as_dict() for p in prices.rows()]


@router.get("/ledger/reconcile")
async def reconcile(db: Db, who: Caller,
                    since: Annotated[dt.datetime | None, Query(description="from (default: 30 days ago)")] = None,
                    until: Annotated[dt.datetime | None, Query(description="until (default: now)")] = None,
                    ) -> dict[str, Any]:
    """Per provider and model: the cost providers reported against the cost our prices compute, for the calls
    that have both; drift over 0.5% is flagged."""
    end = until or dt.datetime.now(dt.UTC)
    start = since or end - dt.timedelta(days=30)
    if start.tzinfo is None or end.tzinfo is None:
        raise Invalid("since and until need a time zone", hint="e.g. 2026-11-01T00:00:00Z")
    if start >= end:
        raise Invalid("since must be before until")
    async with db.tenant(who.tenant_id) as conn:
        rows = await ledger_repo.reconciliation(conn, start, end)
    report = []
    for row in rows:
        computed, reported = int(row["computed"]), int(row["reported"])
        drift = (reported - computed) / computed if computed else (0.0 if not reported else 1.0)
        report.append({**row, "drift": round(drift, 6), "flagged": abs(drift) > DRIFT_FLAG})
    return {"since": start.isoformat(), "until": end.isoformat(), "threshold": DRIFT_FLAG, "models": report,
            "flagged": sum(r["flagged"] for r in report)}
