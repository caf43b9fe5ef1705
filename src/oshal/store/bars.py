"""Bars SQL: a tenant's OHLCV time series, one row per (symbol, timeframe, start), in the partitioned ``bars`` table.

Every function runs inside a tenant transaction (RLS applies). Reads go through the parent table; the planner
prunes the partitions (one a year) outside the requested range, and the primary key's index gives the rows of one
series in time order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from oshal.store.db import Conn

BAR_COLUMNS = ("start", "open", "high", "low", "close", "volume", "source", "updated_at")
_BAR = ", ".join(BAR_COLUMNS)


@dataclass(frozen=True, slots=True)
class BarRow:
    start: dt.datetime
    open: int
    high: int
    low: int
    close: int
    volume: int


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    inserted: int
    updated: int
    unchanged: int


async def upsert(conn: Conn, *, tenant_id: UUID, symbol: str, timeframe: str, bars: Sequence[BarRow],
                 source: str) -> UpsertCounts:
    """Insert the bars or replace the stored ones at the same starts; a bar equal to the stored one (source
    included) is left as it is, so importing the same file twice changes nothing. The starts must be distinct."""
    # Every part of the statement sees the table as it was before it, so ``held`` counts the starts held before.
    # (RETURNING cannot tell an insert from an update here: a partitioned table has no xmax to return.)
    cur = await conn.execute(
        "WITH written AS ("
        " INSERT INTO bars (tenant_id, symbol, timeframe, start, open, high, low, close, volume, source) "
        " SELECT %(tenant)s, %(symbol)s, %(timeframe)s, b.start, b.open, b.high, b.low, b.close, b.volume, "
        "        %(source)s "
        "   FROM unnest(%(start)s::timestamptz[], %(open)s::bigint[], %(high)s::bigint[], %(low)s::bigint[], "
        "               %(close)s::bigint[], %(volume)s::bigint[]) AS b(start, open, high, low, close, volume) "
        " ON CONFLICT (tenant_id, symbol, timeframe, start) DO UPDATE SET open = EXCLUDED.open, "
        "     high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume, "
        "     source = EXCLUDED.source, updated_at = now() "
        "  WHERE (bars.open, bars.high, bars.low, bars.close, bars.volume, bars.source) IS DISTINCT FROM "
        "        (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume, EXCLUDED.source) "
        " RETURNING 1) "
        "SELECT (SELECT count(*) FROM written) AS written, "
        "       (SELECT count(*) FROM bars WHERE symbol = %(symbol)s AND timeframe = %(timeframe)s "
        "           AND start = ANY(%(start)s::timestamptz[])) AS held",
        {"tenant": tenant_id, "symbol": symbol, "timeframe": timeframe, "source": source,
         "start": [b.start for b in bars], "open": [b.open for b in bars], "high": [b.high for b in bars],
         "low": [b.low for b in bars], "close": [b.close for b in bars], "volume": [b.volume for b in bars]})
    row = await cur.fetchone()
    assert row is not None  # an aggregate always returns its row
    written, held = int(row["written"]), int(row["held"])
    inserted = len(bars) - held
    updated = written - inserted
    return UpsertCounts(inserted=inserted, updated=updated, unchanged=held - updated)


async def series(conn: Conn, symbol: str, timeframe: str, *, start_from: dt.datetime | None,
                 before: dt.datetime | None, after: dt.datetime | None, limit: int) -> list[dict[str, Any]]:
    """The series' bars in time order: starting at or after ``start_from``, before ``before``, after ``after``
    (the cursor: the last start of the previous page), at most ``limit``."""
    cur = await conn.execute(
        f"SELECT {_BAR} FROM bars WHERE symbol = %(symbol)s AND timeframe = %(timeframe)s "  # nosec B608 - only constant SQL fragments are interpolated
        "   AND (%(from)s::timestamptz IS NULL OR start >= %(from)s) "
        "   AND (%(before)s::timestamptz IS NULL OR start < %(before)s) "
        "   AND (%(after)s::timestamptz IS NULL OR start > %(after)s) "
        " ORDER BY start LIMIT %(limit)s",
        {"symbol": symbol, "timeframe": timeframe, "from": start_from, "before": before, "after": after,
         "limit": limit})
    return await cur.fetchall()


async def summary(conn: Conn, *, symbol: str | None, after: tuple[str, str] | None,
                  limit: int) -> list[dict[str, Any]]:
    """Each series (symbol, timeframe) with its bar count, first and last start and last write, by symbol then
    timeframe: only ``symbol``'s when given, those after ``after`` (the cursor), at most ``limit``."""
    after_symbol, after_timeframe = after if after is not None else (None, None)
    cur = await conn.execute(
        "SELECT symbol, timeframe, count(*) AS bars, min(start) AS first, max(start) AS last, "
        "       max(updated_at) AS updated_at "
        "  FROM bars "
        " WHERE (%(symbol)s::text IS NULL OR symbol = %(symbol)s) "
        "   AND (%(after_symbol)s::text IS NULL OR (symbol, timeframe) > (%(after_symbol)s, %(after_timeframe)s)) "
        " GROUP BY symbol, timeframe ORDER BY symbol, timeframe LIMIT %(limit)s",
        {"symbol": symbol, "after_symbol": after_symbol, "after_timeframe": after_timeframe, "limit": limit})
    return await cur.fetchall()
