"""The pre-trade risk engine: a proposed order against the desk's limits, every rule recorded.

``decide`` is pure: it is given the order, the reference price, a read-only snapshot of the portfolio
(``Exposure``), the limits, whether the desk is halted, and the time; it returns a ``RiskDecision`` that lists
every rule in ``RULES`` order with whether it passed and why. The order is approved only if every rule passed.

Positions and exposures are judged on the portfolio as it would be if the order filled in full at the reference
price, every position marked at its last price (the order's symbol at the reference price). A measure already
over its limit (prices moved, limits were lowered) may always be shrunk: such an order passes with the reason
given, so a desk can get back inside its limits. When the day's loss is over its limit only orders that reduce a
position, without reversing it, pass. The kill switch blocks everything.

Money is integer cents throughout; quantities are whole shares, positive long and negative short.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType

from oshal_trading import exchange_calendar
from oshal_trading.model import Order, OrderType, RiskDecision, RuleResult, Side

RULES = (
    "kill_switch",
    "order_well_formed",
    "symbol_allowlist",
    "trading_hours",
    "max_order_quantity",
    "max_order_notional",
    "short_selling",
    "max_position_quantity",
    "max_position_notional",
    "max_gross_exposure",
    "max_net_exposure",
    "daily_loss_limit",
)


class TradingHours(StrEnum):
    REGULAR = "regular"  # the decision time must fall in the exchange's regular session
    DAILY = "daily"  # the decision time's UTC date must be a trading day (daily bars start 00:00 UTC of their date)
    ALWAYS = "always"  # markets that never close (crypto)


def _whole(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number ≥ 0 (cents or shares), got {value!r}")


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The desk's limits. Money in cents, quantities in shares; the per-symbol position limit is in shares,
    notional, or both (at least one is required). Nothing is unlimited by default."""

    allowed_symbols: frozenset[str]
    max_order_quantity: int
    max_order_notional: int
    max_gross_exposure: int  # Σ |quantity| x price over every position
    max_net_exposure: int  # |Σ quantity x price|
    max_daily_loss: int  # day-start equity minus current equity, realized and unrealized
    max_position_quantity: int | None = None
    max_position_notional: int | None = None
    allow_short: bool = False
    trading_hours: TradingHours = TradingHours.REGULAR

    def __post_init__(self) -> None:
        symbols: object = self.allowed_symbols
        if isinstance(symbols, str) or not isinstance(symbols, Iterable):
            raise ValueError(f"allowed_symbols must be a set of symbols such as {{'AAPL', 'MSFT'}}, got {symbols!r}")
        symbols = frozenset(symbols)
        bad = sorted(repr(s) for s in symbols if not isinstance(s, str) or not s.strip() or s != s.strip())
        if bad:
            raise ValueError(f"allowed_symbols has invalid symbols {', '.join(bad)}; use non-empty, unpadded names")
        object.__setattr__(self, "allowed_symbols", symbols)
        for name in ("max_order_quantity", "max_order_notional", "max_gross_exposure", "max_net_exposure",
                     "max_daily_loss"):
            _whole(name, getattr(self, name))
        _whole("max_position_quantity", self.max_position_quantity, optional=True)
        _whole("max_position_notional", self.max_position_notional, optional=True)
        if self.max_position_quantity is None and self.max_position_notional is None:
            raise ValueError("set max_position_quantity, max_position_notional or both: a position needs a limit")
        if not isinstance(self.allow_short, bool):
            raise ValueError(f"allow_short must be true or false, got {self.allow_short!r}")
        object.__setattr__(self, "trading_hours", TradingHours(self.trading_hours))


@dataclass(frozen=True, slots=True)
class Holding:
    quantity: int  # shares, negative when short
    last_price: int  # cents per share

    def __post_init__(self) -> None:
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int):
            raise ValueError(f"a holding's quantity must be whole shares, got {self.quantity!r}")
        if isinstance(self.last_price, bool) or not isinstance(self.last_price, int) or self.last_price <= 0:
            raise ValueError(f"a holding's last price must be whole cents > 0, got {self.last_price!r}")


