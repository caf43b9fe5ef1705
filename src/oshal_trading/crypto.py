"""Crypto bars from an exchange's public market data through ``ccxt`` (``fetch_ohlcv``): candles need no account
and no key, so this path holds no credential and calls the exchange directly (it is not a connector call).

``api_root`` points every API URL of the exchange at another origin, paths kept (a proxy, a mirror, a local
recording in the tests). Candles arrive a page at a time (``page_limit``) from ``since`` until the range is covered.

Conversion to the desk's bars: prices become cents (half-even past two decimals; a price under half a cent is
refused, since it rounds to zero), and the volume, which exchanges report in fractions of a coin, is rounded to
whole units half-even (the desk counts whole units; its paper broker caps fills at a share of it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from oshal_trading.bars import BarCollector, timeframe_step
from oshal_trading.market_data import MarketDataError
from oshal_trading.model import Bar

PAGE_LIMIT = 1000
MAX_PAGES = 10_000


def exchange(exchange_id: str, *, api_root: str | None = None) -> Any:
    """The ccxt exchange ``exchange_id`` (binance, kraken, coinbase, ...), rate limited, with no credentials."""
    try:
        import ccxt  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise MarketDataError("fetching crypto bars needs ccxt, which is not installed: "
                              "run `pip install ccxt`") from None
    if exchange_id not in ccxt.exchanges:
        raise MarketDataError(f"ccxt knows no exchange {exchange_id!r}; e.g. binance, kraken, coinbase, bitstamp "
                              f"(all {len(ccxt.exchanges)}: python -c 'import ccxt; print(ccxt.exchanges)')")
    client = getattr(ccxt, exchange_id)({"enableRateLimit": True, "timeout": 30_000})
    if not client.has.get("fetchOHLCV"):
        raise MarketDataError(f"{exchange_id} offers no candles (OHLCV) through ccxt")
    if api_root is not None:
        client.urls["api"] = _repoint(client.urls["api"], api_root)
    return client


def fetch(exchange_id: str, symbol: str, timeframe: str, first_day: dt.date, last_day: dt.date, *,
          api_root: str | None = None, page_limit: int = PAGE_LIMIT,
          on_page: Callable[[int], None] | None = None) -> list[Bar]:
    """``symbol``'s candles (ccxt's unified symbol, e.g. BTC/USDT) from ``first_day`` to ``last_day`` inclusive."""
    if last_day < first_day:
        raise MarketDataError(f"--to {last_day} is before --from {first_day}")
    step_ms = int(timeframe_step(timeframe).total_seconds() * 1000)
    client = exchange(exchange_id, api_root=api_root)
    if timeframe not in (client.timeframes or {}):
        raise MarketDataError(f"{exchange_id} has no {timeframe} candles; it has {', '.join(client.timeframes or [])}")
    since = _ms(first_day)
    until = _ms(last_day + dt.timedelta(days=1))
    rows: list[Sequence[Any]] = []
    try:
        for _ in range(MAX_PAGES):
            page = client.fetch_ohlcv(symbol, timeframe, since=since, limit=page_limit)
            fresh = [row for row in page if since <= int(row[0]) < until]
            rows += fresh
            if on_page is not None:
                on_page(len(fresh))
            if not fresh or len(page) < page_limit:
                return candles_to_bars(symbol, timeframe, rows, source=f"ccxt:{exchange_id} {symbol} {timeframe}")
            since = int(fresh[-1][0]) + step_ms
    except Exception as e:  # ccxt raises its own tree (BadSymbol, NetworkError, ExchangeError...)
        if isinstance(e, MarketDataError) or type(e).__module__.split(".")[0] != "ccxt":
            raise
        raise MarketDataError(f"{exchange_id}: {type(e).__name__}: {str(e)[:300]}") from e
    raise MarketDataError(f"{exchange_id} kept returning candles for {MAX_PAGES} pages; narrow --from/--to")


def candles_to_bars(symbol: str, timeframe: str, rows: Sequence[Sequence[Any]], *, source: str) -> list[Bar]:
    """ccxt candles ``[ms, open, high, low, close, volume]`` as the desk's bars, checked like any file's."""
    collector = BarCollector(source, timeframe)
    daily = timeframe_step(timeframe) >= dt.timedelta(days=1)
    for number, row in enumerate(rows, 1):
        if len(row) < 6:
            collector.problem(number, "candle", f"has {len(row)} fields, expected [time, o, h, l, c, volume]")
            continue
        moment = dt.datetime.fromtimestamp(int(row[0]) / 1000, tz=dt.UTC)
        fields: Mapping[str, str] = {
            "symbol": symbol, "date": moment.date().isoformat() if daily else moment.isoformat(),
            "open": _text(row[1]), "high": _text(row[2]), "low": _text(row[3]), "close": _text(row[4]),
            "volume": _whole(row[5])}
        collector.add(number, fields)
    return collector.finish()


def _ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


def _text(value: Any) -> str:
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def _whole(value: Any) -> str:
    """A volume rounded to whole units, half-even; anything unreadable passes through to be refused with why."""
    try:
        return str(Decimal(_text(value)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    except InvalidOperation:
        return _text(value)


def _repoint(urls: Any, root: str) -> Any:
    """Every URL in ccxt's ``urls['api']`` (a string or nested dicts of them) on ``root``'s origin, paths kept."""
    if isinstance(urls, str):
        origin = urlsplit(root)
        return urlunsplit(urlsplit(urls)._replace(scheme=origin.scheme, netloc=origin.netloc))
    if isinstance(urls, dict):
        return {name: _repoint(url, root) for name, url in urls.items()}
    return urls
