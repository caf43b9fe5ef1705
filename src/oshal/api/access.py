"""Who may call each route: the authorization model, as data.

Every route the app serves has one row here: the audience allowed to call it and the scope it acts on. At
start-up :func:`check_declarations` compares this table with the routes and with the auth dependency each
route really uses, so a route without a row, a stale row, or a route guarded more loosely than its row says
stops the platform from starting. The authorization matrix test is generated from the same table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from oshal.errors import ConfigError


class Audience(StrEnum):
    """The least privileged caller a route admits; every audience above it is admitted too, except BOT."""

    PUBLIC = "public"  # no key at all: liveness, readiness, metrics
    MEMBER = "member"  # any key of a tenant (members and operators)
    OPERATOR = "operator"  # an operator key of a tenant, acting on that tenant only
    PLATFORM = "platform"  # an operator key of the `system` tenant: tenants and shared platform state
    BOT = "bot"  # a bot token and the signed envelope it was dispatched; no API key is accepted


class Scope(StrEnum):
    """What a route reads or changes."""

    NONE = "none"  # nothing tenant-related (health, the API's own description)
    TENANT = "tenant"  # the caller's tenant only; naming another tenant is refused unless platform operator
    SHARED = "shared"  # shared platform state every tenant may read (catalog, fleet, prices, kill switches)
    PLATFORM = "platform"  # shared platform state or every tenant's data: platform operators only
    ENVELOPE = "envelope"  # the tenant of the envelope a bot was dispatched (checked against its signature)


@dataclass(frozen=True, slots=True)
class Access:
    audience: Audience
    scope: Scope
    changes: bool = True  # a POST that only reads (a verification) is not audited as an operator's change

    @property
    def tenant_scoped(self) -> bool:
        return self.scope in (Scope.TENANT, Scope.ENVELOPE)


_PUBLIC = Access(Audience.PUBLIC, Scope.NONE)
_MEMBER = Access(Audience.MEMBER, Scope.TENANT)
_MEMBER_READS_API = Access(Audience.MEMBER, Scope.NONE)  # the API's own descriptions and schemas, alike for all
_MEMBER_READS_SHARED = Access(Audience.MEMBER, Scope.SHARED)
_OPERATOR = Access(Audience.OPERATOR, Scope.TENANT)
_PLATFORM = Access(Audience.PLATFORM, Scope.PLATFORM)
_PLATFORM_VERIFIES = Access(Audience.PLATFORM, Scope.PLATFORM, changes=False)
_BOT = Access(Audience.BOT, Scope.ENVELOPE)

ROUTES: dict[tuple[str, str], Access] = {
    # public: probes and metrics carry no tenant data
    ("GET", "/healthz"): _PUBLIC,
    ("GET", "/readyz"): _PUBLIC,
    ("GET", "/metrics"): _PUBLIC,
    ("GET", "/openapi.json"): _MEMBER_READS_API,
    ("GET", "/docs"): _MEMBER_READS_API,
    ("GET", "/redoc"): _MEMBER_READS_API,
    # bots: bot token plus the envelope of the job they run
    ("POST", "/v1/tools/call"): _BOT,
    ("POST", "/v1/tools/list"): _BOT,
    ("POST", "/v1/models/begin"): _BOT,
    ("POST", "/v1/models/end"): _BOT,
    ("PUT", "/v1/artifacts/gateway/{name}"): _BOT,
    ("GET", "/v1/artifacts/gateway/{name}"): _BOT,
    # identity
    ("GET", "/v1/whoami"): _MEMBER,
    # tickets: any key of the tenant submits, reads and cancels; operators act on them
    ("POST", "/v1/tickets"): _MEMBER,
    ("POST", "/v1/tickets/batch"): _MEMBER,
    ("GET", "/v1/tickets"): _MEMBER,
    ("GET", "/v1/tickets/counts"): _MEMBER,
    ("GET", "/v1/tickets/{ticket_id}"): _MEMBER,
    ("GET", "/v1/tickets/{ticket_id}/events"): _MEMBER,
    ("GET", "/v1/tickets/{ticket_id}/timeline"): _MEMBER,
    ("POST", "/v1/tickets/{ticket_id}/cancel"): _MEMBER,
    ("POST", "/v1/tickets/{ticket_id}/replay"): _MEMBER,
    ("GET", "/v1/tickets/{ticket_id}/replay-diff"): _MEMBER,
    ("POST", "/v1/tickets/{ticket_id}/{action}"): _OPERATOR,
    ("GET", "/v1/tickets/{ticket_id}/artifacts"): _MEMBER,
    ("GET", "/v1/tickets/{ticket_id}/artifacts/{name}"): _MEMBER,
    ("GET", "/v1/dead-letters"): _MEMBER,
    # fleet and spend
    ("GET", "/v1/bots"): _MEMBER_READS_SHARED,
    ("GET", "/v1/bots/{bot}/control"): _MEMBER_READS_SHARED,
    ("POST", "/v1/bots/{bot}/restart"): _PLATFORM,
    ("PUT", "/v1/bots/{bot}/replicas"): _PLATFORM,
    ("GET", "/v1/ledger"): _MEMBER,
    ("GET", "/v1/ledger/summary"): _MEMBER,
    ("GET", "/v1/ledger/reconcile"): _MEMBER,
    ("PUT", "/v1/budgets"): _OPERATOR,
    ("GET", "/v1/budgets"): _MEMBER,
    ("GET", "/v1/budgets/{budget_id}"): _MEMBER,
    ("DELETE", "/v1/budgets/{budget_id}"): _OPERATOR,
    ("GET", "/v1/prices"): _MEMBER_READS_SHARED,
    ("POST", "/v1/prices"): _PLATFORM,
    # tenants and keys: a tenant operator manages its own tenant's keys; tenants are the platform's
    ("POST", "/v1/tenants"): _PLATFORM,
    ("GET", "/v1/tenants"): _PLATFORM,
    ("POST", "/v1/keys"): _OPERATOR,
    ("GET", "/v1/keys"): _OPERATOR,
    ("DELETE", "/v1/keys/{key_id}"): _OPERATOR,
    # the shared connector catalog is published by the platform; tenants use it through their own
    # connections (credentials) and tool policies
    ("GET", "/v1/connectors"): _MEMBER_READS_SHARED,
    ("GET", "/v1/connectors/{connector_id}"): _MEMBER_READS_SHARED,
    ("POST", "/v1/connectors/import"): _PLATFORM,
    ("POST", "/v1/connectors"): _PLATFORM,
    ("POST", "/v1/connectors/{connector_id}/operations"): _PLATFORM,
    ("PATCH", "/v1/connectors/{connector_id}"): _PLATFORM,
    ("POST", "/v1/connectors/{connector_id}/signature"): _PLATFORM,
    ("POST", "/v1/connectors/{connector_id}/disable"): _PLATFORM,
    ("POST", "/v1/connectors/{connector_id}/enable"): _PLATFORM,
    ("POST", "/v1/connectors/verify"): _PLATFORM,
    ("POST", "/v1/secrets/rotate"): _PLATFORM,
    ("POST", "/v1/connections"): _OPERATOR,
    ("GET", "/v1/connections"): _MEMBER,
    ("PUT", "/v1/bots/{bot}/tools"): _OPERATOR,
    ("GET", "/v1/bots/{bot}/tools"): _MEMBER,
    ("GET", "/v1/approvals"): _MEMBER,
    ("POST", "/v1/approvals/{approval_id}/approve"): _OPERATOR,
    ("POST", "/v1/approvals/{approval_id}/reject"): _OPERATOR,
    ("GET", "/v1/grants"): _MEMBER,
    # workflows and schedules: a tenant's own definitions shadow the built-ins
    ("GET", "/v1/workflows"): _MEMBER,
    ("GET", "/v1/workflows/schema"): _MEMBER_READS_API,
    ("GET", "/v1/workflows/{name}"): _MEMBER,
    ("POST", "/v1/workflows"): _OPERATOR,
    ("POST", "/v1/workflows/generate"): _OPERATOR,
    ("POST", "/v1/schedules"): _OPERATOR,
    ("GET", "/v1/schedules"): _MEMBER,
    ("GET", "/v1/schedules/{name}"): _MEMBER,
    ("PATCH", "/v1/schedules/{name}"): _OPERATOR,
    ("POST", "/v1/schedules/{name}/disable"): _OPERATOR,
    ("POST", "/v1/schedules/{name}/enable"): _OPERATOR,
    ("POST", "/v1/schedules/{name}/run"): _OPERATOR,
    # knowledge: a tenant's runbooks and incident reports; anyone in it reads and searches, operators write
    ("GET", "/v1/knowledge/search"): _MEMBER,
    ("GET", "/v1/knowledge/{collection}"): _MEMBER,
    ("GET", "/v1/knowledge/{collection}/{slug}"): _MEMBER,
    ("PUT", "/v1/knowledge/{collection}/{slug}"): _OPERATOR,
    ("DELETE", "/v1/knowledge/{collection}/{slug}"): _OPERATOR,
    # bars: a tenant's OHLCV time series; anyone in it reads, operators write
    ("GET", "/v1/bars"): _MEMBER,
    ("GET", "/v1/bars/{symbol:path}/{timeframe}"): _MEMBER,
    ("PUT", "/v1/bars/{symbol:path}/{timeframe}"): _OPERATOR,
    # application records: immutable, per tenant; anyone in it reads, operators (an app's service) write
    ("GET", "/v1/apps/{app}/records/{collection}"): _MEMBER,
    ("GET", "/v1/apps/{app}/records/{collection}/{key}"): _MEMBER,
    ("PUT", "/v1/apps/{app}/records/{collection}/{key}"): _OPERATOR,
    # security: the audit log is readable per tenant by its operators; everything else is the platform's
    ("GET", "/v1/audit"): _OPERATOR,
    ("GET", "/v1/audit/export"): _OPERATOR,
    ("POST", "/v1/audit/verify"): _PLATFORM_VERIFIES,
    ("POST", "/v1/audit/prune"): _PLATFORM,
    ("POST", "/v1/security/scan"): _PLATFORM,
    ("GET", "/v1/security/findings"): _PLATFORM,
    ("POST", "/v1/security/findings/{fingerprint}/assess"): _PLATFORM,
    ("GET", "/v1/security/summary"): _PLATFORM,
    ("POST", "/v1/security/verify"): _PLATFORM_VERIFIES,
    ("GET", "/v1/topology/{view}"): _PLATFORM,
    # remote nodes serve a bot's lane, which carries every tenant's tickets: the platform's to admit and cut off.
    # Joining is public: the single-use enrollment code in the body is the credential.
    ("POST", "/v1/nodes/enrollments"): _PLATFORM,
    ("POST", "/v1/nodes/join"): _PUBLIC,
    ("GET", "/v1/nodes"): _PLATFORM,
    ("POST", "/v1/nodes/{node_id}/revoke"): _PLATFORM,
    ("GET", "/v1/kill"): _MEMBER_READS_SHARED,
    ("POST", "/v1/kill"): _PLATFORM,
    ("DELETE", "/v1/kill/{scope}"): _PLATFORM,
}

# Mounted static files, public (the vendored Swagger UI and ReDoc assets: the same for everyone, no data).
MOUNT = "MOUNT"  # the method GuardedRoute gives a mounted app (static files)
PUBLIC_MOUNTS: frozenset[str] = frozenset({"/static/docs"})


@dataclass(frozen=True, slots=True)
class GuardedRoute:
    """A route as served, with the audience its auth dependency really enforces."""

    method: str
    path: str
    enforced: Audience


def changes_state(method: str, path: str, table: Mapping[tuple[str, str], Access] | None = None) -> bool:
    """Whether a request to this route asks for a change (and so is audited before it runs)."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    declared = (ROUTES if table is None else table).get((method, path))
    return declared is None or declared.changes


