"""The console overview's reads on real Postgres, as the API role under RLS: the last day's tickets by status and
UTC hour finished, today's spend per bot, and that each is answered from an index alone (migration 017), so a
page load does not visit a heap row per ticket or per call."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, cast

from conftest import Core
from oshal.store import ledger as ledger_repo
from oshal.store import tickets as ticket_repo
from oshal.store.db import Conn
from oshal.types import first_id_at

_LEDGER = ("INSERT INTO ledger (call_id, tenant_id, ticket_id, phase_id, attempt, bot, provider, model, input_tokens, "
           "output_tokens, cost_micros, price_source, created_at) "
           "VALUES (%s, %s, %s, %s, 1, %s, 'openai', 'gpt-4o-mini', 100, 10, %s, 'estimated', %s)")


class _Planned:
    """A connection that answers each statement with its plan: EXPLAIN of the very SQL a read sends."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def execute(self, query: str, params: Any = None) -> Any:
        return await self.conn.execute("EXPLAIN " + query, params)


async def _plan(core: Core, tenant: uuid.UUID, read: Any) -> str:
    """The plan of ``read``'s statement, with scans that visit the heap ruled out: it must still find a plan."""
    async with core.db.tenant(tenant) as conn:
        await conn.execute("SET LOCAL enable_seqscan = off")
        await conn.execute("SET LOCAL enable_bitmapscan = off")
        rows = await read(cast(Conn, _Planned(conn)))
    return "\n".join(str(row["QUERY PLAN"]) for row in rows)


def _window_start() -> uuid.UUID:
    return first_id_at(int((dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).timestamp() * 1000))


async def test_the_days_tickets_count_by_status_and_utc_hour_whatever_the_sessions_time_zone(core: Core) -> None:
    tenant = await core.new_tenant("overview-activity")
    made = await core.dispatched(tenant, "unit-a", [{"n": n} for n in range(5)])
    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=2)
    finished = [("done", hour + dt.timedelta(minutes=40)), ("done", hour + dt.timedelta(minutes=50)),
                ("done", hour + dt.timedelta(minutes=70)), ("failed", hour + dt.timedelta(minutes=5))]
    with core.superuser() as owner:
        for (ticket, _), (status, at) in zip(made, finished, strict=False):
            owner.execute("UPDATE tickets SET status = %s, finished_at = %s WHERE id = %s", (status, at, ticket))

    async with core.db.tenant(tenant) as conn:
        await conn.execute("SET LOCAL TIME ZONE 'Asia/Kolkata'")  # UTC+05:30: its hours are not UTC hours
        rows = await ticket_repo.activity(conn, _window_start())

    counted = {(r["status"], r["hour"]): r["n"] for r in rows}
    assert counted == {("done", hour): 2, ("done", hour + dt.timedelta(hours=1)): 1, ("failed", hour): 1,
                       ("in_progress", None): 1}
    async with core.db.tenant(await core.new_tenant("overview-other")) as conn:
        assert await ticket_repo.activity(conn, _window_start()) == []  # another tenant's are not counted


async def test_todays_spend_per_bot_is_the_summarys_calls_and_cost(core: Core) -> None:
    tenant = await core.new_tenant("overview-spend")
    now = dt.datetime.now(dt.UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    calls = [("unit-a", 100, now), ("unit-a", 250, now), ("unit-b", 400, now),
             ("unit-a", 7000, today - dt.timedelta(minutes=1))]  # yesterday's
    with core.superuser() as owner:
        for bot, cost, at in calls:
            owner.execute(_LEDGER, (f"test:{uuid.uuid4()}", tenant, uuid.uuid4(), uuid.uuid4(), bot, cost, at))
        owner.execute("INSERT INTO ledger_daily (tenant_id, day, bot, provider, model, price_source, calls, "
                      "input_tokens, output_tokens, cached_read_tokens, cache_write_tokens, reasoning_tokens, "
                      "cost_micros, computed_cost_micros, reported_cost_micros) "
                      "VALUES (%s, %s, 'unit-b', 'openai', 'gpt-4o-mini', 'estimated', 3, 0, 0, 0, 0, 0, 30, 30, 0)",
                      (tenant, today.date()))

    async with core.db.tenant(tenant) as conn:
        spend = await ledger_repo.spend_by_bot(conn, today)
        summary = await ledger_repo.summary(conn, "bot", today)

    assert [(r["key"], r["calls"], r["cost_micros"]) for r in spend] == [("unit-b", 4, 430), ("unit-a", 2, 350)]
    assert spend == [{k: r[k] for k in ("key", "calls", "cost_micros")} for r in summary]


async def test_the_overviews_reads_are_answered_from_an_index_alone(core: Core) -> None:
    tenant = await core.new_tenant("overview-plans")
    [(ticket, phase)] = await core.dispatched(tenant, "unit-a", [{"n": 1}])
    with core.superuser() as owner:
        owner.execute(_LEDGER, ("test:plan", tenant, ticket, phase, "unit-a", 10, dt.datetime.now(dt.UTC)))
        owner.execute("VACUUM (ANALYZE) tickets, ledger")  # the visibility map an index-only scan relies on
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)

    activity = await _plan(core, tenant, lambda conn: ticket_repo.activity(conn, _window_start()))
    spend = await _plan(core, tenant, lambda conn: ledger_repo.spend_by_bot(conn, today))

    assert "Index Only Scan using tickets_tenant_id on tickets" in activity, activity
    assert "Index Only Scan using ledger_tenant_created on ledger" in spend, spend
    assert "Seq Scan" not in activity + spend and "Disabled" not in activity + spend, activity + spend

