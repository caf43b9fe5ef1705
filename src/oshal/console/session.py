"""The console's auth: a session cookie instead of an API key, and a CSRF token on every form.

The dependencies here admit the same audiences as the API's (member, operator, platform operator) and are
registered with the access check, so each console route is checked against its row in :mod:`oshal.console.access`.
"""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request, Response

from oshal.api.access import Audience
from oshal.api.deps import GUARDS, audit_change, is_platform_operator
from oshal.console.access import CONSOLE_ROUTES
from oshal.control.auth import Principal
from oshal.control.console_sessions import csrf_matches, csrf_token
from oshal.control.plane import ControlPlane
from oshal.errors import Forbidden

SESSION_COOKIE = "oshal_session"
LOGIN_CSRF_COOKIE = "oshal_login_csrf"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def plane_of(request: Request) -> ControlPlane:
    return request.app.state.plane  # type: ignore[no-any-return]


async def viewer(request: Request) -> Principal:
    """Whoever the session cookie belongs to (any key of a tenant: members and operators)."""
    cp = plane_of(request)
    who = await cp.console_sessions.principal(request.cookies.get(SESSION_COOKIE))
    cp.rate_limits.check(who.key_id)
    request.state.principal = who
    request.state.platform_operator = await is_platform_operator(cp.admin, who)
    return who


async def console_operator(request: Request, who: Annotated[Principal, Depends(viewer)]) -> Principal:
    """An operator of the session's tenant."""
    who.require_operator()
    await audit_change(request, who, CONSOLE_ROUTES)
    return who


async def console_platform(request: Request, who: Annotated[Principal, Depends(viewer)]) -> Principal:
    """An operator of the system tenant (the platform's own pages: security, architecture)."""
    if not request.state.platform_operator:
        raise Forbidden("this page is the platform's: it needs an operator key of the system tenant",
                        hint="log in with the admin key, or a key created for tenant 'system'")
    await audit_change(request, who, CONSOLE_ROUTES)
    return who


GUARDS.update({viewer: Audience.MEMBER, console_operator: Audience.OPERATOR, console_platform: Audience.PLATFORM})

Viewer = Annotated[Principal, Depends(viewer)]
ConsoleOperator = Annotated[Principal, Depends(console_operator)]
ConsolePlatform = Annotated[Principal, Depends(console_platform)]


def _same_origin(request: Request) -> bool:
    """A browser names the page a form was posted from; it must be this console (absent: an older client)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def csrf_protect(request: Request) -> None:
    """Every form posted to the console carries the token of its session (or, to log in, of its login page)."""
    if request.method in _SAFE_METHODS:
        return
    if not _same_origin(request):
        raise Forbidden("this form was posted from another site", hint="use the console's own pages")
    form = await request.form()
    presented = form.get("csrf")
    presented = presented if isinstance(presented, str) else None
    session = request.cookies.get(SESSION_COOKIE)
    login = request.cookies.get(LOGIN_CSRF_COOKIE)
    if session and csrf_matches(session, presented):
        return
    if request.url.path == "/login" and login and presented and secrets.compare_digest(login, presented):
        return
    raise Forbidden("the form's security token is missing or stale",
                    hint="reload the page and submit the form again")


def form_token(request: Request) -> str:
    """The CSRF token the page's forms carry: the session's, or a fresh login token (set as a cookie)."""
    session = request.cookies.get(SESSION_COOKIE)
    if session and getattr(request.state, "principal", None) is not None:
        return csrf_token(session)
    token: str | None = getattr(request.state, "login_csrf", None)
    if token is None:
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
        request.state.login_csrf = token
    return token


def secure_cookies(request: Request) -> bool:
    configured = plane_of(request).settings.console_secure_cookie
    if configured is not None:
        return configured
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="strict",
                        secure=secure_cookies(request))


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="strict", secure=secure_cookies(request))
