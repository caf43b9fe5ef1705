"""Pages: the Jinja2 templates, the context every page shares, and errors shown as pages instead of JSON."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine
from importlib.resources import files
from typing import Any
from urllib.parse import quote
from uuid import UUID

import psycopg
import psycopg_pool
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from redis.exceptions import RedisError

from oshal.api.app import status_of
from oshal.console.session import LOGIN_CSRF_COOKIE, form_token, plane_of, set_cookie
from oshal.errors import OshalError, Unauthorized
from oshal.logs import get_logger

log = get_logger(__name__)

_ENV = Environment(loader=FileSystemLoader(str(files("oshal.console") / "templates")),
                   autoescape=select_autoescape(default=True), undefined=StrictUndefined, trim_blocks=True,
                   lstrip_blocks=True)

# Pages of the navigation: (path, label, who sees it: member / platform)
NAV = (("/", "Overview", "member"), ("/tickets", "Tickets", "member"), ("/approvals", "Approvals", "member"),
       ("/bots", "Bots", "member"), ("/cost", "Cost", "member"), ("/connectors", "Connectors", "member"),
       ("/apps", "Applications", "member"),
       ("/security", "Security", "platform"), ("/architecture", "Architecture", "platform"))

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; media-src 'self'; connect-src 'self'; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def usd(micros: int | float | None) -> str:
    value = (micros or 0) / 1_000_000
    return f"${value:,.4f}" if 0 < abs(value) < 1 else f"${value:,.2f}"


def when(value: Any) -> str:
    if not isinstance(value, dt.datetime):
        return "—" if value is None else str(value)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(value: Any) -> str:
    if not isinstance(value, dt.datetime):
        return "—"
    seconds = (dt.datetime.now(dt.UTC) - value).total_seconds()
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{max(0, int(seconds))} s ago"


_ENV.filters.update(usd=usd, when=when, ago=ago)


async def page(request: Request, template: str, *, status: int = 200, title: str = "", **context: Any) -> Response:
    """A whole page, with the shared layout's context: who is signed in, the navigation they may see, the CSRF
    token for its forms."""
    who = getattr(request.state, "principal", None)
    platform = bool(getattr(request.state, "platform_operator", False))
    tenant = await _tenant_name(request, who.tenant_id) if who is not None else ""
    nav = [(path, label) for path, label, audience in NAV if audience == "member" or platform]
    html = _ENV.get_template(template).render(
        request=request, who=who, tenant=tenant, operator=who is not None and who.role.value == "operator",
        platform=platform, nav=nav, path=request.url.path, csrf=form_token(request), title=title, **context)
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    login_token = getattr(request.state, "login_csrf", None)
    if login_token and request.cookies.get(LOGIN_CSRF_COOKIE) != login_token:
        set_cookie(request, response, LOGIN_CSRF_COOKIE, login_token, max_age=3600)
    return response


async def _tenant_name(request: Request, tenant_id: UUID) -> str:
    try:
        return await plane_of(request).admin.tenant_name(tenant_id)
    except (psycopg.Error, psycopg_pool.PoolTimeout):  # the error page of a database outage still renders
        return ""


def fragment(template: str, **context: Any) -> str:
    """A piece of a page (rendered the same way), for the live updates."""
    return _ENV.get_template(template).render(**context)


async def error_page(request: Request, status: int, message: str, hint: str = "") -> Response:
    return await page(request, "error.html", status=status, title=f"Error {status}", message=message, hint=hint)


class PageRoute(APIRoute):
    """A console route: a refusal or failure is a page that says what went wrong (signed-out GETs go to the login
    page and come back), not the API's JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_page(request: Request) -> Response:
            try:
                return await handle(request)
            except Unauthorized as refused:
                if request.method == "GET":
                    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
                return await error_page(request, 401, refused.message, refused.hint or "")
            except OshalError as error:
                return await error_page(request, status_of(error), error.message, error.hint or "")
            except RequestValidationError as invalid:
                problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                                     for e in list(invalid.errors())[:5])
                return await error_page(request, 422, f"the request was not valid: {problems}")
            except (RedisError, psycopg.OperationalError, psycopg_pool.PoolTimeout) as down:
                log.warning("console page: a backing service is unavailable", path=request.url.path,
                            error=type(down).__name__)
                response = await error_page(request, 503, "a backing service is unavailable; retry shortly",
                                            "the platform's readiness is at /readyz")
                response.headers["Retry-After"] = "1"
                return response

        return handle_page
