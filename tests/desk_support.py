"""Shared by the desk tests: an operator tenant's API, a desk on the bundled bars, and the books' invariants."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from oshal_trading.bar_source import BundledBars
from oshal_trading.desk import DeskService
from oshal_trading.desk_config import DeskConfig
from oshal_trading.platform import PlatformAPI, Records

SYMBOLS = ("AAPL", "GOOGL", "TSLA")
START, END = dt.date(2016, 1, 4), dt.date(2016, 2, 29)


def desk_config(name: str = "main", **changes: Any) -> DeskConfig:
    values: dict[str, Any] = {"name": name, "strategy": "sma-cross", "symbols": SYMBOLS, "history_from": START,
                              "params": {"fast": 3, "slow": 8}}
    return DeskConfig(**(values | changes))


def desk(url: str, key: str, config: DeskConfig | None = None, **options: Any) -> DeskService:
    return DeskService(PlatformAPI(url, key), config or desk_config(), BundledBars(), **options)


async def all_records(records: Records, collection: str, desk_name: str) -> dict[str, dict[str, Any]]:
    return {k: b async for k, b in records.each(collection) if b.get("desk") == desk_name}


def marked_equity(cash: int, positions: Mapping[str, int], closes: Mapping[str, int]) -> int:
    return cash + sum(q * closes[s] for s, q in positions.items())
