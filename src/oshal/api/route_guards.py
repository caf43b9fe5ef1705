"""How each route is guarded: the audience its auth dependency enforces, checked against its row in the access
table (:mod:`oshal.api.access`). Functions of the routes or app they are given, so any layer may call them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute, Mount, Route

from oshal.api.access import MOUNT, PUBLIC_MOUNTS, Audience, GuardedRoute, declaration_problems
from oshal.api.deps import BOT_AUTHENTICATED, GUARDS
from oshal.security.scans import RouteInfo

_NARROWNESS = (Audience.PUBLIC, Audience.MEMBER, Audience.OPERATOR, Audience.PLATFORM)


def _calls(dependant: Dependant) -> set[Any]:
    found = set()
    for dep in dependant.dependencies:
        found.add(dep.call)
        found |= _calls(dep)
    return found


def enforced_audience(route: BaseRoute) -> Audience:
    """The narrowest audience the route's dependencies let through."""
    endpoint: Any = getattr(route, "endpoint", None)
    if endpoint in BOT_AUTHENTICATED:
        return Audience.BOT
    if not isinstance(route, APIRoute):
        return Audience.PUBLIC
    calls = _calls(route.dependant)
    enforced = [audience for guard, audience in GUARDS.items() if guard in calls]
    return max(enforced, key=_NARROWNESS.index, default=Audience.PUBLIC)


def guarded_routes(routes: Iterable[BaseRoute]) -> list[GuardedRoute]:
    out = []
    for route in routes:
        if isinstance(route, Mount):
            out.append(GuardedRoute(MOUNT, route.path, Audience.PUBLIC))
        if not isinstance(route, Route):  # APIRoute is a Route
            continue
        audience = enforced_audience(route)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                out.append(GuardedRoute(method, route.path, audience))
    return out


def live_routes(app: FastAPI) -> list[BaseRoute]:
    """Every route the running app answers (included routers flattened), routes added after start-up included."""
    return [context.original_route for context in iter_route_contexts(app.router.routes)]


def route_infos(routes: Iterable[BaseRoute]) -> list[RouteInfo]:
    """The inventory the Security Center's posture scan reads."""
    return [RouteInfo(route.path, frozenset(route.methods or ()), enforced_audience(route) is not Audience.PUBLIC)
            for route in routes if isinstance(route, Route)]


def live_route_problems(app: FastAPI) -> list[str]:
    """The start-up check again, on the running app: every route it answers guarded exactly as declared."""
    state = app.state
    return declaration_problems(guarded_routes(live_routes(app)), getattr(state, "access_table", None),
                                getattr(state, "public_mounts", PUBLIC_MOUNTS))
