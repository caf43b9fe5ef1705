"""The paper broker: orders filled against bars, as a real venue would fill them, in memory.

Fill rules (a bar's prices are trusted only once it passes :func:`check_bar`):

- An order fills only on bars of its symbol that start at or after its ``created_at`` (no fill on a bar the
  signal could already see); without ``created_at`` it fills from the next bar given.
- **Market**: at the bar's open moved against the trader by ``slippage_bps`` (a buy rounds up to the cent, a
  sell down), then clamped into the bar's [low, high]: nothing ever fills outside the range the bar traded.
- **Limit**: only if the bar trades through the limit (buy: low <= limit; sell: high >= limit), at the better of
  the open and the limit (buy: min(open, limit); sell: max(open, limit)). A limit is price-protected, so no
  slippage is added; the price is inside [low, high] by construction.
- **Size against volume**: all of the broker's orders in a symbol together take at most
  ``max_participation`` of a bar's volume (rounded down), shared in submission order; the rest waits.
- **Day orders**: an order lives for one trading day, the UTC date of the first bar it may fill on. What has not
  filled by then expires: at :meth:`PaperBroker.end_day`, or when a bar of its symbol from a later day arrives
  (before that bar fills anything). A partial fill is never carried into the next session.
- **Fees** are charged per order on its cumulative fill: ``ceil(per_share x shares + bps x notional)``, at least
  ``minimum``; each fill carries the increment, so the fees of an order's partial fills add up to exactly the fee
  of one fill of the same size and notional.
- **Idempotent by client order id**: submitting an order again returns its state (its fills included) and never
  fills it twice; a different order under a known id is refused.

Everything is integer minor units and deterministic: the same orders and bars give the same fills, ids included
(``<client_order_id>/<n>``); a fill is stamped with its bar's start (``at`` and ``bar_start``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from oshal_trading.model import Bar, Fill, Order, OrderType, Side

BPS = 10_000


class OrderRefused(ValueError):
    """The order cannot be accepted; the message says what was wrong and how to fix it."""


class ClientOrderIdConflict(OrderRefused):
    """A different order was submitted under a client order id the broker already holds."""


class UnknownOrder(LookupError):
    """No order with this client order id was submitted."""


class BadBar(ValueError):
    """A bar whose prices, volume or time cannot be filled against."""


class OrderStatus(StrEnum):
    OPEN = "open"
    FILLED = "filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


def _rate(value: Decimal | int, name: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise ValueError(f"{name} must be an int or a Decimal (e.g. Decimal('0.5')), not {type(value).__name__}: "
                         "money math here is exact")
    if not Decimal(value).is_finite() or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return Fraction(value)


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """What one order costs: ``per_share`` minor units per share plus ``bps`` of notional, rounded up to the
    minor unit, at least ``minimum`` once anything fills. E.g. $0.005/share with a $1 minimum is
    ``FeeSchedule(per_share=Decimal("0.5"), minimum=100)``."""

    per_share: Decimal | int = 0
    bps: Decimal | int = 0
    minimum: int = 0

    def __post_init__(self) -> None:
        _rate(self.per_share, "per_share")
        _rate(self.bps, "bps")
        if isinstance(self.minimum, bool) or not isinstance(self.minimum, int) or self.minimum < 0:
            raise ValueError(f"minimum must be an integer number of minor units >= 0, got {self.minimum!r}")

    def fee(self, quantity: int, notional: int) -> int:
        """The fee of an order that has filled ``quantity`` shares for ``notional`` minor units in all."""
        if quantity <= 0:
            return 0
        computed = math.ceil(Fraction(self.per_share) * quantity + Fraction(self.bps) * notional / BPS)
        return max(self.minimum, computed)


@dataclass(frozen=True, slots=True)
class PaperConfig:
    slippage_bps: Decimal | int = 0
    max_participation: Decimal | int = Decimal("0.1")  # of a bar's volume, in (0, 1]
    fees: FeeSchedule = field(default_factory=FeeSchedule)

    def __post_init__(self) -> None:
        if _rate(self.slippage_bps, "slippage_bps") >= BPS:
            raise ValueError(f"slippage_bps must be below {BPS} (100%), got {self.slippage_bps}")
        participation = _rate(self.max_participation, "max_participation")
        if not 0 < participation <= 1:
            raise ValueError(f"max_participation is a share of a bar's volume in (0, 1], got {self.max_participation}")


@dataclass(frozen=True, slots=True)
class OrderState:
    """An order as the broker holds it: what filled, and whether it can still fill."""

    order: Order
    status: OrderStatus
    filled_quantity: int
    fills: tuple[Fill, ...]
    day: date | None  # its trading day, known from the first bar it may fill on

    @property
    def remaining(self) -> int:
        """The shares that may still fill: none once the order is filled, cancelled or expired."""
        return self.order.quantity - self.filled_quantity if self.status is OrderStatus.OPEN else 0


@dataclass(slots=True)
class _Working:
    order: Order
    status: OrderStatus = OrderStatus.OPEN
    fills: list[Fill] = field(default_factory=list)
    day: date | None = None

    @property
    def filled(self) -> int:
        return sum(fill.quantity for fill in self.fills)

    def state(self) -> OrderState:
        return OrderState(self.order, self.status, self.filled, tuple(self.fills), self.day)


def _is_utc(moment: datetime) -> bool:
    return moment.tzinfo is not None and moment.utcoffset() == timedelta(0)


def check_bar(bar: Bar) -> None:
    """Refuse a bar that cannot have traded: prices outside its range, non-positive prices, negative volume."""
    if not bar.symbol:
        raise BadBar("a bar needs a symbol")
    if not _is_utc(bar.start):
        raise BadBar(f"{bar.symbol} bar start {bar.start.isoformat()} must be an aware UTC datetime")
    if bar.low <= 0:
        raise BadBar(f"{bar.symbol} bar at {bar.start.isoformat()}: low {bar.low} must be > 0 minor units")
    if not bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high:
        raise BadBar(f"{bar.symbol} bar at {bar.start.isoformat()}: open {bar.open} and close {bar.close} must lie "
                     f"within [low {bar.low}, high {bar.high}]")
    if bar.volume < 0:
        raise BadBar(f"{bar.symbol} bar at {bar.start.isoformat()}: volume {bar.volume} must be >= 0")


def _check_order(order: Order) -> None:
    where = f"order {order.client_order_id!r}"
    if not order.client_order_id:
        raise OrderRefused("an order needs a client_order_id (it is what makes a retried submit safe)")
    if not order.symbol:
        raise OrderRefused(f"{where} needs a symbol")
    if isinstance(order.quantity, bool) or not isinstance(order.quantity, int) or order.quantity <= 0:
        raise OrderRefused(f"{where}: quantity must be a whole number of shares > 0, got {order.quantity!r}")
    if order.type is OrderType.LIMIT:
        if order.limit_price is None or order.limit_price <= 0:
            raise OrderRefused(f"{where}: a limit order needs limit_price > 0 in minor units, got {order.limit_price}")
    elif order.limit_price is not None:
        raise OrderRefused(f"{where}: a market order takes no limit_price; send type=limit to cap the price")
    if order.created_at is not None and not _is_utc(order.created_at):
        raise OrderRefused(f"{where}: created_at {order.created_at.isoformat()} must be an aware UTC datetime")


def _market_price(side: Side, bar: Bar, slippage_bps: Fraction) -> int:
    if side is Side.BUY:
        price = math.ceil(bar.open * (BPS + slippage_bps) / BPS)
    else:
        price = math.floor(bar.open * (BPS - slippage_bps) / BPS)
    return min(max(price, bar.low), bar.high)


def _limit_price(side: Side, bar: Bar, limit: int) -> int | None:
    if side is Side.BUY:
        return min(bar.open, limit) if bar.low <= limit else None
    return max(bar.open, limit) if bar.high >= limit else None


class PaperBroker:
    """In-memory paper venue. ``submit`` orders, feed bars in time order with ``on_bar``, read ``open_orders``."""

    def __init__(self, config: PaperConfig | None = None) -> None:
        self.config = config or PaperConfig()
        self._slippage = Fraction(self.config.slippage_bps)
        self._participation = Fraction(self.config.max_participation)
        self._orders: dict[str, _Working] = {}  # in submission order
        self._open: dict[str, _Working] = {}  # the open ones, in submission order
        self._last_bar: dict[str, datetime] = {}

    def submit(self, order: Order) -> OrderState:
        """Accept ``order``, or return the state of the same order submitted before."""
        known = self._orders.get(order.client_order_id)
        if known is not None:
            if known.order != order:
                raise ClientOrderIdConflict(
                    f"client_order_id {order.client_order_id!r} already names a different order "
                    f"({known.order.side} {known.order.quantity} {known.order.symbol}); use a new id for a new order")
            return known.state()
        _check_order(order)
        working = self._orders[order.client_order_id] = self._open[order.client_order_id] = _Working(order)
        return working.state()

    def cancel(self, client_order_id: str) -> OrderState:
        """Cancel what is left of an open order; a filled, expired or cancelled order is returned unchanged."""
        working = self._working(client_order_id)
        if working.status is OrderStatus.OPEN:
            self._close(working, OrderStatus.CANCELLED)
        return working.state()

    def order(self, client_order_id: str) -> OrderState:
        return self._working(client_order_id).state()

    def open_orders(self) -> list[OrderState]:
        return [working.state() for working in self._open.values()]

    def end_day(self, day: date) -> list[OrderState]:
        """Expire every open order whose trading day is ``day`` or earlier; returns the orders expired."""
        expired = []
        for working in list(self._open.values()):
            if working.day is not None and working.day <= day:
                self._close(working, OrderStatus.EXPIRED)
                expired.append(working.state())
        return expired

    def on_bar(self, bar: Bar) -> list[Fill]:
        """Fill what ``bar`` allows, in submission order. Bars of a symbol must come in strictly increasing time."""
        check_bar(bar)
        last = self._last_bar.get(bar.symbol)
        if last is not None and bar.start <= last:
            raise BadBar(f"{bar.symbol} bar at {bar.start.isoformat()} is not after the last bar given "
                         f"({last.isoformat()}); feed each symbol's bars once, in time order")
        self._last_bar[bar.symbol] = bar.start
        today = bar.start.date()
        capacity = math.floor(bar.volume * self._participation)
        fills: list[Fill] = []
        for working in list(self._open.values()):
            order = working.order
            if order.symbol != bar.symbol:
                continue
            if order.created_at is not None and bar.start < order.created_at:
                continue
            if working.day is None:
                working.day = today
            elif working.day < today:
                self._close(working, OrderStatus.EXPIRED)
                continue
            fill = self._fill(working, bar, capacity)
            if fill is not None:
                capacity -= fill.quantity
                fills.append(fill)
        return fills

    def _fill(self, working: _Working, bar: Bar, capacity: int) -> Fill | None:
        order = working.order
        if order.type is OrderType.MARKET:
            price: int | None = _market_price(order.side, bar, self._slippage)
        else:
            assert order.limit_price is not None  # checked at submit
            price = _limit_price(order.side, bar, order.limit_price)
        filled = working.filled
        quantity = min(order.quantity - filled, capacity)
        if price is None or quantity <= 0:
            return None
        fees = self.config.fees
        charged = sum(f.fee for f in working.fills)
        notional = sum(f.quantity * f.price for f in working.fills) + quantity * price
        fill = Fill(id=f"{order.client_order_id}/{len(working.fills) + 1}", client_order_id=order.client_order_id,
                    symbol=order.symbol, side=order.side, quantity=quantity, price=price,
                    fee=fees.fee(filled + quantity, notional) - charged, at=bar.start, bar_start=bar.start)
        working.fills.append(fill)
        if working.filled == order.quantity:
            self._close(working, OrderStatus.FILLED)
        return fill

    def _close(self, working: _Working, status: OrderStatus) -> None:
        working.status = status
        del self._open[working.order.client_order_id]

    def _working(self, client_order_id: str) -> _Working:
        try:
            return self._orders[client_order_id]
        except KeyError:
            raise UnknownOrder(f"no order with client_order_id {client_order_id!r} was submitted") from None
