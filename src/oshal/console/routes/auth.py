"""Logging in (an API key traded for a session cookie) and out."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request, Response
from fastapi.responses import RedirectResponse

from oshal.console.render import page
from oshal.console.routes.common import console_router, local_path
from oshal.console.session import LOGIN_CSRF_COOKIE, SESSION_COOKIE, Viewer, clear_cookie, plane_of, set_cookie
from oshal.errors import RateLimited, Unauthorized

router = console_router()


@router.get("/login")
async def login_page(request: Request, next: str = "/") -> Response:
    return await page(request, "login.html", title="", next=local_path(next), error="")


@router.post("/login")
async def login(request: Request, key: Annotated[str, Form(max_length=200)],
                next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    cp = plane_of(request)
    source = request.client.host if request.client else ""
    try:
        opened = await cp.console_sessions.open(key, source=source)
        cp.rate_limits.check(opened.principal.key_id)
    except (Unauthorized, RateLimited) as refused:
        hint = f" ({refused.hint})" if refused.hint else ""
        return await page(request, "login.html", status=401 if isinstance(refused, Unauthorized) else 429,
                          next=local_path(next), error=f"{refused.message}{hint}")
    response = RedirectResponse(local_path(next), status_code=303)
    set_cookie(request, response, SESSION_COOKIE, opened.token, max_age=int(cp.settings.console_session_ttl_s))
    clear_cookie(request, response, LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request, who: Viewer) -> Response:
    token = request.cookies.get(SESSION_COOKIE, "")
    await plane_of(request).console_sessions.close(token, who)
    response = RedirectResponse("/login", status_code=303)
    clear_cookie(request, response, SESSION_COOKIE)
    return response
