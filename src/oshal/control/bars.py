"""Bars: a tenant's OHLCV time series (market data any application stores and reads back), written by bulk upsert
and read by time range with a cursor.

What the store keeps is generic: integer prices in the series' minor units with low <= open, close <= high, a
volume, a free-form source. Which symbols, timeframes and unit conventions mean what is the writer's business.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from oshal.errors import Invalid
from oshal.store import bars as repo
from oshal.store.bars import BarRow, UpsertCounts
from oshal.store.db import Database

MAX_BARS_PER_REQUEST = 5000  # the API refuses a larger request (422) before reading its bars
MAX_PAGE = 10_000
SYMBOL_MAX = 32
SOURCE_MAX = 100
# Segments of letters, digits and . _ : - joined by '/', each starting with a letter or digit: AAPL, BRK.B,
# BTC/USDT, ETH/USDT:USDT. (The same rule is a CHECK on the table.)
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*(/[A-Za-z0-9][A-Za-z0-9._:-]*)*$"
# A count and a unit: s(econds), m(inutes), h(ours), d(ays), w(eeks), mo(nths): 1m, 15m, 1h, 4h, 1d, 1w, 1mo.
TIMEFRAME_PATTERN = r"^[1-9][0-9]{0,3}(s|m|h|d|w|mo)$"
_SUMMARY_CURSOR_SEP = "@"


def symbol_problem(symbol: str) -> str | None:
    if len(symbol) > SYMBOL_MAX or not re.fullmatch(SYMBOL_PATTERN, symbol):
        return (f"{symbol[:40]!r} is not a symbol: up to {SYMBOL_MAX} letters, digits and . _ : - in segments "
                "joined by '/', each starting with a letter or digit (e.g. AAPL, BRK.B, BTC/USDT)")
    return None


def timeframe_problem(timeframe: str) -> str | None:
    if not re.fullmatch(TIMEFRAME_PATTERN, timeframe):
        return (f"{timeframe[:20]!r} is not a timeframe: a count and a unit s, m, h, d, w or mo "
                "(e.g. 1m, 15m, 1h, 1d, 1w, 1mo)")
    return None


@dataclass(frozen=True, slots=True)
class BarProblem:
    index: int  # position of the bar in the request
    field: str
    message: str


class BarsRejected(Invalid):
    """Bars that break the store's rules, each problem naming its bar and field."""

    def __init__(self, problems: Sequence[BarProblem]) -> None:
        self.problems = tuple(problems)
        first = "; ".join(f"bars[{p.index}].{p.field}: {p.message}" for p in self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"{len(self.problems)} bar(s) refused: {first}{more}",
                         hint="every bar needs low <= open, close <= high and a start of its own; nothing was stored")


def consistency_problems(bars: Sequence[BarRow]) -> list[BarProblem]:
    """Every bar whose high or low does not bound its open and close, and every start given twice."""
    problems = []
    first_at: dict[dt.datetime, int] = {}
    for index, bar in enumerate(bars):
        if bar.high < max(bar.open, bar.close, bar.low):
            problems.append(BarProblem(index, "high", f"{bar.high} is below the bar's open, close or low"))
        if bar.low > min(bar.open, bar.close, bar.high):
            problems.append(BarProblem(index, "low", f"{bar.low} is above the bar's open, close or high"))
        start = bar.start.astimezone(dt.UTC)
        if start in first_at:
            problems.append(BarProblem(index, "start", f"{start.isoformat()} repeats bars[{first_at[start]}]"))
        else:
            first_at[start] = index
    return problems


def series_cursor(start: dt.datetime) -> str:
    return start.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_series_cursor(cursor: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(cursor)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise Invalid(f"cursor {cursor[:40]!r} is not a cursor of this series",
                      hint="pass the next_cursor of the previous page as it was returned")
    return moment


def summary_cursor(symbol: str, timeframe: str) -> str:
    return f"{symbol}{_SUMMARY_CURSOR_SEP}{timeframe}"


def parse_summary_cursor(cursor: str) -> tuple[str, str]:
    symbol, sep, timeframe = cursor.rpartition(_SUMMARY_CURSOR_SEP)
    if not sep or symbol_problem(symbol) or timeframe_problem(timeframe):
        raise Invalid(f"cursor {cursor[:60]!r} is not a cursor of the bars listing",
                      hint="pass the next_cursor of the previous page as it was returned")
    return symbol, timeframe


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


class BarService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, tenant_id: UUID, symbol: str, timeframe: str, bars: Sequence[BarRow],
                  source: str) -> UpsertCounts:
        """Store the bars of one series (insert, or replace the bars at the same starts); all or nothing."""
        problems = consistency_problems(bars)
        if problems:
            raise BarsRejected(problems)
        if not bars:
            return UpsertCounts(0, 0, 0)
        async with self.db.tenant(tenant_id) as conn:
            return await repo.upsert(conn, tenant_id=tenant_id, symbol=symbol, timeframe=timeframe, bars=bars,
                                     source=source)

    async def series(self, tenant_id: UUID, symbol: str, timeframe: str, *, start_from: dt.datetime | None,
                     before: dt.datetime | None, cursor: str | None, limit: int) -> Page:
        """One page of the series in time order (an unknown series is empty)."""
        after = parse_series_cursor(cursor) if cursor is not None else None
        async with self.db.tenant(tenant_id) as conn:
            rows = await repo.series(conn, symbol, timeframe, start_from=start_from, before=before, after=after,
                                     limit=limit + 1)
        page = rows[:limit]
        return Page(page, series_cursor(page[-1]["start"]) if len(rows) > limit else None)

    async def summary(self, tenant_id: UUID, *, symbol: str | None, cursor: str | None, limit: int) -> Page:
        """One page of the tenant's series with their counts and time spans, by symbol then timeframe."""
        after = parse_summary_cursor(cursor) if cursor is not None else None
        async with self.db.tenant(tenant_id) as conn:
            rows = await repo.summary(conn, symbol=symbol, after=after, limit=limit + 1)
        page = rows[:limit]
        last = page[-1] if len(rows) > limit else None
        return Page(page, summary_cursor(last["symbol"], last["timeframe"]) if last else None)