@dataclass(frozen=True, slots=True)
class Exposure:
    """What the desk holds now: positions by symbol, cash and the equity it started the day with (cents)."""

    positions: Mapping[str, Holding] = field(default_factory=dict)
    cash: int = 0
    day_start_equity: int = 0

    def __post_init__(self) -> None:
        for name in ("cash", "day_start_equity"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be whole cents, got {value!r}")
        for symbol, holding in self.positions.items():
            if not isinstance(holding, Holding):
                raise ValueError(f"the position in {symbol} must be a Holding, got {holding!r}")
        object.__setattr__(self, "positions", MappingProxyType(dict(sorted(self.positions.items()))))

    def quantity(self, symbol: str) -> int:
        held = self.positions.get(symbol)
        return held.quantity if held else 0

    def marks(self, symbol: str, price: int) -> dict[str, int]:
        """Every position's price, with ``symbol`` at ``price``."""
        return {s: h.last_price for s, h in self.positions.items()} | {symbol: price}

    def equity(self, marks: Mapping[str, int]) -> int:
        return self.cash + sum(h.quantity * marks[s] for s, h in self.positions.items())


@dataclass(frozen=True, slots=True)
class _Case:
    """The order and the portfolio before and after it, as every rule sees them."""

    order: Order
    price: int
    exposure: Exposure
    limits: RiskLimits
    halted: bool
    now: datetime
    before: dict[str, int]  # quantity by symbol
    after: dict[str, int]
    marks: dict[str, int]

    @property
    def held(self) -> int:
        return self.before.get(self.order.symbol, 0)

    @property
    def will_hold(self) -> int:
        return self.after.get(self.order.symbol, 0)

    @property
    def order_price(self) -> int:
        """The price the order is valued at: a limit order at its limit if that is higher than the reference."""
        if self.order.type is OrderType.LIMIT and self.order.limit_price is not None:
            return max(self.price, self.order.limit_price)
        return self.price

    def reduces_position(self) -> bool:
        return abs(self.will_hold) < abs(self.held) and self.will_hold * self.held >= 0

    def gross(self, quantities: Mapping[str, int]) -> int:
        return sum(abs(q) * self.marks[s] for s, q in quantities.items())

    def net(self, quantities: Mapping[str, int]) -> int:
        return abs(sum(q * self.marks[s] for s, q in quantities.items()))


def _money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}${whole:,}.{part:02d}"


def _cap(rule: str, measure: str, before: int, after: int, limit: int | None, show: Callable[[int], str]) -> RuleResult:
    """A limit on a measure of the portfolio: within it after the order, or not made worse by it."""
    if limit is None:
        return RuleResult(rule, True, f"no {measure} limit set")
    if after <= limit:
        return RuleResult(rule, True, f"{measure} after the order {show(after)} is within the limit {show(limit)}")
    if after <= before:
        return RuleResult(
            rule, True,
            f"{measure} {show(before)} is over the limit {show(limit)}, and the order brings it to {show(after)}",
        )
    return RuleResult(rule, False, f"{measure} after the order {show(after)} would exceed the limit {show(limit)}")


def _shares(n: int) -> str:
    return f"{n:,} shares"


def _kill_switch(c: _Case) -> RuleResult:
    if c.halted:
        return RuleResult("kill_switch", False, "the desk is halted (kill switch on): no new orders until it resumes")
    return RuleResult("kill_switch", True, "the desk is not halted")


def _well_formed_problem(c: _Case) -> str | None:
    o = c.order
    if not isinstance(o.symbol, str) or not o.symbol.strip():
        return "the order has no symbol"
    if not isinstance(o.side, Side):
        return f"side {o.side!r} is not buy or sell"
    if isinstance(o.quantity, bool) or not isinstance(o.quantity, int) or o.quantity <= 0:
        return f"quantity {o.quantity!r} is not a whole number of shares > 0"
    if isinstance(c.price, bool) or not isinstance(c.price, int) or c.price <= 0:
        return f"the reference price {c.price!r} is not whole cents > 0"
    if o.type is OrderType.LIMIT:
        if isinstance(o.limit_price, bool) or not isinstance(o.limit_price, int) or o.limit_price <= 0:
            return f"a limit order needs a limit price in whole cents > 0, got {o.limit_price!r}"
    elif o.type is OrderType.MARKET:
        if o.limit_price is not None:
            return f"a market order carries a limit price ({o.limit_price}); send a limit order or drop the price"
    else:
        return f"order type {o.type!r} is not market or limit"
    return None


