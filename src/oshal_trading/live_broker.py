"""The desk's live execution: a broker reached through the platform, and how an order is sent exactly once.

A :class:`LiveBroker` places an order under the desk's client order id and finds an order by that id. Sending is
idempotent because the id is deterministic (a hash of desk, step and signal): :func:`send_once` places the order,
and when the broker says the id is taken (the step ran before: a redelivery, a retry, a crash after the order left)
or its answer was lost, it looks the order up instead. A retried step therefore finds the order it sent and never
sends a second one. The broker's report of the order (filled quantity, average price) becomes the desk's fill.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Protocol

from oshal_trading.model import Fill, Order, Side


class BrokerError(Exception):
    """The broker refused the order or could not be asked; the message says what it answered."""


class DuplicateClientOrderId(BrokerError):
    """The broker holds an order under this client order id already."""


class AnswerLost(BrokerError):
    """The request may have reached the broker, but no answer came back (a gateway error, a timeout)."""


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """An order as the broker reports it; prices in cents."""

    broker_id: str
    client_order_id: str
    symbol: str
    side: Side
    quantity: int
    status: str  # the broker's word: new, accepted, partially_filled, filled, canceled, rejected, ...
    filled_quantity: int
    filled_average_price: int | None
    filled_at: dt.datetime | None


class LiveBroker(Protocol):
    name: str

    async def place(self, order: Order) -> BrokerOrder:
        """Send ``order`` under its client order id; :class:`DuplicateClientOrderId` if that id is taken,
        :class:`AnswerLost` if the answer did not come back."""
        ...

    async def find(self, client_order_id: str) -> BrokerOrder | None:
        """The order sent under ``client_order_id``, or None if the broker has none."""
        ...


@dataclass(frozen=True, slots=True)
class Sent:
    order: BrokerOrder
    how: str  # "sent": placed now; "found": placed before (a retried step), looked up by its client order id


async def send_once(broker: LiveBroker, order: Order) -> Sent:
    """``order`` at the broker exactly once, however often this runs for it."""
    try:
        return Sent(_checked(await broker.place(order), order), "sent")
    except (DuplicateClientOrderId, AnswerLost) as e:
        found = await broker.find(order.client_order_id)
        if found is None:
            if isinstance(e, DuplicateClientOrderId):
                raise BrokerError(f"{broker.name} says client order id {order.client_order_id} is taken, but finds no "
                                  "order under it; nothing was booked") from e
            raise BrokerError(f"{broker.name} did not answer the order {order.client_order_id} ({e}) and holds no "
                              "order under its id; running the step again sends it (under the same id)") from e
        return Sent(_checked(found, order), "found")


def _checked(placed: BrokerOrder, order: Order) -> BrokerOrder:
    """The broker's order must be the desk's: same id, symbol, side and quantity (fail closed on anything else)."""
    mine = (order.client_order_id, order.symbol, order.side, order.quantity)
    theirs = (placed.client_order_id, placed.symbol, placed.side, placed.quantity)
    if mine != theirs:
        raise BrokerError(f"the broker's order {placed.broker_id} under {order.client_order_id} is {theirs[1:]}, "
                          f"not the desk's {mine[1:]}; nothing is booked")
    return placed


def fill_of(placed: BrokerOrder, bar_start: dt.datetime, *, fee: int = 0) -> Fill | None:
    """What the broker has filled of the order so far as one fill (None if nothing yet). Its id is the order's
    first fill (``<client order id>/1``), so booking the same report again is booking the same fill."""
    if placed.filled_quantity <= 0:
        return None
    if placed.filled_average_price is None or placed.filled_at is None:
        raise BrokerError(f"order {placed.client_order_id} reports {placed.filled_quantity} filled without a price "
                          "or a time")
    return Fill(id=f"{placed.client_order_id}/1", client_order_id=placed.client_order_id, symbol=placed.symbol,
                side=placed.side, quantity=placed.filled_quantity, price=placed.filled_average_price, fee=fee,
                at=placed.filled_at, bar_start=bar_start)


def cents(text: object, where: str) -> int:
    """A decimal dollar amount ("97.345") as cents, half-even past two decimals."""
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        raise BrokerError(f"{where}: {text!r} is not a decimal amount") from None
    if not value.is_finite() or value <= 0:
        raise BrokerError(f"{where}: {text!r} is not a price > 0")
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def shares(text: object, where: str) -> int:
    """A quantity the broker writes as a decimal string ("12", "12.0") as whole shares."""
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        raise BrokerError(f"{where}: {text!r} is not a number") from None
    if not value.is_finite() or value < 0 or value != value.to_integral_value():
        raise BrokerError(f"{where}: {text!r} is not a whole number of shares")
    return int(value)
