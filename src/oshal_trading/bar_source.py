"""Where the desk reads bars: a small interface, and the bundled daily bars behind it (the platform's bar store
plugs in the same way)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from typing import Protocol

from oshal_trading.bars import load_bundled
from oshal_trading.model import Bar


class BarSource(Protocol):
    async def bars(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> dict[str, list[Bar]]:
        """Each symbol's bars starting on days ``start`` to ``end`` (inclusive), oldest first."""
        ...


class BundledBars:
    """The daily bars shipped with the package (AAPL, COKE, GOOGL, TSLA, YHOO, 2015-2017)."""

    def __init__(self) -> None:
        self._cache: dict[str, list[Bar]] = {}

    async def bars(self, symbols: Sequence[str], start: dt.date, end: dt.date) -> dict[str, list[Bar]]:
        missing = [s for s in symbols if s not in self._cache]
        if missing:
            self._cache.update(await asyncio.to_thread(load_bundled, missing))
        return {s: [b for b in self._cache[s] if start <= b.start.date() <= end] for s in symbols}
