"""The route inventory: every route of the app and whether it authenticates its caller."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import Route

from oshal.control.deps import BOT_AUTHENTICATED, principal
from oshal.security.scans import RouteInfo


def _needs_principal(dependant: Dependant) -> bool:
    return any(d.call is principal or _needs_principal(d) for d in dependant.dependencies)


def routes_of(app: FastAPI) -> list[RouteInfo]:
    inventory = []
    for route in app.router.routes:
        endpoint: Any = getattr(route, "endpoint", None)
        if isinstance(route, APIRoute):
            authenticated = endpoint in BOT_AUTHENTICATED or _needs_principal(route.dependant)
        elif isinstance(route, Route):
            authenticated = endpoint in BOT_AUTHENTICATED
        else:
            continue
        inventory.append(RouteInfo(route.path, frozenset(route.methods or ()), authenticated))
    return inventory
