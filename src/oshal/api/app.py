"""The FastAPI application: routes, the domain-error -> HTTP mapping, auth on docs, and the lifespan."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import psycopg_pool
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

import oshal
from oshal import errors
from oshal.api.access import PUBLIC_MOUNTS, ROUTES, Access, check_declarations
from oshal.api.body_limit import BodyLimit
from oshal.api.docs_ui import DOCS_PATHS, install_docs_assets
from oshal.api.fallback import install_fallback_handlers
from oshal.api.inventory import RAW_ROUTES, ROUTERS
from oshal.api.openapi_doc import install_openapi_doc
from oshal.api.route_guards import guarded_routes, live_routes, route_infos
from oshal.api.validation import reject_unstorable
from oshal.control.plane import ControlPlane
from oshal.logs import get_logger

log = get_logger(__name__)

_STATUS: list[tuple[type[errors.OshalError], int]] = [
    (errors.TooLarge, 413), (errors.RateLimited, 429), (errors.BudgetExceeded, 402), (errors.Invalid, 422),
    (errors.Unauthorized, 401), (errors.Forbidden, 403), (errors.NotFound, 404), (errors.Conflict, 409),
    (errors.Unavailable, 503), (errors.ConfigError, 500),
]
_BROWSER_PATHS = (*DOCS_PATHS, "/openapi.json")


def status_of(error: errors.OshalError) -> int:
    return next((status for kind, status in _STATUS if isinstance(error, kind)), 400)


def _describe(problems: list[dict[str, Any]]) -> str:
    parts = []
    for err in problems[:10]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.OshalError)
    async def domain_error(request: Request, error: errors.OshalError) -> JSONResponse:
        headers = {}
        if isinstance(error, errors.Unauthorized) and request.url.path in _BROWSER_PATHS:
            headers["WWW-Authenticate"] = 'Basic realm="oshal", charset="UTF-8"'
        if isinstance(error, errors.RateLimited):
            headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
        return JSONResponse(error.to_dict(), status_code=status_of(error), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
                   for e in error.errors()]
        body = {"error": "invalid", "message": _describe(list(error.errors())),
                "hint": "see /docs for the request schema", "details": details}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400:  # FastAPI's own: a body it could not decode (not UTF-8, ...): invalid input
            return JSONResponse({"error": "invalid", "message": f"body: {error.detail}",
                                 "hint": "send UTF-8 encoded JSON"}, status_code=422)
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return JSONResponse({"error": code, "message": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(RedisError)
    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(psycopg_pool.PoolTimeout)
    async def dependency_down(request: Request, error: Exception) -> JSONResponse:
        log.warning("dependency unavailable", path=request.url.path, error=type(error).__name__)
        body = errors.Unavailable("a backing service is unavailable; retry shortly",
                           hint="check /readyz").to_dict()
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


@dataclass(frozen=True, slots=True)
class Surface:
    """Another HTTP surface served beside the API by the same app (the web console): its routers, who may call
    each of its routes (checked at start-up with the API's own table), its public static mounts, and how it
    installs anything else it needs (error pages)."""

    routers: Sequence[APIRouter]
    access: Mapping[tuple[str, str], Access]
    mounts: Mapping[str, ASGIApp] = field(default_factory=dict)
    install: Callable[[FastAPI], None] | None = None


def create_app(plane: ControlPlane, *, manage_lifecycle: bool = True, surfaces: Sequence[Surface] = ()) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await plane.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await plane.stop()

    app = FastAPI(title="oshal", version=oshal.__version__, lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None, dependencies=[Depends(reject_unstorable)],
                  description="Control plane API. Authenticate with `Authorization: Bearer osk_...`.")
    app.state.plane = plane
    install_fallback_handlers(app)
    _install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.router.routes[:0] = RAW_ROUTES  # matched before anything else
    install_openapi_doc(app)

    install_docs_assets(app)
    table: dict[tuple[str, str], Access] = dict(ROUTES)
    public_mounts = set(PUBLIC_MOUNTS)
    for surface in surfaces:
        clash = table.keys() & surface.access.keys()
        if clash:
            raise errors.ConfigError(f"a surface redeclares API routes: {sorted(clash)}")
        table.update(surface.access)
        for router in surface.routers:
            app.include_router(router)
        for path, mount in surface.mounts.items():
            app.mount(path, mount)
            public_mounts.add(path)
        if surface.install:
            surface.install(app)

    if plane.settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=plane.settings.cors_origins, allow_credentials=False,
                           allow_methods=["*"], allow_headers=["Authorization", "Content-Type", "X-API-Key"])
    app.state.access_table, app.state.public_mounts = table, frozenset(public_mounts)
    check_declarations(guarded_routes(live_routes(app)), table, app.state.public_mounts)
    plane.app = app
    plane.routes = lambda: route_infos(live_routes(app))
    body_limit = plane.settings.max_input_bytes * min(plane.settings.max_batch, 256) + 64 * 1024
    app.add_middleware(BodyLimit, max_bytes=body_limit,
                       per_prefix={"/v1/artifacts/gateway/": plane.settings.max_artifact_bytes})
    return app