def declaration_problems(served: list[GuardedRoute], table: Mapping[tuple[str, str], Access] | None = None,
                         public_mounts: frozenset[str] = PUBLIC_MOUNTS) -> list[str]:
    """Served routes without a row or guarded differently from it, and rows nothing serves. ``table`` is the API's
    (:data:`ROUTES`) unless the app serves another surface beside it (the web console) with rows of its own."""
    table = ROUTES if table is None else table
    problems = []
    seen = set()
    for route in served:
        if route.method == MOUNT:
            if route.path not in public_mounts:
                problems.append(f"{route.path} is a mounted app without a declaration in PUBLIC_MOUNTS")
            continue
        key = (route.method, route.path)
        seen.add(key)
        declared = table.get(key)
        if declared is None:
            problems.append(f"{route.method} {route.path} has no access declaration")
        elif declared.audience is not route.enforced:
            problems.append(f"{route.method} {route.path} is declared {declared.audience.value} "
                            f"but its dependency enforces {route.enforced.value}")
    problems += [f"{m} {p} is declared but not served" for m, p in sorted(table.keys() - seen)]
    return problems


def check_declarations(served: list[GuardedRoute], table: Mapping[tuple[str, str], Access] | None = None,
                       public_mounts: frozenset[str] = PUBLIC_MOUNTS) -> None:
    """Refuse to start unless every served route has exactly the declared guard and every row is served."""
    problems = declaration_problems(served, table, public_mounts)
    if problems:
        raise ConfigError("route access declarations do not match the app: " + "; ".join(problems),
                          hint="add or fix the route's row in oshal/api/access.py and guard it with the "
                               "matching dependency (Caller, Operator, PlatformOperator, bot_authenticated)")
