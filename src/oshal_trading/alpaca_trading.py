"""Alpaca's trading API as the desk's :class:`~oshal_trading.live_broker.LiveBroker`, reached the platform's way.

The execute bot calls the ``alpaca-trading`` connector through its tool session (the tool gateway; the broker checks
the bot's tool policy; the connector runtime adds the tenant's stored Alpaca keys): ``postOrder``
(``POST /v2/orders``) with the desk's client order id, and ``getOrderByClientOrderId``
(``GET /v2/orders:by_client_order_id``) to find an order sent before. Neither the desk nor the bot ever holds a key.

Alpaca's published OpenAPI document (``alpaca-trading.yaml``) lacks the look-up by client order id, although the API
has it; :func:`connector_document` adds it before the operator imports the connector. Set up once (a platform
operator for the connector, an operator of the tenant for the keys and the policy)::

    oshal trade desk live connector ../shared/data/openapi/finance/alpaca-trading.yaml > alpaca-trading.json
    oshal connector import alpaca-trading.json --id alpaca-trading --category finance --publisher acme
    oshal connector enable alpaca-trading postOrder getOrderByClientOrderId --allow-risky
    # then sign and publish it, as every imported connector (README: Connectors)
    oshal connection add alpaca-trading --secret-file keys.json
    oshal connector policy trade-execute alpaca-trading postOrder auto
    oshal connector policy trade-execute alpaca-trading getOrderByClientOrderId auto

The policy is ``auto`` because the desk has its own gate for each live order (the step's approval unless autopilot).
Alpaca charges no commission on US equities, so a live fill's fee is 0; prices become cents half-even.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping
from typing import Any, Protocol

from oshal_trading.live_broker import AnswerLost, BrokerError, BrokerOrder, DuplicateClientOrderId, cents, shares
from oshal_trading.model import Order, OrderType, Side

CONNECTOR = "alpaca-trading"
PLACE = "postOrder"
FIND = "getOrderByClientOrderId"
FIND_PATH = "/v2/orders:by_client_order_id"
_LOST = frozenset({408, 500, 502, 503, 504})


class ToolCalls(Protocol):
    """The bot's tool session (the platform's ``ToolSession``): brokered connector calls, no credential."""

    async def call(self, connector: str, operation: str, arguments: Mapping[str, Any]) -> dict[str, Any]: ...


def connector_document(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Alpaca's trading OpenAPI document with the look-up by client order id (``GET
    /v2/orders:by_client_order_id``, part of Alpaca's API, missing from its published document) added."""
    document = copy.deepcopy(dict(spec))
    paths = document.setdefault("paths", {})
    if not isinstance(paths, dict) or "/v2/orders" not in paths:
        raise ValueError("this is not Alpaca's trading API document: it has no /v2/orders")
    paths.setdefault(FIND_PATH, {"get": {
        "operationId": FIND, "summary": "Order by client order id", "tags": ["Orders"],
        "description": "Retrieves a single order by the client order id it was placed under.",
        "parameters": [{"name": "client_order_id", "in": "query", "required": True,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 48}}],
        "responses": {"200": {"description": "Successful response", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Order"}}}},
                      "404": {"description": "Not Found"}}}})
    return document


def _dollars(cents_: int) -> str:
    return f"{cents_ // 100}.{cents_ % 100:02d}"


def order_body(order: Order) -> dict[str, Any]:
    """The desk's order as Alpaca's order request: a day order for whole shares under the desk's id."""
    body: dict[str, Any] = {"symbol": order.symbol, "qty": str(order.quantity), "notional": None,
                            "side": order.side.value, "type": order.type.value, "time_in_force": "day",
                            "client_order_id": order.client_order_id}
    if order.type is OrderType.LIMIT:
        assert order.limit_price is not None  # the risk engine refuses a limit order without one
        body["limit_price"] = _dollars(order.limit_price)
    return body


def _time(text: object, where: str) -> dt.datetime | None:
    if text is None:
        return None
    raw = str(text)
    head, dot, rest = raw.partition(".")
    if dot:  # Alpaca writes up to nanoseconds; Python reads microseconds
        digits = "".join(c for c in rest if c.isdigit())
        raw = f"{head}.{digits[:6]}{rest[len(digits):]}"
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise BrokerError(f"{where}: {text!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise BrokerError(f"{where}: {text!r} has no UTC offset")
    return moment.astimezone(dt.UTC)


def order_from_alpaca(data: Any) -> BrokerOrder:
    if not isinstance(data, Mapping):
        raise BrokerError(f"Alpaca's order is not an object: {str(data)[:200]}")
    where = f"Alpaca order {data.get('id')}"
    side = data.get("side")
    if side not in ("buy", "sell"):
        raise BrokerError(f"{where}: side {side!r} is not buy or sell")
    filled = shares(data.get("filled_qty") or "0", f"{where}.filled_qty")
    price = data.get("filled_avg_price")
    return BrokerOrder(broker_id=str(data.get("id")), client_order_id=str(data.get("client_order_id")),
                       symbol=str(data.get("symbol")), side=Side(side),
                       quantity=shares(data.get("qty"), f"{where}.qty"), status=str(data.get("status")),
                       filled_quantity=filled,
                       filled_average_price=cents(price, f"{where}.filled_avg_price") if price else None,
                       filled_at=_time(data.get("filled_at"), f"{where}.filled_at"))


def _said(data: Any) -> str:
    return str(data.get("message") if isinstance(data, Mapping) else data)[:300]


class AlpacaTrading:
    name = "Alpaca"

    def __init__(self, tools: ToolCalls, connector: str = CONNECTOR) -> None:
        self.tools = tools
        self.connector = connector

    async def place(self, order: Order) -> BrokerOrder:
        result = await self.tools.call(self.connector, PLACE, {"body": order_body(order)})
        status, data = result.get("status"), result.get("data")
        if status == 200:
            return order_from_alpaca(data)
        if status == 422 and "client_order_id" in _said(data):
            raise DuplicateClientOrderId(f"Alpaca answered 422: {_said(data)}")
        if status in _LOST:
            raise AnswerLost(f"Alpaca answered {status}: {_said(data)}")
        hint = " (for 401/403 check the keys of the tenant's connection)" if status in (401, 403) else ""
        raise BrokerError(f"Alpaca refused order {order.client_order_id}: {status} {_said(data)}{hint}")

    async def find(self, client_order_id: str) -> BrokerOrder | None:
        result = await self.tools.call(self.connector, FIND, {"client_order_id": client_order_id})
        status, data = result.get("status"), result.get("data")
        if status == 200:
            return order_from_alpaca(data)
        if status == 404:
            return None
        raise BrokerError(f"Alpaca could not look up order {client_order_id}: {status} {_said(data)}")
