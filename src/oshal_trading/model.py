"""What the desk's stages hand each other. Prices are integer minor units (cents); quantities integer shares;
times aware UTC. Every record carries the id of the one before it, so a fill walks back to its signal."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar of ``symbol`` over [start, start + timeframe)."""

    symbol: str
    timeframe: str  # "1d", "1h", "1m"
    start: datetime
    open: int
    high: int
    low: int
    close: int
    volume: int


@dataclass(frozen=True, slots=True)
class Signal:
    id: str
    strategy: str
    symbol: str
    side: Side
    strength: float  # 0..1
    horizon_bars: int
    at: datetime  # the close of the last bar used
    rationale: str
    inputs: dict[str, Any] = field(default_factory=dict)  # the bar range and values it used


@dataclass(frozen=True, slots=True)
class Order:
    client_order_id: str  # idempotency: a retried step never sends an order twice
    signal_id: str
    symbol: str
    side: Side
    quantity: int
    type: OrderType = OrderType.MARKET
    limit_price: int | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RuleResult:
    rule: str  # "max_order_notional", "symbol_allowlist", ...
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class RiskDecision:
    id: str
    client_order_id: str
    approved: bool
    rules: tuple[RuleResult, ...]  # every rule checked, in order, with why it passed or blocked
    at: datetime


@dataclass(frozen=True, slots=True)
class Fill:
    id: str
    client_order_id: str
    symbol: str
    side: Side
    quantity: int
    price: int  # per share, minor units
    fee: int  # minor units
    at: datetime
    bar_start: datetime  # the bar it filled on
