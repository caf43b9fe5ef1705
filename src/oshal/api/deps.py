"""FastAPI dependencies: the parts of the control plane a route uses, one each, and the authenticated principal.

A route names only what it uses (``tickets: Tickets``, ``budgets: Budgets``), so its signature says which
services it touches; every part is read from the control plane serving the app (``app.state.plane``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import Depends, Header, Request
from redis.asyncio import Redis

from oshal.api.access import Access, Audience, changes_state
from oshal.audit import trail
from oshal.audit.anchors import AnchorLog
from oshal.control.admin import AdminService
from oshal.control.artifacts import ArtifactService
from oshal.control.auth import Principal, credential_from_headers
from oshal.control.bars import BarService
from oshal.control.bot_registry import BotRegistry
from oshal.control.budgets import BudgetService
from oshal.control.connector_catalog import Catalog
from oshal.control.engine_health import EngineHealth
from oshal.control.events import EventHub
from oshal.control.fleet_control import FleetControl
from oshal.control.model_gateway import ModelGateway
from oshal.control.node_enrollment import NodeEnrollment
from oshal.control.plane import ControlPlane
from oshal.control.schedules import ScheduleService
from oshal.control.ticket_actions import Lifecycle
from oshal.control.tickets import TicketService
from oshal.control.tool_gateway import ToolGateway
from oshal.control.workflows import WorkflowService
from oshal.errors import Forbidden
from oshal.ledger import PriceTable
from oshal.secrets.port import SecretStore
from oshal.security.center import SecurityCenter
from oshal.security.killswitch import KillSwitches
from oshal.settings import Settings as PlaneSettings
from oshal.store.db import Database
from oshal.topology.live import TopologySource
from oshal.types import Role

_T = TypeVar("_T")
Provider = Callable[[Request], Coroutine[Any, Any, _T]]


def _plane(request: Request) -> ControlPlane:
    return request.app.state.plane  # type: ignore[no-any-return]


def _part(pick: Callable[[ControlPlane], _T]) -> Provider[_T]:
    """A dependency that provides one part of the serving control plane, read per request (prices are replaced
    when they reload)."""
    async def provide(request: Request) -> _T:
        # async on purpose: FastAPI runs plain-def dependencies in a thread pool, a thread hop per request.
        return pick(_plane(request))

    return provide


# Each provider is typed (mypy checks the part it reads); a route's parameter names the alias beside it.

# the engines (for routes that call a store module themselves) and the settings
database: Provider[Database] = _part(lambda cp: cp.db)
Db = Annotated[Database, Depends(database)]
redis_client: Provider[Redis] = _part(lambda cp: cp.redis)
RedisClient = Annotated[Redis, Depends(redis_client)]
plane_settings: Provider[PlaneSettings] = _part(lambda cp: cp.settings)
Settings = Annotated[PlaneSettings, Depends(plane_settings)]

# tenants, bots and tickets
admin_service: Provider[AdminService] = _part(lambda cp: cp.admin)
Admin = Annotated[AdminService, Depends(admin_service)]
bot_registry: Provider[BotRegistry] = _part(lambda cp: cp.registry)
Registry = Annotated[BotRegistry, Depends(bot_registry)]
node_enrollment: Provider[NodeEnrollment] = _part(lambda cp: cp.nodes)
Nodes = Annotated[NodeEnrollment, Depends(node_enrollment)]
ticket_service: Provider[TicketService] = _part(lambda cp: cp.tickets)
Tickets = Annotated[TicketService, Depends(ticket_service)]
ticket_lifecycle: Provider[Lifecycle] = _part(lambda cp: cp.lifecycle)
TicketLifecycle = Annotated[Lifecycle, Depends(ticket_lifecycle)]
event_hub: Provider[EventHub] = _part(lambda cp: cp.events)
Events = Annotated[EventHub, Depends(event_hub)]
workflow_service: Provider[WorkflowService] = _part(lambda cp: cp.workflows)
Workflows = Annotated[WorkflowService, Depends(workflow_service)]
schedule_service: Provider[ScheduleService] = _part(lambda cp: cp.schedules)
Schedules = Annotated[ScheduleService, Depends(schedule_service)]
artifact_service: Provider[ArtifactService] = _part(lambda cp: cp.artifacts)
Artifacts = Annotated[ArtifactService, Depends(artifact_service)]

# data series
bar_service: Provider[BarService] = _part(lambda cp: BarService(cp.db))
Bars = Annotated[BarService, Depends(bar_service)]

# spend
budget_service: Provider[BudgetService] = _part(lambda cp: cp.budgets)
Budgets = Annotated[BudgetService, Depends(budget_service)]
price_table: Provider[PriceTable] = _part(lambda cp: cp.prices)
Prices = Annotated[PriceTable, Depends(price_table)]
price_reload: Provider[Callable[[], Awaitable[None]]] = _part(lambda cp: cp.reload_prices)
ReloadPrices = Annotated[Callable[[], Awaitable[None]], Depends(price_reload)]

# connectors and secrets
connector_catalog: Provider[Catalog] = _part(lambda cp: cp.catalog)
ConnectorCatalog = Annotated[Catalog, Depends(connector_catalog)]
secret_store: Provider[SecretStore] = _part(lambda cp: cp.secrets)
Secrets = Annotated[SecretStore, Depends(secret_store)]

# the bot gateway
tool_gateway: Provider[ToolGateway] = _part(lambda cp: cp.gateway)  # also called by the plain tool-call route
ToolCalls = Annotated[ToolGateway, Depends(tool_gateway)]
model_gateway: Provider[ModelGateway] = _part(lambda cp: cp.models)
ModelCalls = Annotated[ModelGateway, Depends(model_gateway)]

# security and health
kill_switches: Provider[KillSwitches] = _part(lambda cp: cp.kill)
Kill = Annotated[KillSwitches, Depends(kill_switches)]
fleet_control: Provider[FleetControl] = _part(lambda cp: cp.fleet)
Fleet = Annotated[FleetControl, Depends(fleet_control)]
security_center: Provider[SecurityCenter] = _part(lambda cp: cp.security)
Security = Annotated[SecurityCenter, Depends(security_center)]
audit_anchor_log: Provider[AnchorLog] = _part(lambda cp: cp.audit_anchors)
AuditAnchors = Annotated[AnchorLog, Depends(audit_anchor_log)]
engine_health: Provider[EngineHealth] = _part(lambda cp: cp.health)
Health = Annotated[EngineHealth, Depends(engine_health)]
topology_source: Provider[TopologySource] = _part(
    lambda cp: TopologySource(cp.db, cp.redis, cp.kill, cp.health, cp.settings))
TopologyLive = Annotated[TopologySource, Depends(topology_source)]


async def principal(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Principal:
    cp = _plane(request)
    source = request.client.host if request.client else ""
    who = await cp.auth.authenticate(credential_from_headers(authorization, x_api_key), source=source)
    cp.rate_limits.check(who.key_id)
    return who


async def audit_change(request: Request, who: Principal,
                       table: Mapping[tuple[str, str], Access] | None = None) -> None:
    """Every change an operator asks for is audited before it runs, so none goes unrecorded."""
    route = request.scope.get("route")
    if changes_state(request.method, getattr(route, "path", request.url.path), table):
        await trail.record_now(_plane(request).db, trail.Entry(who.tenant_id, who.actor,
                                                               f"operator.{request.method.lower()}",
                                                               request.url.path, {}))


async def operator(request: Request, who: Annotated[Principal, Depends(principal)]) -> Principal:
    """An operator of the caller's tenant."""
    who.require_operator()
    await audit_change(request, who)
    return who


