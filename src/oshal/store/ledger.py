"""Ledger reads: rows and summaries, always inside a tenant transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from oshal.ledger.prices import Price
from oshal.store.db import Conn

SummaryBy = Literal["bot", "model", "tenant", "day"]
_GROUP = {
    "bot": "bot",
    "model": "provider || '/' || model",
    "tenant": "tenant_id::text",
    "day": "to_char(date_trunc('day', created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')",
}


async def rows(conn: Conn, *, ticket: UUID | None, bot: str | None, since: datetime | None,
               before: tuple[datetime, str] | None, limit: int) -> list[dict[str, Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for clause, value in (("ticket_id = %s", ticket), ("bot = %s", bot), ("created_at >= %s", since)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    if before is not None:
        clauses.append("(created_at, call_id) < (%s, %s)")
        params.extend(before)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    cur = await conn.execute(
        f"SELECT * FROM ledger{where} ORDER BY created_at DESC, call_id DESC LIMIT %s", (*params, limit))  # nosec B608 - only constant SQL fragments are interpolated
    return await cur.fetchall()


async def summary(conn: Conn, by: SummaryBy, since: datetime | None) -> list[dict[str, Any]]:
    where, params = ("WHERE created_at >= %s", (since,)) if since else ("", ())
    key = _GROUP[by]
    cur = await conn.execute(
        f"SELECT {key} AS key, count(*) AS calls, sum(input_tokens) AS input_tokens, "  # nosec B608 - only constant SQL fragments are interpolated
        f"sum(output_tokens) AS output_tokens, sum(cached_read_tokens) AS cached_read_tokens, "
        f"sum(cache_write_tokens) AS cache_write_tokens, sum(cost_micros) AS cost_micros "
        f"FROM ledger {where} GROUP BY 1 ORDER BY cost_micros DESC, key", params)
    return await cur.fetchall()


async def price_overrides(conn: Conn) -> list[Price]:
    cur = await conn.execute("SELECT * FROM prices")
    return [
        Price(r["provider"], r["model"], r["effective_from"], r["input_micros_per_mtok"],
              r["output_micros_per_mtok"], r["cached_read_micros_per_mtok"],
              r["cache_write_micros_per_mtok"])
        for r in await cur.fetchall()
    ]
