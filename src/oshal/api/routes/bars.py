"""/v1/bars: a tenant's OHLCV time series (market data). Operators write bars in bulk; anyone in the tenant reads
them by time range, a page at a time, and lists the series held.

A symbol may hold '/' (BTC/USDT): the timeframe is always the last path segment, so ``/v1/bars/BTC/USDT/1h`` is
the series (BTC/USDT, 1h).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from oshal.api.deps import Bars, Caller, Operator
from oshal.control.bars import (
    MAX_BARS_PER_REQUEST,
    MAX_PAGE,
    SOURCE_MAX,
    SYMBOL_PATTERN,
    TIMEFRAME_PATTERN,
    BarsRejected,
    symbol_problem,
    timeframe_problem,
)
from oshal.store.bars import BarRow

router = APIRouter(prefix="/v1/bars", tags=["bars"])


def _symbol(value: str) -> str:
    problem = symbol_problem(value)
    if problem:
        raise PydanticCustomError("bar_symbol", problem)
    return value


def _timeframe(value: str) -> str:
    problem = timeframe_problem(value)
    if problem:
        raise PydanticCustomError("bar_timeframe", problem)
    return value


def _optional_symbol(value: str | None) -> str | None:
    return None if value is None else _symbol(value)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """A time without an offset (or a bare date) is read as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


Symbol = Annotated[str, Path(description="AAPL, BRK.B, BTC/USDT ('/' allowed; the timeframe is the last segment).",
                             json_schema_extra={"pattern": SYMBOL_PATTERN}), AfterValidator(_symbol)]
Timeframe = Annotated[str, Path(description="A count and a unit s, m, h, d, w or mo: 1m, 15m, 1h, 1d, 1w, 1mo.",
                                json_schema_extra={"pattern": TIMEFRAME_PATTERN}), AfterValidator(_timeframe)]
_PRICE = "An integer in the series' minor units (cents for a dollar price)."
# Within bigint, and exact as a JSON number in any reader (10**18 is a double without rounding).
VALUE_MAX = 10**18


class BarIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime = Field(description="When the bar opens, with its UTC offset (2024-01-02T14:30:00Z).")
    open: int = Field(ge=-VALUE_MAX, le=VALUE_MAX, description=_PRICE)
    high: int = Field(ge=-VALUE_MAX, le=VALUE_MAX, description=f"{_PRICE} At least open, close and low.")
    low: int = Field(ge=-VALUE_MAX, le=VALUE_MAX, description=f"{_PRICE} At most open, close and high.")
    close: int = Field(ge=-VALUE_MAX, le=VALUE_MAX, description=_PRICE)
    volume: int = Field(ge=0, le=VALUE_MAX, description="Units traded in the bar (shares, contracts, coins).")


class BarsIn(BaseModel):
    """Bars of one series; each replaces the stored bar at its start, if any. All are stored or none."""

    model_config = ConfigDict(extra="forbid")

    bars: list[BarIn] = Field(description=f"At most {MAX_BARS_PER_REQUEST} per request, each start once.")
    source: str = Field(default="", max_length=SOURCE_MAX,
                        description="Where the bars come from (a file, a connector, an exchange).")

    @field_validator("bars", mode="before")
    @classmethod
    def _at_most(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > MAX_BARS_PER_REQUEST:
            raise PydanticCustomError(
                "too_many_bars", "{count} bars in one request; at most {limit} are accepted: send the series in "
                "chunks of {limit} bars or fewer", {"count": len(value), "limit": MAX_BARS_PER_REQUEST})
        return value


class PutOut(BaseModel):
    symbol: str
    timeframe: str
    received: int
    inserted: int = Field(description="Bars at starts the series did not hold.")
    updated: int = Field(description="Stored bars replaced by different values.")
    unchanged: int = Field(description="Bars equal to the stored ones (a repeated import changes nothing).")


class BarOut(BaseModel):
    start: dt.datetime
    open: int
    high: int
    low: int
    close: int
    volume: int
    source: str
    updated_at: dt.datetime


class SeriesPage(BaseModel):
    symbol: str
    timeframe: str
    items: list[BarOut] = Field(description="In time order.")
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last.")


class SeriesSummary(BaseModel):
    symbol: str
    timeframe: str
    bars: int
    first: dt.datetime = Field(description="Start of the earliest bar.")
    last: dt.datetime = Field(description="Start of the latest bar.")
    updated_at: dt.datetime = Field(description="The latest write to the series.")


class SummaryPage(BaseModel):
    items: list[SeriesSummary] = Field(description="By symbol, then timeframe.")
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last.")


@router.get("", response_model=SummaryPage)
async def list_series(
    bars: Bars, who: Caller,
    symbol: Annotated[str | None, Query(description="Only this symbol's series.",
                                        json_schema_extra={"pattern": SYMBOL_PATTERN}),
                      AfterValidator(_optional_symbol)] = None,
    cursor: Annotated[str | None, Query(max_length=100, description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> SummaryPage:
    """The series the tenant holds: each (symbol, timeframe) with its bar count and first and last start."""
    page = await bars.summary(who.tenant_id, symbol=symbol, cursor=cursor, limit=limit)
    return SummaryPage(items=[SeriesSummary(**row) for row in page.items], next_cursor=page.next_cursor)


@router.put("/{symbol:path}/{timeframe}", response_model=PutOut)
async def put_bars(symbol: Symbol, timeframe: Timeframe, body: BarsIn, bars: Bars, who: Operator) -> PutOut:
    """Store bars of the series (symbol, timeframe): a bar at a start already held replaces it; one equal to it
    changes nothing. Every bar must have low <= open, close <= high; a refused bar is named by index and field and
    nothing is stored."""
    rows = [BarRow(b.start, b.open, b.high, b.low, b.close, b.volume) for b in body.bars]
    try:
        counts = await bars.put(who.tenant_id, symbol, timeframe, rows, body.source)
    except BarsRejected as e:
        raise RequestValidationError([
            {"loc": ("body", "bars", p.index, p.field), "msg": p.message, "type": "bar_inconsistent"}
            for p in e.problems]) from e
    return PutOut(symbol=symbol, timeframe=timeframe, received=len(rows), inserted=counts.inserted,
                  updated=counts.updated, unchanged=counts.unchanged)


@router.get("/{symbol:path}/{timeframe}", response_model=SeriesPage)
async def get_bars(
    symbol: Symbol, timeframe: Timeframe, bars: Bars, who: Caller,
    start_from: Annotated[dt.datetime | None, Query(alias="from", description="Bars starting at or after this time "
                                                    "(ISO 8601; without an offset, UTC).")] = None,
    to: Annotated[dt.datetime | None, Query(description="Bars starting before this time (exclusive; ISO 8601, "
                                            "without an offset UTC).")] = None,
    cursor: Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000,
) -> SeriesPage:
    """The series' bars in time order, a page at a time (an unknown series is empty)."""
    page = await bars.series(who.tenant_id, symbol, timeframe, start_from=_utc(start_from), before=_utc(to),
                             cursor=cursor, limit=limit)
    return SeriesPage(symbol=symbol, timeframe=timeframe, items=[BarOut(**row) for row in page.items],
                      next_cursor=page.next_cursor)
