"""FastAPI dependencies: the control plane instance and the authenticated principal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import Depends, Header, Request

from oshal.api.access import changes_state
from oshal.audit import trail
from oshal.control.auth import Principal, credential_from_headers
from oshal.control.plane import ControlPlane
from oshal.errors import Forbidden
from oshal.types import Role


async def plane(request: Request) -> ControlPlane:
    # async on purpose: FastAPI runs plain-def dependencies in a thread pool, a thread hop per request.
    return request.app.state.plane  # type: ignore[no-any-return]


async def principal(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    cp: ControlPlane = request.app.state.plane
    source = request.client.host if request.client else ""
    who = await cp.auth.authenticate(credential_from_headers(authorization, x_api_key), source=source)
    cp.rate_limits.check(who.key_id)
    return who


async def _audit_change(request: Request, who: Principal) -> None:
    """Every change an operator asks for is audited before it runs, so none goes unrecorded."""
    route = request.scope.get("route")
    if changes_state(request.method, getattr(route, "path", request.url.path)):
        cp: ControlPlane = request.app.state.plane
        await trail.record_now(cp.db, trail.Entry(who.tenant_id, who.actor,
                                                  f"operator.{request.method.lower()}", request.url.path, {}))


async def operator(request: Request, who: Annotated[Principal, Depends(principal)]) -> Principal:
    """An operator of the caller's tenant."""
    who.require_operator()
    await _audit_change(request, who)
    return who


Plane = Annotated[ControlPlane, Depends(plane)]
Caller = Annotated[Principal, Depends(principal)]
Operator = Annotated[Principal, Depends(operator)]


_F = TypeVar("_F", bound=Callable[..., Any])
BOT_AUTHENTICATED: set[Callable[..., Any]] = set()


def bot_authenticated(endpoint: _F) -> _F:
    """Marks a route that authenticates a bot itself (bot token plus a signed envelope), for the route inventory."""
    BOT_AUTHENTICATED.add(endpoint)
    return endpoint


async def is_platform_operator(cp: ControlPlane, who: Principal) -> bool:
    """An operator key of the `system` tenant: the one definition of a platform operator."""
    return who.role is Role.OPERATOR and who.tenant_id == await cp.admin.system_tenant()


async def platform_operator(request: Request, who: Annotated[Principal, Depends(principal)]) -> Principal:
    """An operator of the system tenant: tenants, the shared catalog and platform-wide controls."""
    cp: ControlPlane = request.app.state.plane
    if not await is_platform_operator(cp, who):
        raise Forbidden("this is a platform control: it needs an operator key of the system tenant",
                        hint="use the bootstrap admin key, or a key created for tenant 'system'")
    await _audit_change(request, who)
    return who


PlatformOperator = Annotated[Principal, Depends(platform_operator)]


async def tenant_named(cp: ControlPlane, who: Principal, ref: str | None) -> UUID:
    """The tenant a body or query names (default: the caller's). Naming another tenant needs a platform operator."""
    if ref is None:
        return who.tenant_id
    if await is_platform_operator(cp, who):
        return await cp.admin.resolve_tenant(ref)
    if ref not in (str(who.tenant_id), await cp.admin.tenant_name(who.tenant_id)):
        # refused without looking the name up, so the answer says nothing about which tenants exist
        raise Forbidden("only a platform operator may act on another tenant",
                        hint="leave 'tenant' out to act on your own tenant")
    return who.tenant_id
