"""Bars from Alpaca's market data API (``GET /v2/stocks/{symbol}/bars``), reached the platform's way: the desk holds
no Alpaca key. Each page is one ticket to the ``market-data`` bot whose input scripts one call of the connector's
``getBarsForStockSymbol`` operation; the bot calls it through the tool gateway, the broker checks the bot's tool
policy, and the connector runtime adds the tenant's stored Alpaca keys. ``next_page_token`` leads to the next page.

Set up once (an operator of the tenant; the connector is curated and installed by ``oshal up``)::

    oshal connection add alpaca-market-data --secret-file keys.json
    #   keys.json: {"APCA-API-KEY-ID": "...", "APCA-API-SECRET-KEY": "..."}
    oshal connector policy market-data alpaca-market-data getBarsForStockSymbol auto

Prices arrive as decimal numbers and become cents (half-even past two decimals); bars are asked unadjusted
(``adjustment=raw``): the desk trades and accounts at the prices that traded. Alpaca stamps a daily bar at
midnight New York time; the desk's daily bar starts at 00:00 UTC of that trading date.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from oshal_trading.bars import BarCollector, timeframe_step
from oshal_trading.market_data import MarketDataError
from oshal_trading.model import Bar
from oshal_trading.platform_client import PlatformClient

CONNECTOR = "alpaca-market-data"
OPERATION = "getBarsForStockSymbol"
BOT = "market-data"
PAGE_LIMIT = 10_000  # Alpaca's largest page
NEW_YORK = ZoneInfo("America/New_York")
_TIMEFRAME = re.compile(r"^([1-9][0-9]*)([mhd])$")
_UNITS = {"m": ("Min", 59), "h": ("Hour", 23), "d": ("Day", 1)}


def alpaca_timeframe(timeframe: str) -> str:
    """The desk's timeframe in Alpaca's spelling: 1m -> 1Min, 15m -> 15Min, 1h -> 1Hour, 1d -> 1Day."""
    timeframe_step(timeframe)
    match = _TIMEFRAME.match(timeframe)
    assert match is not None  # timeframe_step accepted it
    count, (unit, most) = int(match.group(1)), _UNITS[match.group(2)]
    if count > most:
        raise ValueError(f"Alpaca has no {timeframe} bars: minutes go to 59, hours to 23, days to 1")
    return f"{count}{unit}"


def bars_from_alpaca(symbol: str, timeframe: str, items: Sequence[Any], *, source: str) -> list[Bar]:
    """Alpaca's bars (``t``, ``o``, ``h``, ``l``, ``c``, ``v``) as the desk's, checked like any file's bars; every
    problem is reported together, each naming the bar (its position in ``items``, from 1) and the field."""
    collector = BarCollector(source, timeframe)
    daily = timeframe_step(timeframe) >= dt.timedelta(days=1)
    for number, item in enumerate(items, 1):
        if not isinstance(item, Mapping):
            collector.problem(number, "bar", f"is {type(item).__name__}, not an object")
            continue
        fields = {name: _text(item.get(key)) for name, key in (("open", "o"), ("high", "h"), ("low", "l"),
                                                                ("close", "c"), ("volume", "v"))}
        fields["symbol"] = symbol
        fields["date"] = _start(_text(item.get("t")), daily)
        collector.add(number, fields)
    return collector.finish()


def fetch(client: PlatformClient, symbol: str, timeframe: str, first_day: dt.date, last_day: dt.date, *,
          connector: str = CONNECTOR, bot: str = BOT, feed: str | None = None, page_limit: int = PAGE_LIMIT,
          on_page: Callable[[int], None] | None = None) -> list[Bar]:
    """``symbol``'s bars from ``first_day`` to ``last_day`` (inclusive, UTC days), a page per ticket to ``bot``."""
    if last_day < first_day:
        raise MarketDataError(f"--to {last_day} is before --from {first_day}")
    arguments: dict[str, Any] = {
        "symbol": symbol, "timeframe": alpaca_timeframe(timeframe), "start": f"{first_day.isoformat()}T00:00:00Z",
        "end": f"{last_day.isoformat()}T23:59:59Z", "limit": page_limit, "adjustment": "raw"}
    if feed is not None:
        arguments["feed"] = feed
    items: list[Any] = []
    token: str | None = None
    for page in range(1, 10_001):
        data = _call(client, bot, connector, {**arguments, **({"page_token": token} if token else {})})
        bars = data.get("bars") or []  # Alpaca answers null for a range without bars
        if not isinstance(bars, list):
            raise MarketDataError(f"Alpaca's page {page} holds no list of bars: {str(data)[:200]}")
        items += bars
        if on_page is not None:
            on_page(len(bars))
        token = data.get("next_page_token")
        if not token:
            return bars_from_alpaca(symbol, timeframe, items, source=f"alpaca {symbol} {timeframe}")
    raise MarketDataError("Alpaca kept returning a next_page_token for 10,000 pages; narrow --from/--to")


def _call(client: PlatformClient, bot: str, connector: str, arguments: dict[str, Any]) -> dict[str, Any]:
    script = {"tool_calls": [{"connector": connector, "operation": OPERATION, "arguments": arguments}]}
    ticket = client.run_ticket(bot, script)
    hint = (f"the tenant needs a connection (`oshal connection add {connector} --secret-file keys.json`) and "
            f"the bot a policy (`oshal connector policy {bot} {connector} {OPERATION} auto`)")
    if ticket["status"] != "done":
        raise MarketDataError(f"the {bot} ticket {ticket['id']} ended {ticket['status']}: "
                              f"{ticket.get('error') or ticket.get('status_reason') or 'no reason given'} ({hint})")
    try:
        result = ticket["result"]["tool_results"][0]
    except (KeyError, IndexError, TypeError):
        raise MarketDataError(f"the {bot} ticket {ticket['id']} returned no tool result: "
                              f"{str(ticket.get('result'))[:200]}") from None
    status, data = result.get("status"), result.get("data")
    if status != 200 or not isinstance(data, dict):
        said = data.get("message") if isinstance(data, dict) else data
        raise MarketDataError(f"Alpaca answered {status}: {str(said)[:300]} (ticket {ticket['id']}; for 401/403 "
                              f"check the keys of the tenant's {connector} connection)")
    if result.get("truncated"):
        raise MarketDataError(f"Alpaca's answer was cut at the connector's size limit (ticket {ticket['id']}); "
                              "fetch a shorter range")
    return data


def _text(value: Any) -> str:
    """A JSON value as the text the bar checks read: 133.32 stays 133.32 (a float's shortest spelling)."""
    if value is None or isinstance(value, bool):
        return "" if value is None else str(value)
    return repr(value) if isinstance(value, float) else str(value)


def _start(text: str, daily: bool) -> str:
    """A daily bar's time (midnight New York) as its trading date; an intraday one as it is."""
    if not daily or not text:
        return text
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return text  # refused by the bar checks, which say why
    if moment.tzinfo is None:
        return text
    return moment.astimezone(NEW_YORK).date().isoformat()
