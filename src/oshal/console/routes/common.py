"""What every console router shares: HTML error pages and the CSRF check on every form."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from oshal.console.render import PageRoute
from oshal.console.session import csrf_protect


def console_router() -> APIRouter:
    return APIRouter(route_class=PageRoute, include_in_schema=False, dependencies=[Depends(csrf_protect)])


def local_path(target: str | None, default: str = "/") -> str:
    """Where to go after a form: a path of this console only (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
