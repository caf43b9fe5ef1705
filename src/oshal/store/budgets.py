"""Budgets, their usage per window, and reservations (inside tenant transactions)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from oshal.store.db import Conn, Statement

# Each budget with what its current window has spent and holds reserved.
_WITH_USAGE = """
SELECT b.*, oshal_window(b.period, now()) AS window_start, coalesce(u.spent, 0) AS spent,
       coalesce(u.reserved, 0) AS reserved,
       greatest(b.limit_micros - coalesce(u.spent, 0) - coalesce(u.reserved, 0), 0) AS remaining
  FROM budgets b
  LEFT JOIN budget_usage u ON u.budget_id = b.id AND u.window_start = oshal_window(b.period, now())
"""


async def upsert(conn: Conn, *, budget_id: UUID, tenant: UUID, scope: str, subject: str, period: str,
                 limit_micros: int, soft_micros: int | None, by: UUID) -> dict[str, Any]:
    cur = await conn.execute(
        "INSERT INTO budgets (id, tenant_id, scope, subject, period, limit_micros, soft_micros, created_by) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (tenant_id, scope, subject, period) DO UPDATE SET "
        "limit_micros = EXCLUDED.limit_micros, soft_micros = EXCLUDED.soft_micros, created_by = EXCLUDED.created_by, "
        "updated_at = now(), overrun_at = NULL, overrun_micros = NULL, overrun_reason = NULL RETURNING id",
        (budget_id, tenant, scope, subject, period, limit_micros, soft_micros, by))
    row = await cur.fetchone()
    assert row is not None
    found = await get(conn, row["id"])
    assert found is not None
    return found


async def listing(conn: Conn) -> list[dict[str, Any]]:
    cur = await conn.execute(_WITH_USAGE + " ORDER BY b.scope, b.subject, b.period")
    return await cur.fetchall()


async def get(conn: Conn, budget_id: UUID) -> dict[str, Any] | None:
    cur = await conn.execute(_WITH_USAGE + " WHERE b.id = %s", (budget_id,))
    return await cur.fetchone()


async def delete(conn: Conn, budget_id: UUID) -> bool:
    cur = await conn.execute("DELETE FROM budgets WHERE id = %s RETURNING id", (budget_id,))
    return await cur.fetchone() is not None


def reserve(tenant: UUID, reservation: UUID, ticket: UUID, bot: str, amount: int, *,
            ttl_s: float, max_calls: int, window_s: float) -> Statement:
    """One statement: reserve ``amount`` against every budget above the call, or none (see oshal_reserve)."""
    return ("SELECT * FROM oshal_reserve(%s, %s, %s, %s, %s, %s, %s, %s)",
            (tenant, reservation, ticket, bot, amount, ttl_s, max_calls, window_s))


def resume_fitting(tenants: list[UUID] | None, limit: int, hold_s: float) -> Statement:
    """One statement (across tenants): budget-paused tickets that fit their budgets' room now, oldest first, each
    with its estimated next call held for it (see oshal_budget_resume)."""
    return "SELECT * FROM oshal_budget_resume(%s::uuid[], %s, %s)", (tenants, limit, hold_s)


def overruns_since(since: dt.datetime) -> Statement:
    """Budgets (across tenants) marked overrun after ``since``."""
    return "SELECT * FROM oshal_budget_overruns(%s)", (since,)


async def reservations_of(conn: Conn, ticket: UUID) -> list[dict[str, Any]]:
    cur = await conn.execute("SELECT * FROM reservations WHERE ticket_id = %s ORDER BY created_at", (ticket,))
    return await cur.fetchall()


async def exhausted_for(conn: Conn, ticket: UUID, ticket_type: str | None, bots: list[str]) -> str | None:
    """Why work for ``bots`` on this ticket may not be dispatched now (a budget above it has nothing left)."""
    cur = await conn.execute(
        "SELECT format('budget: %%s%%s budget (%%s) is exhausted: %%s of %%s micro-dollars used', b.scope, "
        "CASE WHEN b.subject = '' THEN '' ELSE ' ' || b.subject END, b.period, coalesce(u.spent + u.reserved, 0), "
        "b.limit_micros) AS why FROM budgets b LEFT JOIN budget_usage u ON u.budget_id = b.id "
        "AND u.window_start = oshal_window(b.period, now()) "
        "WHERE coalesce(u.spent + u.reserved, 0) >= b.limit_micros AND (b.scope = 'tenant' "
        "OR (b.scope = 'bot' AND b.subject = ANY(%s)) OR (b.scope = 'type' AND b.subject = %s) "
        "OR (b.scope = 'ticket' AND b.subject = %s)) LIMIT 1", (bots, ticket_type, str(ticket)))
    row = await cur.fetchone()
    return None if row is None else str(row["why"])


async def overrun(conn: Conn) -> list[dict[str, Any]]:
    """Budgets that cost no reservation covered (a late result, usage above its reservation) took past their limit:
    open (and their scope paused) until an operator sets the budget again."""
    cur = await conn.execute(
        "SELECT id, scope, subject, period, limit_micros, overrun_at, overrun_micros, overrun_reason "
        "FROM budgets WHERE overrun_at IS NOT NULL")
    return await cur.fetchall()


async def expire_reservations(conn: Conn, limit: int) -> int:
    """Release what calls that never reported still hold (at most ``limit`` reservations); returns how many."""
    cur = await conn.execute("SELECT oshal_expire_reservations(%s) AS n", (limit,))
    row = await cur.fetchone()
    return int(row["n"]) if row else 0