def _symbol_allowlist(c: _Case) -> RuleResult:
    if c.order.symbol in c.limits.allowed_symbols:
        return RuleResult("symbol_allowlist", True, f"{c.order.symbol} is on the allowlist")
    allowed = ", ".join(sorted(c.limits.allowed_symbols)) or "nothing"
    return RuleResult("symbol_allowlist", False, f"{c.order.symbol} is not on the allowlist ({allowed})")


def _trading_hours(c: _Case) -> RuleResult:
    mode = c.limits.trading_hours
    if mode is TradingHours.ALWAYS:
        return RuleResult("trading_hours", True, "the market trades around the clock")
    cal = exchange_calendar
    try:
        if mode is TradingHours.DAILY:
            day = c.now.astimezone(UTC).date()
            why = cal.closed_because(day)
            if why:
                return RuleResult("trading_hours", False, f"{day} is not a {cal.EXCHANGE} trading day ({why})")
            return RuleResult("trading_hours", True, f"{day} is a {cal.EXCHANGE} trading day")
        local = c.now.astimezone(cal.TIMEZONE)
        why = cal.closed_because(local.date())
        if why:
            return RuleResult("trading_hours", False, f"{local.date()} is not a {cal.EXCHANGE} trading day ({why})")
        hours = cal.session(local.date())
        assert hours is not None  # a trading day has a session
        opens, closes = (t.astimezone(cal.TIMEZONE).strftime("%H:%M") for t in hours)
        when = f"{local:%H:%M} New York time on {local.date()}"
        if cal.is_open(c.now):
            return RuleResult("trading_hours", True, f"{when} is within the session {opens}-{closes}")
        return RuleResult("trading_hours", False, f"{when} is outside the session {opens}-{closes}")
    except exchange_calendar.CalendarError as e:
        return RuleResult("trading_hours", False, str(e))


def _max_order_quantity(c: _Case) -> RuleResult:
    q, limit = c.order.quantity, c.limits.max_order_quantity
    if q <= limit:
        return RuleResult("max_order_quantity", True, f"{_shares(q)} is within the limit {_shares(limit)}")
    return RuleResult("max_order_quantity", False, f"{_shares(q)} exceeds the limit {_shares(limit)}")


def _max_order_notional(c: _Case) -> RuleResult:
    notional, limit = c.order.quantity * c.order_price, c.limits.max_order_notional
    what = f"{_shares(c.order.quantity)} x {_money(c.order_price)} = {_money(notional)}"
    if notional <= limit:
        return RuleResult("max_order_notional", True, f"{what} is within the limit {_money(limit)}")
    return RuleResult("max_order_notional", False, f"{what} exceeds the limit {_money(limit)}")


def _short_selling(c: _Case) -> RuleResult:
    if c.limits.allow_short:
        return RuleResult("short_selling", True, "short selling is allowed")
    if c.will_hold >= 0:
        return RuleResult("short_selling", True, f"the position after the order is {_shares(c.will_hold)}, not short")
    if c.will_hold >= c.held:
        return RuleResult("short_selling", True, f"the order reduces the short position to {_shares(c.will_hold)}")
    return RuleResult(
        "short_selling", False, f"the order would leave {c.order.symbol} short {_shares(-c.will_hold)}; shorting is off"
    )


def _max_position_quantity(c: _Case) -> RuleResult:
    return _cap(
        "max_position_quantity", f"the {c.order.symbol} position", abs(c.held), abs(c.will_hold),
        c.limits.max_position_quantity, _shares,
    )


