"""A local stand-in for a BigCommerce-like store API, a real HTTP/1.1 server on 127.0.0.1.

Routes (every ``/v3`` route needs a credential: ``X-Auth-Token`` or ``?api_key=`` with the api key, ``Authorization:
Bearer`` with the static bearer token or a token issued by ``/oauth/token``, or ``Authorization: Basic`` user:password;
a refused one gets 401 with the presented value echoed in ``detail``, as careless APIs do):

* ``GET /v3/catalog/products?page=&limit=``: ``{"data": [...], "meta": {...}}`` with ``Link: <...>; rel="next"``;
* ``GET /v3/catalog/products/{id}``: one product, or 404;
* ``POST /v3/orders``: 201 with the order (the JSON body echoed with an id);
* ``DELETE /v3/carts/{id}``: 204;
* ``GET /v3/slow?seconds=``: answers late; ``GET /v3/big?bytes=``: a JSON list at least that large;
  ``GET /v3/redirect?to=URL&status=302``: a redirect anywhere (a private address, another scheme...), or to
  itself without ``to``;
* ``GET /v3/account``: a careless debug dump echoing the credential the request presented, in every encoding an
  API might use (see :func:`echoed_encodings`);
* ``POST /oauth/token``: ``client_credentials`` (client id and secret by HTTP Basic) and ``refresh_token`` grants,
  tokens living ``token_ttl`` seconds, refresh tokens rotated when ``rotate_refresh_tokens``.

Steering: ``fail_next(status, times, retry_after)`` answers the next API requests with 429/5xx;
``revoke_access_tokens()`` makes issued tokens invalid; ``reject_bearer`` refuses every bearer token;
``link_root`` points pagination links elsewhere.
Every request is recorded in ``requests`` with its raw target, parsed query, lower-cased headers, body and arrival
time (``time.monotonic()``).
"""

from __future__ import annotations

import base64
import itertools
import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit


@dataclass(frozen=True)
class ShopRequest:
    method: str
    target: str  # the request target exactly as sent (percent-encoding intact)
    path: str  # target without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: Any  # JSON, the form as a dict (token endpoint), text, or None
    at: float  # time.monotonic() on arrival


@dataclass
class _Answer:
    status: int
    body: Any = None
    headers: dict[str, str] | None = None
    raw: bytes | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client hung up on purpose (size cap, timeout): not worth a traceback
        super().handle_error(request, client_address)


def echoed_encodings(secret: str) -> dict[str, str]:
    """``secret`` the ways a careless API echoes it: as is, in upper and lower case, URL-encoded, as hex, in base64
    (standard and URL-safe, padded and not), and inside longer base64 strings at each byte alignment."""
    raw = secret.encode()
    forms = {"verbatim": secret, "upper": secret.upper(), "lower": secret.lower(), "url": quote(secret, safe=""),
             "hex": raw.hex(), "HEX": raw.hex().upper(), "base64": base64.b64encode(raw).decode(),
             "base64_unpadded": base64.b64encode(raw).decode().rstrip("="),
             "base64url": base64.urlsafe_b64encode(raw).decode(),
             "base64url_unpadded": base64.urlsafe_b64encode(raw).decode().rstrip("=")}
    for offset, prefix in enumerate((b"", b"k=", b"key=")):  # 0, 2 and 4 bytes in: the three base64 alignments
        embedded = prefix + raw + b"&scope=all"
        forms[f"base64_at_{offset}"] = base64.b64encode(embedded).decode()
        forms[f"base64url_at_{offset}"] = base64.urlsafe_b64encode(embedded).decode().rstrip("=")
        forms[f"basic_at_{offset}"] = "Basic " + base64.b64encode(b"user:" + prefix + raw).decode()
    return forms


def product(n: int) -> dict[str, Any]:
    return {"id": n, "name": f"Product {n}", "price": 10.0 * n, "sku": f"SKU-{n:03d}"}


