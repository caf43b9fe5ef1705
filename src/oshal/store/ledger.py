"""Ledger reads: rows and summaries, always inside a tenant transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from oshal.store.db import Conn

SummaryBy = Literal["bot", "model", "tenant", "day"]
_SUMS = ("calls", "input_tokens", "output_tokens", "cached_read_tokens", "cache_write_tokens", "cost_micros")
_GROUP = {
    "bot": "bot",
    "model": "provider || '/' || model",
    "tenant": "tenant_id::text",
    "day": "to_char(date_trunc('day', at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')",
}


# The ledger_totals view's columns, per source: a per-call row (ledger) and a day's total (ledger_daily).
_PER_CALL = {
    "at": "created_at", "calls": "1::bigint",
    "computed_cost_micros": "coalesce(computed_cost_micros, 0)",
    "reported_cost_micros": "coalesce(reported_cost_micros, 0)",
    "both_calls": "(computed_cost_micros IS NOT NULL AND reported_cost_micros IS NOT NULL)::int::bigint",
    "both_computed": "CASE WHEN reported_cost_micros IS NOT NULL THEN coalesce(computed_cost_micros, 0) ELSE 0 END",
    "both_reported": "CASE WHEN computed_cost_micros IS NOT NULL THEN coalesce(reported_cost_micros, 0) ELSE 0 END",
}
_PER_DAY = {"at": "day::timestamp AT TIME ZONE 'UTC'"}
_CUTOFF = "(SELECT ledger_before FROM rollup_cutoff WHERE id)"  # WHERE id: its key, not a scan
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


def _totals(columns: tuple[str, ...], since: datetime | None, until: datetime | None) -> tuple[str, dict[str, Any]]:
    """A query of ``columns`` (as the ledger_totals view names them) over the calls in [since, until), exactly:
    the daily totals of the whole days inside the window, and the per-call rows of every call no such total
    holds, which are those from the roll-up cut-off on and those of a day the window starts or ends inside (the
    per-call rows outlive the cut-off by the retention). Every part is a range of the tenant's (tenant_id,
    created_at) index or of ledger_daily's key. The cut-off is read in the same statement (one snapshot)."""
    since, until = since or _EARLIEST, until or _LATEST
    first_day = _day(since) if _day(since) == since else _day(since) + timedelta(days=1)  # the first whole day
    end_day = max(_day(until), first_day)  # whole days are [first_day, end_day)
    call = ", ".join(f"{_PER_CALL.get(c, c)} AS {c}" for c in columns)
    day = ", ".join(f"{_PER_DAY.get(c, c)} AS {c}" for c in columns)
    params = {"since": since, "until": until, "first_day": min(first_day, until), "end_day": end_day,
              "first_date": first_day.date(), "end_date": end_day.date()}
    # Each range has constant bounds (which the planner estimates from the statistics) and the cut-off as a further
    # bound (an init plan, known only when the statement runs).
    return (f"SELECT {day} FROM ledger_daily WHERE day >= %(first_date)s AND day < %(end_date)s "  # nosec B608 - only constant SQL fragments are interpolated
            f"UNION ALL SELECT {call} FROM ledger WHERE created_at >= %(since)s::timestamptz "
            f"AND created_at < %(until)s::timestamptz AND created_at >= {_CUTOFF} "
            f"UNION ALL SELECT {call} FROM ledger WHERE created_at >= %(since)s::timestamptz "
            f"AND created_at < %(first_day)s::timestamptz AND created_at < {_CUTOFF} "
            f"UNION ALL SELECT {call} FROM ledger WHERE created_at >= %(end_day)s::timestamptz "
            f"AND created_at < %(until)s::timestamptz AND created_at < {_CUTOFF}"), params


def _day(at: datetime) -> datetime:
    """The UTC midnight at or before ``at``."""
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


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
    totals, params = _totals(("at", "bot", "provider", "model", "tenant_id", *_SUMS), since, None)
    key = _GROUP[by]
    cur = await conn.execute(
        f"SELECT {key} AS key, sum(calls)::bigint AS calls, sum(input_tokens)::bigint AS input_tokens, "  # nosec B608 - only constant SQL fragments are interpolated
        f"sum(output_tokens)::bigint AS output_tokens, sum(cached_read_tokens)::bigint AS cached_read_tokens, "
        f"sum(cache_write_tokens)::bigint AS cache_write_tokens, sum(cost_micros)::bigint AS cost_micros "
        f"FROM ({totals}) totals GROUP BY 1 ORDER BY cost_micros DESC, key", params)
    return await cur.fetchall()


async def spend_by_bot(conn: Conn, since: datetime) -> list[dict[str, Any]]:
    """Calls and cost per bot (``key``) from ``since`` on, most spent first: :func:`summary` without the token sums,
    so the per-call rows are read from the tenant's (tenant_id, created_at) index alone, which carries bot and cost
    (the console's overview reads this on every page load)."""
    totals, params = _totals(("bot", "calls", "cost_micros"), since, None)
    cur = await conn.execute(
        f"SELECT bot AS key, sum(calls)::bigint AS calls, sum(cost_micros)::bigint AS cost_micros FROM ({totals}) t "  # nosec B608 - only constant SQL fragments are interpolated
        "GROUP BY 1 ORDER BY cost_micros DESC, key", params)
    return await cur.fetchall()


async def price_overrides(conn: Conn) -> list[dict[str, Any]]:
    """Every database price row. SELECT *: the per-type columns (reasoning, request fee, one-hour cache write) are
    optional, so this reads the table before and after the migrations that add them."""
    cur = await conn.execute("SELECT * FROM prices")
    return await cur.fetchall()


async def reconciliation(conn: Conn, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Per provider/model in [since, until): calls that carry both a reported and a computed cost, and their sums."""
    totals, params = _totals(("provider", "model", "calls", "both_calls", "both_computed", "both_reported"), since,
                             until)
    cur = await conn.execute(
        "SELECT provider, model, sum(both_calls)::bigint AS calls, sum(both_computed)::bigint AS computed, "  # nosec B608 - only constant SQL fragments are interpolated
        f"sum(both_reported)::bigint AS reported, sum(calls)::bigint AS all_calls FROM ({totals}) t "
        "GROUP BY provider, model ORDER BY provider, model", params)
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