def _max_position_notional(c: _Case) -> RuleResult:
    price = c.marks[c.order.symbol]
    return _cap(
        "max_position_notional", f"the {c.order.symbol} position's value", abs(c.held) * price,
        abs(c.will_hold) * price, c.limits.max_position_notional, _money,
    )


def _max_gross_exposure(c: _Case) -> RuleResult:
    return _cap(
        "max_gross_exposure", "gross exposure", c.gross(c.before), c.gross(c.after), c.limits.max_gross_exposure, _money
    )


def _max_net_exposure(c: _Case) -> RuleResult:
    return _cap("max_net_exposure", "net exposure", c.net(c.before), c.net(c.after), c.limits.max_net_exposure, _money)


def _daily_loss_limit(c: _Case) -> RuleResult:
    loss = c.exposure.day_start_equity - c.exposure.equity(c.marks)
    limit = c.limits.max_daily_loss
    shown = f"today's loss {_money(loss)}" if loss > 0 else f"today's result {_money(-loss)}"
    if loss <= limit:
        return RuleResult("daily_loss_limit", True, f"{shown} is within the loss limit {_money(limit)}")
    if c.reduces_position():
        return RuleResult(
            "daily_loss_limit", True,
            f"{shown} is over the limit {_money(limit)}, and the order only reduces the {c.order.symbol} position",
        )
    return RuleResult(
        "daily_loss_limit", False, f"{shown} is over the limit {_money(limit)}: only orders that reduce a position pass"
    )


_CHECKS: dict[str, Callable[[_Case], RuleResult]] = {
    "kill_switch": _kill_switch,
    "symbol_allowlist": _symbol_allowlist,
    "trading_hours": _trading_hours,
    "max_order_quantity": _max_order_quantity,
    "max_order_notional": _max_order_notional,
    "short_selling": _short_selling,
    "max_position_quantity": _max_position_quantity,
    "max_position_notional": _max_position_notional,
    "max_gross_exposure": _max_gross_exposure,
    "max_net_exposure": _max_net_exposure,
    "daily_loss_limit": _daily_loss_limit,
}
_NEEDS_A_VALID_ORDER = frozenset(RULES) - {"kill_switch", "order_well_formed", "trading_hours"}


def decision_id(client_order_id: str, now: datetime, rules: Iterable[RuleResult]) -> str:
    """Deterministic: the same order decided the same way at the same time has the same id."""
    key = json.dumps(
        [client_order_id, now.astimezone(UTC).isoformat(), [[r.rule, r.passed, r.detail] for r in rules]],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return "risk_" + hashlib.sha256(key.encode()).hexdigest()[:24]


def decide(
    order: Order, price: int, exposure: Exposure, limits: RiskLimits, *, halted: bool, now: datetime
) -> RiskDecision:
    """Check ``order`` at reference ``price`` (cents per share) against ``limits``; every rule is recorded."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now ({now.isoformat()}) has no time zone; pass an aware UTC datetime")
    if not isinstance(halted, bool):
        raise ValueError(f"halted must be true or false, got {halted!r}")
    case = _Case(order, price, exposure, limits, halted, now, {}, {}, {})
    problem = _well_formed_problem(case)
    if problem is None:
        delta = order.quantity if order.side is Side.BUY else -order.quantity
        before = {s: h.quantity for s, h in exposure.positions.items()}
        after = before | {order.symbol: before.get(order.symbol, 0) + delta}
        case = _Case(order, price, exposure, limits, halted, now, before, after, exposure.marks(order.symbol, price))
    results: list[RuleResult] = []
    for rule in RULES:
        if rule == "order_well_formed":
            results.append(RuleResult(rule, problem is None, problem or "the order is complete and consistent"))
        elif problem is not None and rule in _NEEDS_A_VALID_ORDER:
            results.append(RuleResult(rule, False, "not checked: the order is malformed (see order_well_formed)"))
        else:
            results.append(_CHECKS[rule](case))
    rules = tuple(results)
    return RiskDecision(
        id=decision_id(order.client_order_id, now, rules),
        client_order_id=order.client_order_id,
        approved=all(r.passed for r in rules),
        rules=rules,
        at=now.astimezone(UTC),
    )
