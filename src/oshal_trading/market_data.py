"""The desk's bars on the platform: uploaded in chunks to ``PUT /v1/bars/{symbol}/{timeframe}`` and read back a page
at a time from ``GET /v1/bars/{symbol}/{timeframe}``. The platform keeps them per tenant (table ``bars``, partitioned
by year); a re-upload of the same bars changes nothing there.

On the wire a bar is ``{"start": ISO 8601 UTC, "open", "high", "low", "close": cents, "volume": shares}``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from oshal_trading.bars import timeframe_step
from oshal_trading.model import Bar
from oshal_trading.platform_client import PlatformClient

UPLOAD_CHUNK = 5000  # the platform accepts at most this many bars per request
PAGE = 10_000  # the platform's largest page


class MarketDataError(Exception):
    """Bars that cannot be had: the reason, and what to do about it."""


@dataclass(frozen=True, slots=True)
class Uploaded:
    symbol: str
    timeframe: str
    received: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def plus(self, counts: Mapping[str, Any]) -> Uploaded:
        return Uploaded(self.symbol, self.timeframe, self.received + int(counts["received"]),
                        self.inserted + int(counts["inserted"]), self.updated + int(counts["updated"]),
                        self.unchanged + int(counts["unchanged"]))


def to_wire(bar: Bar) -> dict[str, Any]:
    return {"start": bar.start.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"), "open": bar.open,
            "high": bar.high, "low": bar.low, "close": bar.close, "volume": bar.volume}


def from_wire(symbol: str, timeframe: str, item: Mapping[str, Any]) -> Bar:
    return Bar(symbol, timeframe, dt.datetime.fromisoformat(str(item["start"])).astimezone(dt.UTC),
               int(item["open"]), int(item["high"]), int(item["low"]), int(item["close"]), int(item["volume"]))


def series_of(bars: Iterable[Bar]) -> dict[tuple[str, str], list[Bar]]:
    """The bars by (symbol, timeframe), each series in time order."""
    grouped: dict[tuple[str, str], list[Bar]] = defaultdict(list)
    for bar in bars:
        grouped[(bar.symbol, bar.timeframe)].append(bar)
    return {key: sorted(series, key=lambda bar: bar.start) for key, series in sorted(grouped.items())}


def upload(client: PlatformClient, bars: Sequence[Bar], *, source: str, chunk: int = UPLOAD_CHUNK,
           on_chunk: Callable[[int], None] | None = None) -> list[Uploaded]:
    """Store ``bars`` on the platform, ``chunk`` bars a request (``on_chunk(n)`` after each); per series, what the
    platform did with them."""
    if not 1 <= chunk <= UPLOAD_CHUNK:
        raise ValueError(f"chunk must be 1 to {UPLOAD_CHUNK} bars, not {chunk}")
    results = []
    for (symbol, timeframe), series in series_of(bars).items():
        done = Uploaded(symbol, timeframe)
        for at in range(0, len(series), chunk):
            part = series[at:at + chunk]
            done = done.plus(client.put_bars(symbol, timeframe, [to_wire(bar) for bar in part], source))
            if on_chunk is not None:
                on_chunk(len(part))
        results.append(done)
    return results


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def download(client: PlatformClient, symbol: str, timeframe: str, *, start: dt.datetime | None = None,
             end: dt.datetime | None = None) -> list[Bar]:
    """The series' bars starting in [start, end), in time order (all of them without bounds)."""
    timeframe_step(timeframe)
    bars: list[Bar] = []
    cursor = None
    while True:
        page = client.bars_page(symbol, timeframe, start=_iso(start), end=_iso(end), cursor=cursor, limit=PAGE)
        bars += [from_wire(symbol, timeframe, item) for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return bars


def load_platform(client: PlatformClient, symbols: Sequence[str], timeframe: str = "1d", *,
                  first_day: dt.date | None = None, last_day: dt.date | None = None) -> dict[str, list[Bar]]:
    """Each symbol's bars from the platform, the days from ``first_day`` to ``last_day`` inclusive; a symbol
    without bars there is an error that says how to get them."""
    start = day_start(first_day) if first_day else None
    end = day_start(last_day) + dt.timedelta(days=1) if last_day else None
    loaded = {symbol: download(client, symbol, timeframe, start=start, end=end) for symbol in symbols}
    missing = [symbol for symbol, bars in loaded.items() if not bars]
    if missing:
        span = f" from {first_day or 'the start'} to {last_day or 'the end'}" if first_day or last_day else ""
        raise MarketDataError(
            f"the platform holds no {timeframe} bars of {', '.join(missing)}{span}: import them with "
            f"`oshal trade data import FILE --symbol SYMBOL --timeframe {timeframe}`, or fetch them with "
            f"`oshal trade data fetch --source alpaca --symbol SYMBOL ...`; `oshal trade data list` shows what it "
            "holds")
    return loaded


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
