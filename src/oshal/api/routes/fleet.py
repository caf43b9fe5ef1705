"""/v1/bots (registry + live lane state) and /v1/ledger (captured cost)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from oshal.api.deps import Caller, Db, Fleet, Kill, PlatformOperator, RedisClient
from oshal.api.schemas import (
    BotOut,
    LedgerEntry,
    LedgerPage,
    LedgerSummary,
    LedgerSummaryRow,
    usd,
)
from oshal.control.metrics import BOT_REPLICAS, LANE_LENGTH, LANE_PENDING
from oshal.errors import Invalid
from oshal.mesh import lanes
from oshal.mesh.redis_keys import lane_stream
from oshal.security.killswitch import KillSwitches
from oshal.store import access
from oshal.store import fleet_controls as fleet_repo
from oshal.store import ledger as ledger_repo
from oshal.store.db import Database

router = APIRouter(prefix="/v1", tags=["fleet"])


async def bot_views(db: Database, redis: Redis, kill: KillSwitches) -> list[BotOut]:
    await kill.load()
    async with db.system() as conn:
        rows = await access.bots(conn)
        orders = await fleet_repo.controls(conn)
    every = await lanes.fleet_stats(redis, [str(row["name"]) for row in rows])
    views = []
    for row in rows:
        manifest: dict[str, Any] = row["manifest"]
        name = str(row["name"])
        stats = every[name]
        LANE_LENGTH.labels(name).set(stats.length)
        LANE_PENDING.labels(name).set(stats.pending)
        BOT_REPLICAS.labels(name).set(stats.replicas)
        views.append(BotOut(
            name=name, description=str(row["description"]), harness=str(row["harness"]),
            provider=str(row["provider"]), model=str(row["model"]),
            capabilities=list(manifest.get("capabilities", [])), lane=lane_stream(name),
            status="online" if stats.replicas else "offline", replicas=stats.replicas,
            replicas_desired=_desired(row, orders.get(name)), concurrency=int(row["concurrency"]),
            pending=stats.pending, lag=stats.lag, kill_switch=kill.blocks(name),
        ))
    return views


def _desired(row: dict[str, Any], order: dict[str, Any] | None) -> int:
    """The replicas an operator ordered, else the manifest's."""
    if order is not None and order["replicas"] is not None:
        return int(order["replicas"])
    return int(row["replicas"])


@router.get("/bots", response_model=list[BotOut])
async def list_bots(db: Db, redis: RedisClient, kill: Kill, who: Caller) -> list[BotOut]:
    """Every registered bot with its lane, live status from heartbeats, replicas, pending and lag."""
    return await bot_views(db, redis, kill)


BotName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="A registered bot's name.")]


class FleetOrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500, description="Why; kept in the audit log.")


class ReplicasIn(FleetOrderIn):
    replicas: int | None = Field(ge=0, le=64, description="Processes consuming the lane; null: the manifest's.")


class FleetControlOut(BaseModel):
    bot: str
    replicas: int | None = Field(description="Ordered replicas; null: as the manifest says.")
    restart_seq: int = Field(description="How many restarts were ordered.")
    reason: str
    updated_by: str
    updated_at: dt.datetime | None
    applied_seq: int = Field(description="The last restart order the bot's runner carried out.")
    applied_replicas: int | None
    applied_at: dt.datetime | None
    applied_note: str


@router.get("/bots/{bot}/control", response_model=FleetControlOut)
async def bot_control(bot: BotName, fleet: Fleet, who: Caller) -> dict[str, Any]:
    """What operators ordered of the bot's processes and what its runner has applied."""
    return await fleet.state(bot)


@router.post("/bots/{bot}/restart", response_model=FleetControlOut, status_code=202)
async def restart_bot(bot: BotName, body: FleetOrderIn, fleet: Fleet, who: PlatformOperator) -> dict[str, Any]:
    """Order a restart of the bot's processes (drained: in-flight work finishes or is taken over, nothing is
    lost). Accepted, not done: ``applied_seq`` reaches ``restart_seq`` once the bot's runner has restarted it."""
    return await fleet.restart(bot, reason=body.reason, actor=who.actor, tenant=who.tenant_id)


@router.put("/bots/{bot}/replicas", response_model=FleetControlOut, status_code=202)
async def scale_bot(bot: BotName, body: ReplicasIn, fleet: Fleet, who: PlatformOperator) -> dict[str, Any]:
    """Order how many replicas consume the bot's lane (``applied_replicas`` follows once applied)."""
    return await fleet.scale(bot, body.replicas, reason=body.reason, actor=who.actor, tenant=who.tenant_id)


@router.get("/ledger", response_model=LedgerPage)
async def ledger_rows(
    db: Db, who: Caller,
    ticket: Annotated[UUID | None, Query()] = None,
    bot: Annotated[str | None, Query(max_length=40)] = None,
    since: Annotated[dt.datetime | None, Query(description="ISO 8601 time")] = None,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> LedgerPage:
    """One row per model call: tokens, cost in micro-dollars, and whether the price was reported or estimated."""
    before = _parse_cursor(cursor) if cursor else None
    async with db.tenant(who.tenant_id) as conn:
        rows = await ledger_repo.rows(conn, ticket=ticket, bot=bot, since=since, before=before, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    return LedgerPage(items=[LedgerEntry.model_validate(r) for r in rows],
                      next_cursor=f"{last['created_at'].isoformat()}|{last['call_id']}" if more and last else None)


def _parse_cursor(cursor: str) -> tuple[dt.datetime, str]:
    stamp, _, call_id = cursor.partition("|")
    try:
        return dt.datetime.fromisoformat(stamp), call_id
    except ValueError as e:
        raise Invalid(f"cursor {cursor!r} is not a ledger cursor",
                      hint="pass next_cursor from the previous page") from e


@router.get("/ledger/summary", response_model=LedgerSummary)
async def ledger_summary(
    db: Db, who: Caller,
    by: Annotated[ledger_repo.SummaryBy, Query()] = "bot",
    since: Annotated[dt.datetime | None, Query(description="ISO 8601 time")] = None,
) -> LedgerSummary:
    async with db.tenant(who.tenant_id) as conn:
        rows = await ledger_repo.summary(conn, by, since)
    out = [LedgerSummaryRow(key=str(r["key"]), calls=int(r["calls"]),
                            input_tokens=int(r["input_tokens"] or 0),
                            output_tokens=int(r["output_tokens"] or 0),
                            cached_read_tokens=int(r["cached_read_tokens"] or 0),
                            cache_write_tokens=int(r["cache_write_tokens"] or 0),
                            cost_micros=int(r["cost_micros"] or 0),
                            cost_usd=usd(int(r["cost_micros"] or 0)))
           for r in rows]
    total = sum(r.cost_micros for r in out)
    return LedgerSummary(by=by, rows=out, total_micros=total, total_usd=usd(total))
