"""A local stand-in for Alpaca's market data API (data.alpaca.markets), a real HTTP/1.1 server on 127.0.0.1.

It speaks the wire format of the real Bars API, ``GET /v2/stocks/{symbol}/bars``: the ``APCA-API-KEY-ID`` and
``APCA-API-SECRET-KEY`` headers (401 without them, 403 with wrong ones, as ``{"message": ...}``); the query
``timeframe`` (required), ``start`` and ``end`` (RFC 3339, or a date; both inclusive), ``limit`` (1 to 10000,
default 1000), ``page_token``, ``adjustment`` and ``feed``; the answer ``{"bars": [{"t", "o", "h", "l", "c", "v", "n",
"vw"}, ...], "symbol": ..., "next_page_token": ...}``, ``bars`` null when there are none, prices as JSON numbers,
a daily bar stamped at midnight New York time, and a next_page_token (opaque base64) while more bars remain. A bad
parameter gets 422 with Alpaca's ``{"code", "message"}``.

The recording it serves is the desk's bundled daily bars (real prices, ``oshal_trading/data``): ``1Day`` only;
other timeframes get 422 (the recording has nothing to aggregate them from). ``n`` and ``vw`` are not in the
recording and are derived (a trade per 100 shares; the typical price).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

from oshal_trading.bars import load_bundled
from oshal_trading.model import Bar

NEW_YORK = ZoneInfo("America/New_York")
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000


@dataclass(frozen=True)
class AlpacaRequest:
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def alpaca_bar(bar: Bar) -> dict[str, Any]:
    """A desk bar as Alpaca sends it: stamped at midnight New York of its trading date, prices in dollars."""
    day = bar.start.date()
    stamp = dt.datetime(day.year, day.month, day.day, tzinfo=NEW_YORK).astimezone(dt.UTC)
    typical = round((bar.high + bar.low + bar.close) / 300, 6)
    return {"t": stamp.isoformat().replace("+00:00", "Z"), "o": bar.open / 100, "h": bar.high / 100,
            "l": bar.low / 100, "c": bar.close / 100, "v": bar.volume, "n": max(1, bar.volume // 100),
            "vw": typical}


class FakeAlpacaData:
    def __init__(self, key_id: str = "fake-key-id", secret: str = "fake-secret-key") -> None:
        self.key_id, self.secret = key_id, secret
        self.recording: dict[str, list[Bar]] = load_bundled()
        self.requests: list[AlpacaRequest] = []
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def root(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FakeAlpacaData:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="FakeAlpacaData", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeAlpacaData:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the API ------------------------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        request = AlpacaRequest(unquote(parts.path), query, {k.lower(): v for k, v in handler.headers.items()})
        with self._lock:
            self.requests.append(request)
        status, body = self.answer(request)
        payload = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def answer(self, request: AlpacaRequest) -> tuple[int, Any]:
        key_id, secret = request.headers.get("apca-api-key-id"), request.headers.get("apca-api-secret-key")
        if not key_id or not secret:
            return 401, {"message": "unauthorized."}
        if (key_id, secret) != (self.key_id, self.secret):
            return 403, {"message": "forbidden."}
        segments = request.path.strip("/").split("/")
        if len(segments) != 4 or segments[:2] != ["v2", "stocks"] or segments[3] != "bars":
            return 404, {"message": "Not Found"}
        return self._bars(segments[2], request.query)

    def _bars(self, symbol: str, query: dict[str, str]) -> tuple[int, Any]:
        if "timeframe" not in query:
            return 422, {"code": 42210000, "message": "timeframe: required"}
        if query["timeframe"] != "1Day":
            return 422, {"code": 42210000, "message": f"the recording holds 1Day bars only, not {query['timeframe']}"}
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
            start = _moment(query.get("start"), dt.datetime.min.replace(tzinfo=dt.UTC))
            end = _moment(query.get("end"), dt.datetime.max.replace(tzinfo=dt.UTC))
            after = _unpage(query["page_token"]) if query.get("page_token") else None
        except ValueError as e:
            return 422, {"code": 42210000, "message": str(e)}
        if not 1 <= limit <= MAX_LIMIT:
            return 422, {"code": 42210000, "message": "invalid limit: must be between 1 and 10000"}
        if query.get("adjustment", "raw") != "raw":
            return 422, {"code": 42210000, "message": "the recording holds unadjusted (raw) bars only"}
        wanted = [alpaca_bar(bar) for bar in self.recording.get(symbol.upper(), [])]
        wanted = [b for b in wanted if start <= _moment(b["t"], start) <= end and (after is None or b["t"] > after)]
        page = wanted[:limit]
        more = len(wanted) > limit
        return 200, {"bars": page or None, "symbol": symbol.upper(),
                     "next_page_token": _page_token(symbol, page[-1]["t"]) if more else None}


def _moment(text: str | None, default: dt.datetime) -> dt.datetime:
    if text is None:
        return default
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"invalid time {text!r}: use RFC-3339") from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _page_token(symbol: str, last_t: str) -> str:
    return base64.b64encode(f"{symbol.upper()};{last_t}".encode()).decode()


def _unpage(token: str) -> str:
    try:
        _, last_t = base64.b64decode(token, validate=True).decode().split(";", 1)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("invalid page_token") from None
    return last_t
