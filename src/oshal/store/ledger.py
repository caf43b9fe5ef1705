"""Ledger reads: rows and summaries, always inside a tenant transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from oshal.store.db import Conn

SummaryBy = Literal["bot", "model", "tenant", "day"]
_GROUP = {
    "bot": "bot",
    "model": "provider || '/' || model",
    "tenant": "tenant_id::text",
    "day": "to_char(date_trunc('day', at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')",
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
    """Totals over per-call rows and the daily roll-ups of older ones, so no total shrinks with retention."""
    where, params = ("WHERE at >= %s", (since,)) if since else ("", ())
    key = _GROUP[by]
    cur = await conn.execute(
        f"SELECT {key} AS key, sum(calls)::bigint AS calls, sum(input_tokens)::bigint AS input_tokens, "  # nosec B608 - only constant SQL fragments are interpolated
        f"sum(output_tokens)::bigint AS output_tokens, sum(cached_read_tokens)::bigint AS cached_read_tokens, "
        f"sum(cache_write_tokens)::bigint AS cache_write_tokens, sum(cost_micros)::bigint AS cost_micros "
        f"FROM ledger_totals {where} GROUP BY 1 ORDER BY cost_micros DESC, key", params)
    return await cur.fetchall()


async def spend_by_bot(conn: Conn, since: datetime) -> list[dict[str, Any]]:
    """Calls and cost per bot (``key``) from ``since`` on, most spent first: :func:`summary` without the token sums,
    so the per-call rows are read from the tenant's (tenant_id, created_at) index alone, which carries bot and cost
    (the console's overview reads this on every page load)."""
    cur = await conn.execute(
        "SELECT bot AS key, sum(calls)::bigint AS calls, sum(cost_micros)::bigint AS cost_micros FROM ledger_totals "
        "WHERE at >= %s GROUP BY 1 ORDER BY cost_micros DESC, key", (since,))
    return await cur.fetchall()


async def price_overrides(conn: Conn) -> list[dict[str, Any]]:
    """Every database price row. SELECT *: the per-type columns (reasoning, request fee, one-hour cache write) are
    optional, so this reads the table before and after the migrations that add them."""
    cur = await conn.execute("SELECT * FROM prices")
    return await cur.fetchall()


async def reconciliation(conn: Conn, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Per provider/model in [since, until): calls that carry both a reported and a computed cost, and their sums."""
    cur = await conn.execute(
        "SELECT provider, model, sum(both_calls)::bigint AS calls, sum(both_computed)::bigint AS computed, "
        "sum(both_reported)::bigint AS reported, "
        "sum(calls)::bigint AS all_calls FROM ledger_totals WHERE at >= %s AND at < %s "
        "GROUP BY provider, model ORDER BY provider, model", (since, until))
    return [r for r in await cur.fetchall() if r["calls"]]


async def insert_price(conn: Conn, price: dict[str, Any]) -> bool:
    cur = await conn.execute(
        "INSERT INTO prices (provider, model, effective_from, input_micros_per_mtok, output_micros_per_mtok, "
        "cached_read_micros_per_mtok, cache_write_micros_per_mtok, cache_write_1h_micros_per_mtok, "
        "reasoning_micros_per_mtok, request_micros) VALUES (%(provider)s, %(model)s, %(effective_from)s, %(input)s, "
        "%(output)s, %(cached_read)s, %(cache_write)s, %(cache_write_1h)s, %(reasoning)s, %(request)s) "
        "ON CONFLICT DO NOTHING RETURNING provider", price)
    return await cur.fetchone() is not None


# Per bot: the last hour's spend against the hourly average of the 7 days before it.
_HOURLY_SPEND = """
SELECT bot,
       coalesce(sum(cost_micros) FILTER (WHERE created_at >= now() - interval '1 hour'), 0) AS last_hour,
       coalesce(sum(cost_micros) FILTER (WHERE created_at < now() - interval '1 hour'), 0) / 168.0 AS baseline
  FROM ledger WHERE created_at >= now() - interval '169 hours' GROUP BY bot
"""
_PRICE_SOURCES = """
SELECT provider, model, count(*) FILTER (WHERE price_source = 'estimated') AS estimated,
       count(*) FILTER (WHERE price_source = 'provider') AS reported
  FROM ledger WHERE created_at >= now() - interval '24 hours' GROUP BY provider, model
"""
# Per bot and model over the last week: calls that cost more than their reservation held, and late results.
_UNCOVERED = """
SELECT bot, provider, model,
       count(*) FILTER (WHERE over_reservation_micros > 0) AS over_calls,
       coalesce(sum(over_reservation_micros), 0) AS over_micros,
       coalesce(max(over_reservation_micros), 0) AS largest_over,
       count(*) FILTER (WHERE settled_late) AS late_calls,
       coalesce(sum(cost_micros) FILTER (WHERE settled_late), 0) AS late_micros
  FROM ledger WHERE created_at >= now() - interval '7 days' AND (over_reservation_micros > 0 OR settled_late)
 GROUP BY bot, provider, model
"""


async def hourly_spend_by_bot(conn: Conn) -> list[dict[str, Any]]:
    """Per bot: ``last_hour`` (micros spent in the last hour) and ``baseline`` (the hourly average of the week
    before)."""
    cur = await conn.execute(_HOURLY_SPEND)
    return await cur.fetchall()


async def price_sources(conn: Conn) -> list[dict[str, Any]]:
    """Per provider and model over the last 24 hours: calls priced by ``estimated`` and by the provider
    (``reported``)."""
    cur = await conn.execute(_PRICE_SOURCES)
    return await cur.fetchall()


async def uncovered_cost(conn: Conn) -> list[dict[str, Any]]:
    """Per bot, provider and model over the last 7 days: cost above reservations and results settled late."""
    cur = await conn.execute(_UNCOVERED)
    return await cur.fetchall()


async def ticket_spend(conn: Conn, ticket: UUID) -> dict[str, Any]:
    """A ticket's calls, their cost, and how many were live (not answered from a recording)."""
    cur = await conn.execute("SELECT count(*) AS calls, coalesce(sum(cost_micros), 0) AS cost, "
                             "count(*) FILTER (WHERE price_source <> 'replay') AS live FROM ledger "
                             "WHERE ticket_id = %s", (ticket,))
    row = await cur.fetchone()
    assert row is not None
    return row


async def roll_up(conn: Conn, before: datetime) -> int:
    """Fold per-call rows older than ``before`` into daily totals; returns how many rows were folded."""
    cur = await conn.execute("SELECT oshal_rollup_ledger(%s) AS n", (before,))
    row = await cur.fetchone()
    return int(row["n"]) if row else 0
