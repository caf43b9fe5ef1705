"""A local stand-in for Binance's public market data API, a real HTTP/1.1 server on 127.0.0.1, for ccxt.

It answers what ccxt's ``binance.fetch_ohlcv`` asks for, in Binance's wire format:

* ``GET /api/v3/exchangeInfo``: the spot markets (``symbols`` with base/quote assets, status, filters);
  ``GET /fapi/v1/exchangeInfo`` and ``GET /dapi/v1/exchangeInfo``: no futures markets (ccxt loads all three);
* ``GET /api/v3/klines?symbol=&interval=&startTime=&endTime=&limit=``: arrays ``[open time ms, "open", "high",
  "low", "close", "volume", close time ms, "quote volume", trades, "taker base volume", "taker quote volume",
  "0"]``, prices and volumes as decimal strings, at most ``limit`` (default 500, max 1000) from ``startTime``;
* ``GET /api/v3/time``: the server time. Anything else is 404 ``{"code": -1, "msg": ...}``; a bad parameter 400.

No key is needed: market data is public. The recording it serves is the desk's bundled daily bars (real prices),
each symbol quoted against USDT (``AAPL/USDT`` is AAPL's bars): ``1d`` candles only.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from oshal_trading.bars import cents_to_str, load_bundled
from oshal_trading.model import Bar

QUOTE = "USDT"
DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
_DAY_MS = 86_400_000


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def kline(bar: Bar) -> list[Any]:
    opened = int(bar.start.timestamp() * 1000)
    volume = f"{bar.volume}.00000000"
    quote_volume = f"{bar.volume * bar.close / 100:.8f}"
    return [opened, f"{cents_to_str(bar.open)}000000", f"{cents_to_str(bar.high)}000000",
            f"{cents_to_str(bar.low)}000000", f"{cents_to_str(bar.close)}000000", volume, opened + _DAY_MS - 1,
            quote_volume, max(1, bar.volume // 100), f"{bar.volume // 2}.00000000", "0.00000000", "0"]


def _market(base: str) -> dict[str, Any]:
    return {"symbol": f"{base}{QUOTE}", "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
            "quoteAsset": QUOTE, "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8, "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": True,
            "ocoAllowed": True, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
            "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00",
                         "tickSize": "0.01"},
                        {"filterType": "LOT_SIZE", "minQty": "1.00000000", "maxQty": "9000000.00000000",
                         "stepSize": "1.00000000"}],
            "permissions": ["SPOT"], "defaultSelfTradePreventionMode": "NONE",
            "allowedSelfTradePreventionModes": ["NONE"]}


class FakeBinance:
    def __init__(self) -> None:
        self.recording = {f"{symbol}{QUOTE}": bars for symbol, bars in load_bundled().items()}
        self.paths: list[str] = []  # every request's path and query, in order
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def root(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FakeBinance:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="FakeBinance", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.paths.append(handler.path)
        parts = urlsplit(handler.path)
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        status, body = self.answer(parts.path, query)
        payload = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json;charset=UTF-8")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        if path == "/api/v3/time":
            return 200, {"serverTime": now}
        if path == "/api/v3/exchangeInfo":
            markets = [_market(name.removesuffix(QUOTE)) for name in sorted(self.recording)]
            return 200, {"timezone": "UTC", "serverTime": now, "rateLimits": [], "exchangeFilters": [],
                         "symbols": markets}
        if path in ("/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo"):
            return 200, {"timezone": "UTC", "serverTime": now, "rateLimits": [], "exchangeFilters": [],
                         "assets": [], "symbols": []}
        if path == "/api/v3/klines":
            return self._klines(query)
        return 404, {"code": -1, "msg": f"no route {path} in this recording"}

    def _klines(self, query: dict[str, str]) -> tuple[int, Any]:
        series = self.recording.get(query.get("symbol", ""))
        if series is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        if query.get("interval") != "1d":
            return 400, {"code": -1120, "msg": "the recording holds 1d candles only"}
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
            start = int(query.get("startTime", 0))
            end = int(query.get("endTime", 2**62))
        except ValueError:
            return 400, {"code": -1100, "msg": "Illegal characters found in a parameter."}
        if not 1 <= limit <= MAX_LIMIT:
            return 400, {"code": -1100, "msg": "limit must be 1 to 1000"}
        rows = [kline(bar) for bar in series if start <= int(bar.start.timestamp() * 1000) <= end]
        return 200, rows[:limit]
