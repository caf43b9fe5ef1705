"""The connector runtime: executes one operation of a connector against the real API.

``await runtime.call(manifest, "getProduct", {"id": 42}, credential)`` validates the arguments, builds the
request, authenticates it, sends it (rate limited, SSRF-guarded, retried, paginated, size-capped) and returns a
:class:`CallResult`.

Arguments come in either of two shapes:

* flat (simplest for models): ``{"id": 42, "limit": 10, "body": {...}}``: each key is a parameter name, wherever
  the parameter goes; ``"body"`` is the JSON request body. A name declared in two locations, or a parameter literally
  named ``body``, needs the structured shape;
* structured: ``{"path": {...}, "query": {...}, "header": {...}, "body": ...}``.

``None`` for a parameter or the body means "not given". Values are checked with JSON Schema (Draft 2020-12, no
format checks) against the parameter schemas and ``body_schema``.

Behaviour worth knowing:

* Any HTTP status the API answers is returned in the result, 401 and 403 included, so the caller can report it
  (with OAuth2 a 401 first refreshes the token once and retries). Errors are raised only for what is not an API
  answer: bad arguments (Invalid), refused by policy (Forbidden, NotFound), unreachable or timed out (Unavailable).
* Retried with exponential backoff and jitter, honouring Retry-After (capped at 30 s): 429 and 503 for every method;
  502 and 504 only for idempotent methods (a gateway may already have forwarded a POST, and repeating an order or a
  payment is worse than reporting the error); connection failures always (nothing was sent). Read timeouts are not
  retried. When the retries run out the last answer is returned.
* Redirects are followed by hand, at most 3, same scheme only, each re-checked by the SSRF guard. A hop that leaves
  the base_url's origin carries no credentials, and ``allow_private_network`` covers only the hosts the manifest
  names (base_url, token_url), never a host an API redirects or paginates to.
* GET results that are a JSON list (or hold one under ``data``/``items``/``results``) follow ``Link: rel="next"`` on
  the same origin, up to ``max_pages`` pages, concatenating the lists (other keys come from the first page).
* ``truncated`` means the data is incomplete: the body passed ``max_response_bytes`` (then ``data`` is the partial
  body as text when it was the first page, or the pages read before it), or more pages were left.
* OAuth2 refresh tokens the server rotates are kept in memory by this runtime and passed to the call's
  ``on_refresh_token(new_token)`` callback (sync or async) for the caller to persist; they are never put on results.
* Credentials (and OAuth access tokens) are redacted from results, errors and logs, even when an API echoes them,
  in any encoding :mod:`oshal.connectors.redaction` knows (case, URL, hex, base64 at any offset).
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote_plus

import httpx

from oshal.connectors._oauth import OAuthTokens, RefreshCallback
from oshal.connectors._ratelimit import DEFAULT_RATE, RateLimiter
from oshal.connectors._request import build_request
from oshal.connectors._ssrf import check_url, guarded_transport, private_ok_hosts, url_host
from oshal.connectors.manifest import AuthKind, AuthScheme, ConnectorManifest, Operation
from oshal.connectors.redaction import Redactor
from oshal.errors import ConfigError, Forbidden, Unavailable
from oshal.logs import get_logger

log = get_logger(__name__)

SAFE_RESPONSE_HEADERS = ("content-type", "etag", "x-request-id", "retry-after")
RETRY_ANY_METHOD = frozenset({429, 503})
RETRY_IDEMPOTENT = frozenset({502, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 3
RETRY_AFTER_CAP_S = 30.0
TOKEN_RESPONSE_CAP = 64 * 1024
_LIST_KEYS = ("data", "items", "results")
_OAUTH = frozenset({"oauth2_client_credentials", "oauth2_refresh_token"})
Origin = tuple[str, str, int | None]


@dataclass(frozen=True)
class Credential:
    """A secret for one auth kind: api key, bearer token, "user:password", client secret or refresh token."""

    kind: AuthKind
    secret: str = field(repr=False)
    client_id: str | None = None

    def __repr__(self) -> str:
        return f"Credential(kind={self.kind!r}, client_id={self.client_id!r}, secret='[redacted]')"

    __str__ = __repr__


@dataclass(frozen=True)
class CallResult:
    status: int
    data: Any  # parsed JSON, text, or None (empty body, HEAD)
    headers: dict[str, str]  # only SAFE_RESPONSE_HEADERS
    pages: int  # responses merged into data
    elapsed_ms: float
    truncated: bool

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class _Page:
    status: int
    headers: httpx.Headers
    body: bytes
    truncated: bool
    url: httpx.URL  # as requested, without auth parameters


@dataclass
class _Call:
    manifest: ConnectorManifest
    op: Operation
    scheme: AuthScheme | None
    credential: Credential | None
    on_refresh_token: RefreshCallback | None
    origin: Origin
    secrets: Redactor
    access_token: str | None = None

    @property
    def what(self) -> str:
        return f"connector {self.manifest.id} operation {self.op.name}"

    def clean(self, text: str) -> str:
        return self.secrets.text(text)[:300]


class ConnectorRuntime:
    def __init__(self, *, timeout_s: float = 30.0, max_retries: int = 3, max_response_bytes: int = 5_000_000,
                 max_pages: int = 5, transport: httpx.AsyncBaseTransport | None = None,
                 rate_limits: Mapping[str, tuple[float, float]] | None = None,
                 default_rate_limit: tuple[float, float] = DEFAULT_RATE, backoff_s: float = 0.5) -> None:
        """``rate_limits`` maps connector id to (requests per second, burst); ``backoff_s`` is the first retry
        delay, doubled per retry. A ``transport`` given here gets the URL checks but not the connect-time pinning."""
        if timeout_s <= 0 or max_retries < 0 or max_response_bytes < 1 or max_pages < 1 or backoff_s < 0:
            raise ConfigError("connector runtime limits must be positive (timeout_s, max_response_bytes, max_pages) "
                              "and not negative (max_retries, backoff_s)")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_response_bytes = max_response_bytes
        self.max_pages = max_pages
        self.backoff_s = backoff_s
        self._timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s / 2))
        self._owns_transport = transport is None
        self._transport = transport or guarded_transport()
        self._limiter = RateLimiter(rate_limits, default_rate_limit)
        self._oauth = OAuthTokens(self._post_form)

    async def __aenter__(self) -> ConnectorRuntime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_transport:
            await self._transport.aclose()

    async def call(self, manifest: ConnectorManifest, operation_name: str, arguments: Mapping[str, Any],
                   credential: Credential | None, *, on_refresh_token: RefreshCallback | None = None) -> CallResult:
        started = time.monotonic()
        op = manifest.callable_operation(operation_name)
        base = _base_url(manifest)
        scheme = _select_scheme(manifest, credential)
        ctx = _Call(manifest, op, scheme, credential, on_refresh_token, _origin(base),
                    Redactor(_secret_parts(credential) if scheme else ()))
        path, query, headers, content = build_request(manifest, op, arguments)
        url = httpx.URL(str(base).rstrip("/") + "/" + path.lstrip("/"), params=query or None)
        hosts = {url_host(base)} | {_token_host(manifest, s.token_url) for s in manifest.auth if s.token_url}
        reset = private_ok_hosts.set(frozenset(hosts) if manifest.allow_private_network else frozenset())
        try:
            result = await self._run(ctx, op.method, url, headers, content, started)
        finally:
            private_ok_hosts.reset(reset)
        log.info("connector.call", connector=manifest.id, operation=op.name, status=result.status,
                 pages=result.pages, truncated=result.truncated, elapsed_ms=round(result.elapsed_ms, 1))
        return result

    # -- one call: first page, then more pages -------------------------------------------------------------------
    async def _run(self, ctx: _Call, method: str, url: httpx.URL, headers: dict[str, str], content: bytes | None,
                   started: float) -> CallResult:
        budget = self.max_response_bytes
        page = await self._fetch(ctx, method, url, headers, content, budget)
        budget -= len(page.body)
        safe = {k: ctx.clean(page.headers[k]) for k in SAFE_RESPONSE_HEADERS if k in page.headers}
        truncated = page.truncated
        data: Any = page.body.decode("utf-8", "replace") if truncated else _decode(page)
        pages = 1
        items, key = _items(data)
        if method == "GET" and 200 <= page.status < 300 and not truncated and items is not None:
            collected = list(items)
            next_url = _next_link(page)
            while next_url is not None:
                if pages >= self.max_pages or _origin(next_url) != ctx.origin:
                    truncated = True
                    break
                more_page = await self._fetch(ctx, "GET", next_url, headers, None, budget)
                more, _ = _items(_decode(more_page))
                if not 200 <= more_page.status < 300 or more_page.truncated or more is None:
                    truncated = True
                    break
                budget -= len(more_page.body)
                collected.extend(more)
                pages += 1
                next_url = _next_link(more_page)
            data = collected if key is None else {**data, key: collected}
        return CallResult(status=page.status, data=ctx.secrets.value(data), headers=safe, pages=pages,
                          elapsed_ms=(time.monotonic() - started) * 1000, truncated=truncated)

    # -- one page: redirects -------------------------------------------------------------------------------------
    async def _fetch(self, ctx: _Call, method: str, url: httpx.URL, headers: dict[str, str], content: bytes | None,
                     limit: int) -> _Page:
        for hop in range(MAX_REDIRECTS + 1):
            page = await self._send(ctx, method, url, headers, content, limit)
            location = page.headers.get("location")
            if page.status not in REDIRECT_STATUSES or not location:
                return page
            if hop == MAX_REDIRECTS:
                break
            try:
                target = url.join(location)
            except httpx.InvalidURL as e:
                raise Unavailable(f"{ctx.what}: the API redirected to an invalid URL") from e
            if target.scheme != url.scheme:
                raise Forbidden(f"{ctx.what}: refused a redirect from {url.scheme} to {target.scheme or '(none)'}; "
                                "only same-scheme redirects are followed")
            if page.status == 303 or (page.status in (301, 302) and method == "POST"):
                method = "HEAD" if method == "HEAD" else "GET"
                content = None
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            url = target
        raise Unavailable(f"{ctx.what}: the API redirected more than {MAX_REDIRECTS} times",
                          hint="check the connector's base_url and operation path")

    # -- one request: rate limit, SSRF check, auth, retries ------------------------------------------------------
    async def _send(self, ctx: _Call, method: str, url: httpx.URL, headers: dict[str, str], content: bytes | None,
                    limit: int) -> _Page:
        authed = ctx.scheme is not None and _origin(url) == ctx.origin
        attempt, refreshed, stale = 0, False, None
        while True:
            await self._limiter.acquire(ctx.manifest.id)
            await check_url(url, what=ctx.what)
            send_url, send_headers = url, dict(headers)
            if authed:
                send_url = await self._authorize(ctx, url, send_headers, stale)
            try:
                page = await self._exchange(method, send_url, send_headers, content, limit)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
                if attempt >= self.max_retries:
                    raise Unavailable(f"{ctx.what}: could not connect to {url.host}:{url.port or '(default port)'} "
                                      f"after {attempt + 1} attempt(s) ({type(e).__name__}: {ctx.clean(str(e))})",
                                      hint="check the connector's base_url, or retry later") from e
                attempt += 1
                await asyncio.sleep(self._backoff(attempt))
                continue
            except (httpx.TimeoutException, TimeoutError) as e:
                raise Unavailable(f"{ctx.what}: no complete response within {self.timeout_s:g} s",
                                  hint="retry later, or raise the runtime's timeout_s") from e
            except httpx.HTTPError as e:
                raise Unavailable(f"{ctx.what}: the request failed ({type(e).__name__}: {ctx.clean(str(e))})",
                                  hint="retry later") from e
            page.url = url
            if page.status == 401 and authed and ctx.scheme is not None and ctx.scheme.kind in _OAUTH and not refreshed:
                refreshed, stale = True, ctx.access_token
                continue
            stale = None
            if attempt < self.max_retries and (page.status in RETRY_ANY_METHOD or (
                    page.status in RETRY_IDEMPOTENT and method in IDEMPOTENT_METHODS)):
                attempt += 1
                after = _retry_after(page.headers)
                delay = after if after is not None else self._backoff(attempt)
                log.info("connector.retry", connector=ctx.manifest.id, operation=ctx.op.name, status=page.status,
                         attempt=attempt, delay_s=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            return page

    def _backoff(self, attempt: int) -> float:
        return min(RETRY_AFTER_CAP_S, self.backoff_s * 2.0 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    async def _exchange(self, method: str, url: httpx.URL, headers: dict[str, str], content: bytes | None,
                        limit: int) -> _Page:
        request = httpx.Request(method, url, headers=headers, content=content,
                                extensions={"timeout": self._timeout.as_dict()})
        chunks: list[bytes] = []
        size, truncated = 0, False
        async with asyncio.timeout(self.timeout_s):
            response = await self._transport.handle_async_request(request)
            try:
                if method != "HEAD":
                    async for chunk in response.aiter_bytes():
                        if size + len(chunk) > limit:
                            chunks.append(chunk[:max(limit - size, 0)])
                            size, truncated = limit, True
                            break
                        chunks.append(chunk)
                        size += len(chunk)
            finally:
                await response.aclose()
        return _Page(response.status_code, response.headers, b"".join(chunks), truncated, url)

    # -- auth ----------------------------------------------------------------------------------------------------
    async def _authorize(self, ctx: _Call, url: httpx.URL, headers: dict[str, str], stale: str | None) -> httpx.URL:
        scheme, credential = ctx.scheme, ctx.credential
        assert scheme is not None and credential is not None
        if scheme.kind == "api_key":
            for key_scheme, value in _api_keys(ctx.manifest, credential.secret):
                if key_scheme.location == "query":
                    url = url.copy_set_param(key_scheme.name, value)
                else:
                    headers[key_scheme.name] = value
            return url
        elif scheme.kind == "bearer":
            headers["Authorization"] = f"Bearer {credential.secret}"
        elif scheme.kind == "basic":
            headers["Authorization"] = "Basic " + base64.b64encode(credential.secret.encode()).decode()
        else:
            token = await self._oauth.token(connector_id=ctx.manifest.id, scheme=scheme, secret=credential.secret,
                                            client_id=credential.client_id, on_refresh_token=ctx.on_refresh_token,
                                            stale=stale)
            ctx.access_token = token
            ctx.secrets.add(token)
            headers["Authorization"] = f"Bearer {token}"
        return url

    async def _post_form(self, url: httpx.URL, form: dict[str, str], headers: dict[str, str]) -> tuple[int, bytes]:
        """The token endpoint: SSRF-checked, not redirected, not retried, small answers only."""
        what = "OAuth2 token request"
        await check_url(url, what=what)
        content = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in form.items()).encode()
        try:
            page = await self._exchange("POST", url, {**headers, "Content-Type": "application/x-www-form-urlencoded"},
                                        content, TOKEN_RESPONSE_CAP)
        except (httpx.HTTPError, TimeoutError) as e:
            raise Unavailable(f"{what}: could not reach the token endpoint at {url.host} ({type(e).__name__})",
                              hint="retry later; if it persists, check the manifest's token_url") from e
        return page.status, page.body


# -- auth and URLs -----------------------------------------------------------------------------------------------
def _base_url(manifest: ConnectorManifest) -> httpx.URL:
    try:
        base = httpx.URL(manifest.base_url)
    except httpx.InvalidURL as e:
        raise ConfigError(f"connector {manifest.id} has an invalid base_url", hint="fix the manifest") from e
    if base.query or base.fragment:
        raise ConfigError(f"the base_url of connector {manifest.id} has a query or fragment",
                          hint="declare query parameters on the operations instead")
    return base


def _token_host(manifest: ConnectorManifest, token_url: str) -> str:
    try:
        return url_host(httpx.URL(token_url))
    except httpx.InvalidURL as e:
        raise ConfigError(f"connector {manifest.id} has an invalid token_url", hint="fix the manifest") from e


def _origin(url: httpx.URL) -> Origin:
    return url.scheme, url_host(url), url.port


def _select_scheme(manifest: ConnectorManifest, credential: Credential | None) -> AuthScheme | None:
    schemes = [s for s in manifest.auth if s.kind != "none"]
    if credential is not None and credential.kind == "none":
        credential = None
    if not schemes or (credential is None and len(schemes) < len(manifest.auth)):
        return None
    kinds = ", ".join(s.kind for s in schemes)
    if credential is None:
        raise Forbidden(f"connector {manifest.id} needs a credential ({kinds}) and none was given",
                        hint="connect the connector (store its credential) first")
    scheme = next((s for s in schemes if s.kind == credential.kind), None)
    if scheme is None:
        raise Forbidden(f"the credential given is {credential.kind} but connector {manifest.id} accepts {kinds}",
                        hint="store a credential of a kind the connector accepts")
    if not credential.secret:
        raise Forbidden(f"the {credential.kind} credential for connector {manifest.id} is empty",
                        hint="store the credential again")
    if scheme.kind == "api_key" and not scheme.name:
        raise ConfigError(f"the api_key auth scheme of connector {manifest.id} has no name",
                          hint="set the header or query parameter name in the manifest")
    if scheme.kind == "basic" and ":" not in credential.secret:
        raise Forbidden(f"the basic credential for connector {manifest.id} is not in user:password form",
                        hint="store it as user:password")
    return scheme


def _api_key_schemes(manifest: ConnectorManifest) -> list[AuthScheme]:
    return [s for s in manifest.auth if s.kind == "api_key"]


def _api_keys(manifest: ConnectorManifest, secret: str) -> list[tuple[AuthScheme, str]]:
    """Each api key the connector sends. One key scheme: the secret itself. Several (an API that wants a key id
    and a secret key, say): the secret is a JSON object with one value per scheme name."""
    schemes = _api_key_schemes(manifest)
    if len(schemes) <= 1:
        return [(schemes[0], secret)] if schemes else []
    names = [s.name for s in schemes]
    example = "{" + ", ".join(f'"{n}": "..."' for n in names) + "}"
    try:
        values = json.loads(secret)
    except ValueError:
        values = None
    if not isinstance(values, dict) or not all(isinstance(values.get(n), str) and values[n] for n in names):
        raise Forbidden(f"connector {manifest.id} sends {len(names)} api keys ({', '.join(names)}); the stored "
                        "credential must hold each of them", hint=f"store it as a JSON object: {example}")
    return [(s, str(values[s.name])) for s in schemes]


def _secret_parts(credential: Credential | None) -> set[str]:
    """What to redact: the credential, each key of a multi-key one, a basic password (the encodings come from
    the Redactor)."""
    if credential is None:
        return set()
    secret = credential.secret
    parts = {secret}
    try:
        values = json.loads(secret)
    except ValueError:
        values = None
    if isinstance(values, dict):  # several api keys in one credential: each is a secret of its own
        parts |= {str(v) for v in values.values() if isinstance(v, str)}
    if credential.kind == "basic":
        parts.add(secret.partition(":")[2])
    return parts


# -- responses ---------------------------------------------------------------------------------------------------
def _decode(page: _Page) -> Any:
    if not page.body:
        return None
    text = page.body.decode("utf-8", "replace")
    if "json" in page.headers.get("content-type", "").lower():
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _items(data: Any) -> tuple[list[Any] | None, str | None]:
    if isinstance(data, list):
        return data, None
    if isinstance(data, dict):
        for key in _LIST_KEYS:
            if isinstance(data.get(key), list):
                return data[key], key
    return None, None


def _next_link(page: _Page) -> httpx.URL | None:
    link = httpx.Response(page.status, headers=page.headers).links.get("next", {}).get("url")
    if not link:
        return None
    try:
        return page.url.join(link)
    except httpx.InvalidURL:
        return None


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)
