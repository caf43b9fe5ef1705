"""The price table: effective-dated rows from a YAML file, with database overrides merged over them."""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from oshal.errors import ConfigError

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Price:
    """One effective-dated price row. Token prices are micro-dollars per million tokens; ``request`` is
    micro-dollars charged once per call."""

    provider: str
    model: str
    effective_from: dt.datetime
    input: int  # uncached input
    output: int
    cached_read: int = 0
    cache_write: int = 0  # a cache write with the provider's default lifetime (Anthropic: 5 minutes)
    reasoning: int | None = None  # reasoning output; None bills it as ordinary output
    request: int = 0  # a fee per call, whatever its tokens
    cache_write_1h: int | None = None  # a one-hour cache write (Anthropic); None bills it as cache_write

    def as_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model, "effective_from": self.effective_from.isoformat(),
                "input": self.input, "output": self.output, "cached_read": self.cached_read,
                "cache_write": self.cache_write, "cache_write_1h": self.cache_write_1h, "reasoning": self.reasoning,
                "request": self.request}


def price_from_row(row: dict[str, Any]) -> Price:
    """A database override row as a :class:`Price` (``.get()``: the newer per-type columns may be absent)."""
    return Price(row["provider"], row["model"], row["effective_from"], row["input_micros_per_mtok"],
                 row["output_micros_per_mtok"], row["cached_read_micros_per_mtok"],
                 row["cache_write_micros_per_mtok"], reasoning=row.get("reasoning_micros_per_mtok"),
                 request=row.get("request_micros") or 0, cache_write_1h=row.get("cache_write_1h_micros_per_mtok"))


def _as_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    return _as_datetime(dt.datetime.fromisoformat(str(value)))


def _micros(value: Any) -> int:
    # int(2.5) would silently truncate and a negative price would make negative cost: refuse both.
    micros = int(value) if isinstance(value, int | str) and not isinstance(value, bool) else -1
    if micros < 0:
        raise ValueError(f"{value!r} is not a whole, non-negative number of micro-dollars")
    return micros


def _optional_micros(value: Any) -> int | None:
    return None if value is None else _micros(value)


def load_price_file(path: Path | None = None) -> list[Price]:
    """Read the bundled price file, or ``path`` when given."""
    try:
        text = path.read_text() if path else (resources.files("oshal.ledger") / "prices.yaml").read_text()
    except OSError as e:
        raise ConfigError(f"price file {path or 'prices.yaml'} cannot be read: {e}",
                          hint="check the path, or leave it unset to use the bundled prices") from e
    try:
        rows = (yaml.safe_load(text) or {}).get("prices", [])
        return [
            Price(str(r["provider"]), str(r["model"]), _as_datetime(r["effective_from"]), _micros(r["input"]),
                  _micros(r["output"]), _micros(r.get("cached_read", 0)), _micros(r.get("cache_write", 0)),
                  _optional_micros(r.get("reasoning")), _micros(r.get("request", 0)),
                  _optional_micros(r.get("cache_write_1h")))
            for r in rows
        ]
    except (KeyError, TypeError, ValueError, AttributeError, yaml.YAMLError) as e:
        raise ConfigError(f"price file {path or 'prices.yaml'} is invalid: {e}",
                          hint="each row needs provider, model, effective_from, input, output") from e


class PriceTable:
    def __init__(self, prices: Iterable[Price]) -> None:
        merged: dict[tuple[str, str, dt.datetime], Price] = {}
        for price in prices:  # later rows (database overrides) win on the same key
            merged[(price.provider, price.model, price.effective_from)] = price
        self._rows: dict[tuple[str, str], list[Price]] = {}
        for price in sorted(merged.values(), key=lambda p: p.effective_from):
            self._rows.setdefault((price.provider, price.model), []).append(price)
        self._starts = {key: [p.effective_from for p in rows] for key, rows in self._rows.items()}

    def lookup(self, provider: str, model: str, at: dt.datetime) -> Price | None:
        for key in ((provider, model), (provider, "*")):
            rows = self._rows.get(key)
            if not rows:
                continue
            index = bisect.bisect_right(self._starts[key], at) - 1
            if index >= 0:
                return rows[index]
        return None

    def rows(self) -> list[Price]:
        return [price for key in sorted(self._rows) for price in self._rows[key]]

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._rows.values())
