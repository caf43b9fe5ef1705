"""A local stand-in for Alpaca's trading API (paper-api.alpaca.markets), a real HTTP/1.1 server on 127.0.0.1.

It speaks the wire format of the real Orders API: ``POST /v2/orders`` (a JSON order request: ``symbol``, ``qty`` or
``notional``, ``side``, ``type``, ``time_in_force``, ``limit_price``, ``client_order_id``), ``GET /v2/orders/{id}``
and ``GET /v2/orders:by_client_order_id?client_order_id=``; the ``APCA-API-KEY-ID`` and ``APCA-API-SECRET-KEY``
headers (401 without them, 403 with wrong ones, as ``{"message": ...}``); errors as ``{"code", "message"}``; a
client order id used before gets 422 ``client_order_id must be unique``, as Alpaca answers; an unknown order 404.
An order is the Order object, its numbers as decimal strings (``qty``, ``filled_qty``, ``filled_avg_price``), times
RFC 3339 with microseconds.

Fills are reported on the order object, as Alpaca does: a market order of a symbol the test gave a price to
(``prices``, dollars as text) fills in full at once at that price (``status`` filled, ``filled_qty``,
``filled_avg_price``, ``filled_at`` at ``clock``); a symbol without a price stays ``accepted`` with nothing filled.
``lose_answers`` makes the next order requests lose their answer after the order was taken (a 504, as a gateway in
between would answer): the order exists, the caller does not know it.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class TradingRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class FakeAlpacaTrading:
    def __init__(self, key_id: str = "fake-key-id", secret: str = "fake-secret-key") -> None:
        self.key_id, self.secret = key_id, secret
        self.prices: dict[str, str] = {}
        self.clock = dt.datetime(2016, 1, 4, 14, 30, tzinfo=dt.UTC)
        self.lose_answers = 0
        self.orders: dict[str, dict[str, Any]] = {}  # by Alpaca's order id, in the order they were taken
        self.requests: list[TradingRequest] = []
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def root(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FakeAlpacaTrading:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner._handle(self, "GET")

            def do_POST(self) -> None:
                owner._handle(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="FakeAlpacaTrading", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeAlpacaTrading:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def order_requests(self) -> list[TradingRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path == "/v2/orders"]

    # -- the API ------------------------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        request = TradingRequest(method, unquote(parts.path), query,
                                 {k.lower(): v for k, v in handler.headers.items()}, body)
        with self._lock:
            self.requests.append(request)
            status, answer = self.answer(request)
        payload = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def answer(self, request: TradingRequest) -> tuple[int, Any]:
        key_id, secret = request.headers.get("apca-api-key-id"), request.headers.get("apca-api-secret-key")
        if not key_id or not secret:
            return 401, {"message": "unauthorized."}
        if (key_id, secret) != (self.key_id, self.secret):
            return 403, {"message": "forbidden."}
        if request.method == "POST" and request.path == "/v2/orders":
            return self._place(request.body)
        if request.method == "GET" and request.path == "/v2/orders:by_client_order_id":
            wanted = request.query.get("client_order_id")
            if not wanted:
                return 422, {"code": 40010000, "message": "client_order_id is required"}
            found = next((o for o in self.orders.values() if o["client_order_id"] == wanted), None)
            return (200, found) if found else (404, {"code": 40410000, "message": "order not found"})
        if request.method == "GET" and request.path.startswith("/v2/orders/"):
            found = self.orders.get(request.path.removeprefix("/v2/orders/"))
            return (200, found) if found else (404, {"code": 40410000, "message": "order not found"})
        return 404, {"code": 40410000, "message": "endpoint not found"}

    def _place(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 422, {"code": 40010000, "message": "request body format is invalid"}
        for name in ("symbol", "side", "type", "time_in_force"):
            if not isinstance(body.get(name), str) or not body[name]:
                return 422, {"code": 40010000, "message": f"{name} is required"}
        if body["side"] not in ("buy", "sell"):
            return 422, {"code": 40010000, "message": "invalid side"}
        if body["type"] not in ("market", "limit"):
            return 422, {"code": 40010000, "message": f"invalid order type for this fake: {body['type']}"}
        if body.get("qty") is not None and body.get("notional") is not None:
            return 422, {"code": 40010000, "message": "only one of qty or notional may be given"}
        try:
            qty = Decimal(str(body.get("qty")))
        except InvalidOperation:
            return 422, {"code": 40010000, "message": "qty is required and must be a number"}
        if not qty.is_finite() or qty <= 0:
            return 422, {"code": 40010000, "message": "qty must be > 0"}
        if body["type"] == "limit" and body.get("limit_price") is None:
            return 422, {"code": 40010000, "message": "limit_price is required for limit orders"}
        client_order_id = body.get("client_order_id") or str(uuid.uuid4())
        if len(client_order_id) > 48:
            return 422, {"code": 40010000, "message": "client_order_id must be at most 48 characters"}
        if any(o["client_order_id"] == client_order_id for o in self.orders.values()):
            return 422, {"code": 40010001, "message": "client_order_id must be unique"}
        now = _stamp(self.clock)
        order: dict[str, Any] = {
            "id": str(uuid.uuid4()), "client_order_id": client_order_id, "created_at": now, "updated_at": now,
            "submitted_at": now, "filled_at": None, "expired_at": None, "canceled_at": None, "failed_at": None,
            "replaced_at": None, "replaced_by": None, "replaces": None, "asset_id": str(uuid.uuid5(
                uuid.NAMESPACE_URL, body["symbol"])), "symbol": body["symbol"], "asset_class": "us_equity",
            "notional": None, "qty": str(qty), "filled_qty": "0", "filled_avg_price": None, "order_class": "",
            "order_type": body["type"], "type": body["type"], "side": body["side"],
            "time_in_force": body["time_in_force"], "limit_price": body.get("limit_price"), "stop_price": None,
            "status": "accepted", "extended_hours": False, "legs": None, "trail_percent": None, "trail_price": None,
            "hwm": None}
        price = self.prices.get(body["symbol"])
        if price is not None and body["type"] == "market":
            order |= {"status": "filled", "filled_qty": str(qty), "filled_avg_price": price, "filled_at": now}
        self.orders[order["id"]] = order
        if self.lose_answers > 0:
            self.lose_answers -= 1
            return 504, {"message": "Gateway Timeout"}
        return 200, order