Caller = Annotated[Principal, Depends(principal)]
Operator = Annotated[Principal, Depends(operator)]


_F = TypeVar("_F", bound=Callable[..., Any])
BOT_AUTHENTICATED: set[Callable[..., Any]] = set()


def bot_authenticated(endpoint: _F) -> _F:
    """Marks a route that authenticates a bot itself (bot token plus a signed envelope), for the route inventory."""
    BOT_AUTHENTICATED.add(endpoint)
    return endpoint


async def is_platform_operator(admin: AdminService, who: Principal) -> bool:
    """An operator key of the `system` tenant: the one definition of a platform operator."""
    return who.role is Role.OPERATOR and who.tenant_id == await admin.system_tenant()


async def platform_operator(request: Request, who: Annotated[Principal, Depends(principal)]) -> Principal:
    """An operator of the system tenant: tenants, the shared catalog and platform-wide controls."""
    if not await is_platform_operator(_plane(request).admin, who):
        raise Forbidden("this is a platform control: it needs an operator key of the system tenant",
                        hint="use the bootstrap admin key, or a key created for tenant 'system'")
    await audit_change(request, who)
    return who


PlatformOperator = Annotated[Principal, Depends(platform_operator)]

# The auth dependencies and the audience each admits, read by the access check (api/route_guards.py). Another
# surface served beside the API (the web console, which authenticates by session cookie) adds its own here.
GUARDS: dict[Callable[..., Any], Audience] = {
    principal: Audience.MEMBER, operator: Audience.OPERATOR, platform_operator: Audience.PLATFORM,
}


async def tenant_named(admin: AdminService, who: Principal, ref: str | None) -> UUID:
    """The tenant a body or query names (default: the caller's). Naming another tenant needs a platform operator."""
    if ref is None:
        return who.tenant_id
    if await is_platform_operator(admin, who):
        return await admin.resolve_tenant(ref)
    if ref not in (str(who.tenant_id), await admin.tenant_name(who.tenant_id)):
        # refused without looking the name up, so the answer says nothing about which tenants exist
        raise Forbidden("only a platform operator may act on another tenant",
                        hint="leave 'tenant' out to act on your own tenant")
    return who.tenant_id