class FakeShop:
    def __init__(self, *, api_key: str = "shop-api-key-0123456789", bearer_token: str = "shop-bearer-0123456789",
                 basic: tuple[str, str] = ("shopuser", "shop-password-0123"), client_id: str = "shop-client",
                 client_secret: str = "shop-client-secret-0123", refresh_token: str = "rt-0", token_ttl: float = 3600,
                 rotate_refresh_tokens: bool = False, products: int = 7) -> None:
        self.api_key, self.bearer_token, self.basic = api_key, bearer_token, basic
        self.client_id, self.client_secret = client_id, client_secret
        self.refresh_token = refresh_token
        self.token_ttl = token_ttl
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.products = products
        self.reject_bearer = False
        self.link_root: str | None = None  # where Link: rel="next" points (default: this server)
        self.requests: list[ShopRequest] = []
        self._issued: dict[str, float] = {}  # access token -> expiry (monotonic)
        self._failures: deque[tuple[int, str | None]] = deque()
        self._tokens = itertools.count(1)
        self._orders = itertools.count(101)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- steering -------------------------------------------------------------------------------------------------
    def fail_next(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        with self._lock:
            self._failures.extend([(status, retry_after)] * times)

    def revoke_access_tokens(self) -> None:
        with self._lock:
            self._issued.clear()

    @property
    def api_requests(self) -> list[ShopRequest]:
        return [r for r in self.requests if r.path.startswith("/v3/")]

    @property
    def token_requests(self) -> list[ShopRequest]:
        return [r for r in self.requests if r.path == "/oauth/token"]

    # -- lifecycle ------------------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeShop:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def handle_one(self) -> None:
                owner._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_one

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="FakeShop", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeShop:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- plumbing -------------------------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        body: Any = None
        if raw and headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        elif raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        parts = urlsplit(handler.path)
        request = ShopRequest(handler.command, handler.path, parts.path, parse_qs(parts.query, keep_blank_values=True),
                              headers, body, time.monotonic())
        with self._lock:
            self.requests.append(request)
            number = len(self.requests)
        answer = self._route(request)
        if answer is None:
            return  # shutting down mid slow reply: drop the connection
        payload = answer.raw if answer.raw is not None else (
            b"" if answer.body is None else json.dumps(answer.body).encode())
        try:
            handler.send_response(answer.status)
            if payload or answer.status != 204:
                handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.send_header("X-Request-Id", f"req-{number}")
            for name, value in (answer.headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            if request.method != "HEAD":
                handler.wfile.write(payload)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up (a timeout or size-cap test)

    def _route(self, r: ShopRequest) -> _Answer | None:
        if r.path == "/oauth/token" and r.method == "POST":
            return self._token(r)
        if not r.path.startswith("/v3/"):
            return _Answer(404, {"status": 404, "title": "Not Found"})
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
        if failure is not None:
            status, retry_after = failure
            return _Answer(status, {"status": status, "title": "Too Many Requests" if status == 429 else "Unavailable"},
                           {"Retry-After": retry_after} if retry_after is not None else None)
        refused = self._refused(r)
        if refused is not None:
            return _Answer(401, {"status": 401, "title": "Unauthorized",
                                 "detail": f"the credential {refused!r} is not valid for this store"})
        segments = r.path.split("/")[2:]  # after "/v3"
        if r.method == "GET" and segments == ["catalog", "products"]:
            return self._list(r)
        if r.method == "GET" and segments[:2] == ["catalog", "products"] and len(segments) == 3:
            raw_id = unquote(segments[2])
            if raw_id.isdigit() and 1 <= int(raw_id) <= self.products:
                return _Answer(200, {"data": product(int(raw_id))}, {"ETag": f'"p{raw_id}"'})
            return _Answer(404, {"status": 404, "title": "The requested product was not found."})
        if r.method == "POST" and segments == ["orders"]:
            if not isinstance(r.body, dict):
                return _Answer(422, {"status": 422, "title": "body must be a JSON object"})
            return _Answer(201, {"data": {"id": next(self._orders), "status": "pending", **r.body}})
        if r.method == "GET" and segments == ["account"]:
            return _Answer(200, {"account": "demo", "debug": echoed_encodings(self._presented(r))})
        if r.method == "DELETE" and segments[:1] == ["carts"] and len(segments) == 2:
            return _Answer(204)
        if r.method == "GET" and segments == ["slow"]:
            if self._closing.wait(float(r.query.get("seconds", ["2"])[0])):
                return None
            return _Answer(200, {"data": "late"})
        if r.method == "GET" and segments == ["big"]:
            size = int(r.query.get("bytes", ["100000"])[0])
            return _Answer(200, ["x" * 98] * (size // 100 + 1))
        if r.method == "GET" and segments == ["redirect"]:
            location = r.query.get("to", [r.target])[0]  # no target: a redirect loop
            return _Answer(int(r.query.get("status", ["302"])[0]), None, {"Location": location})
        return _Answer(404, {"status": 404, "title": "Not Found"})

    def _refused(self, r: ShopRequest) -> str | None:
        """None when the request carries a valid credential, else what it presented."""
        if r.headers.get("x-auth-token") == self.api_key or r.query.get("api_key") == [self.api_key]:
            return None
        auth = r.headers.get("authorization", "")
        kind, _, value = auth.partition(" ")
        if kind == "Bearer" and not self.reject_bearer:
            with self._lock:
                expiry = self._issued.get(value)
            if value == self.bearer_token or (expiry is not None and time.monotonic() < expiry):
                return None
        if kind == "Basic" and base64.b64decode(value or "").decode(errors="replace") == ":".join(self.basic):
            return None
        return auth or r.headers.get("x-auth-token") or (r.query.get("api_key") or [""])[0]

    @staticmethod
    def _presented(r: ShopRequest) -> str:
        """The credential a request carried, as the API sees it (decoded from Basic, without "Bearer ")."""
        kind, _, value = r.headers.get("authorization", "").partition(" ")
        if kind == "Basic":
            return base64.b64decode(value).decode(errors="replace")
        return value or r.headers.get("x-auth-token") or (r.query.get("api_key") or [""])[0]

    def _list(self, r: ShopRequest) -> _Answer:
        page = int(r.query.get("page", ["1"])[0])
        limit = int(r.query.get("limit", ["50"])[0])
        pages = max(1, -(-self.products // limit))
        items = [product(n) for n in range((page - 1) * limit + 1, min(page * limit, self.products) + 1)]
        headers = {}
        if page < pages:
            root = self.link_root or self.root
            headers["Link"] = f'<{root}/v3/catalog/products?page={page + 1}&limit={limit}>; rel="next"'
        return _Answer(200, {"data": items, "meta": {"pagination": {"total": self.products, "current_page": page,
                                                                      "total_pages": pages}}}, headers)

    def _token(self, r: ShopRequest) -> _Answer:
        form = r.body if isinstance(r.body, dict) else {}
        grant = form.get("grant_type")
        if grant == "client_credentials":
            kind, _, value = r.headers.get("authorization", "").partition(" ")
            user, _, password = base64.b64decode(value or "").decode(errors="replace").partition(":")
            if kind != "Basic" or (unquote(user), unquote(password)) != (self.client_id, self.client_secret):
                return _Answer(401, {"error": "invalid_client", "error_description": "client authentication failed"})
        elif grant == "refresh_token":
            if form.get("refresh_token") != self.refresh_token:
                return _Answer(400, {"error": "invalid_grant", "error_description": "refresh token is not valid"})
        else:
            return _Answer(400, {"error": "unsupported_grant_type"})
        number = next(self._tokens)
        token = f"at-{number}"
        with self._lock:
            self._issued[token] = time.monotonic() + self.token_ttl
        body: dict[str, Any] = {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl}
        if grant == "refresh_token" and self.rotate_refresh_tokens:
            self.refresh_token = body["refresh_token"] = f"rt-{number}"
        return _Answer(200, body, {"Cache-Control": "no-store"})
