"""The authorization matrix: every route in the access table, called as every kind of caller.

Generated from :data:`oshal.api.access.ROUTES` (which start-up checks against the routes the app really
serves and the guard each one really uses). For each route and caller it asserts the exact outcome at the auth
gate, then that nothing tenant B's operator can send reads or changes tenant A's data.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route

from conftest import Platform, make_tenant, wait_done
from oshal.api.access import ROUTES, Access, Audience, GuardedRoute, check_declarations
from oshal.api.deps import Caller, Operator, PlatformOperator
from oshal.api.route_guards import guarded_routes
from oshal.errors import ConfigError
from shopfront import SHOP_SPEC

ROLES = ("member_a", "operator_a", "operator_b", "platform", "bot_token", "no_key", "revoked")
ALLOWED: dict[Audience, frozenset[str]] = {
    Audience.PUBLIC: frozenset(ROLES),
    Audience.MEMBER: frozenset({"member_a", "operator_a", "operator_b", "platform"}),
    Audience.OPERATOR: frozenset({"operator_a", "operator_b", "platform"}),
    Audience.PLATFORM: frozenset({"platform"}),
    Audience.BOT: frozenset(),  # no caller here holds a dispatched envelope; real bots are tested end to end
}
# Routes that change things even for a well-formed empty request: the matrix sends them only ids that do not
# exist when the caller is allowed, so the matrix never revokes, cancels or releases anything real.
_HARMLESS_ID = "00000000-0000-7000-8000-000000000000"


@dataclass
class World:
    """Tenant A's data (the target), and a key for every kind of caller."""

    headers: dict[str, dict[str, str]]
    path_values_a: dict[str, str]
    secrets_a: set[str]  # strings that must never appear in a response to tenant B
    tenant_a: str


def _key_id(http: httpx.Client) -> str:
    return str(http.get("/v1/whoami").json()["key_id"])


@pytest.fixture
def world(platform: Platform) -> World:
    a_ops = make_tenant(platform, f"alpha-{uuid.uuid4().hex[:6]}", role="operator")
    b_ops = make_tenant(platform, f"bravo-{uuid.uuid4().hex[:6]}", role="operator")
    with platform.client() as admin:
        member = admin.post("/v1/keys", json={"tenant": a_ops.tenant_id, "role": "member", "name": "a-member"})
        revoked = admin.post("/v1/keys", json={"tenant": a_ops.tenant_id, "role": "member", "name": "a-revoked"})
        assert member.status_code == revoked.status_code == 201, (member.text, revoked.text)
        gone = admin.delete(f"/v1/keys/{revoked.json()['id']}", params={"tenant": a_ops.tenant_id})
        assert gone.status_code == 200, gone.text
    marker = f"alpha-secret-{uuid.uuid4().hex}"
    a = a_ops.http
    ticket = a.post("/v1/tickets", json={"bot": "echo", "input": {"note": marker}})
    assert ticket.status_code == 201, ticket.text
    wait_done(a, ticket.json()["id"])
    budget = a.put("/v1/budgets", json={"scope": "bot", "subject": "echo", "period": "month",
                                        "limit_micros": 5_000_000})
    assert budget.status_code == 200, budget.text
    schedule_name = f"alpha-sched-{uuid.uuid4().hex[:6]}"
    schedule = a.post("/v1/schedules", json={"name": schedule_name, "cron": "0 3 * * *", "bot": "echo",
                                             "input": {"note": marker}})
    assert schedule.status_code == 201, schedule.text
    workflow_name = f"alphaflow{uuid.uuid4().hex[:6]}"
    workflow = a.post("/v1/workflows", json={"definition": {"name": workflow_name, "steps": [
        {"id": "one", "kind": "task", "bot": "echo", "input": {"note": marker}}]}})
    assert workflow.status_code == 201, workflow.text
    with platform.client() as admin:
        imported = admin.post("/v1/connectors/import", json={"document": SHOP_SPEC, "id": "shop",
                                                              "publisher": "acme", "origin": "test"})
        assert imported.status_code == 201, imported.text
    policy = a.put("/v1/bots/echo/tools", json={"connector": "shop", "operation": "listProducts", "mode": "auto"})
    assert policy.status_code == 200, policy.text
    runbook_slug = f"alpha-runbook-{uuid.uuid4().hex[:6]}"
    runbook = a.put(f"/v1/knowledge/runbooks/{runbook_slug}", json={"title": f"Runbook {marker}", "body": marker})
    assert runbook.status_code == 201, runbook.text
    series = a.put("/v1/bars/AAPL/1d", json={"source": marker, "bars": [
        {"start": "2016-01-04T00:00:00Z", "open": 10_000, "high": 10_100, "low": 9_900, "close": 10_050,
         "volume": 123_456}]})
    assert series.status_code == 200, series.text
    record_key = f"alpha-record-{uuid.uuid4().hex[:6]}"
    record = a.put(f"/v1/apps/desk/records/fills/{record_key}", json={"note": marker})
    assert record.status_code == 201, record.text
    bot_tokens = json.loads((platform.home / "run" / "bot-tokens.json").read_text())
    member_key, a_member_id = member.json()["key"], member.json()["id"]
    headers = {
        "member_a": {"Authorization": f"Bearer {member_key}"},
        "operator_a": {"Authorization": f"Bearer {a_ops.key}"},
        "operator_b": {"Authorization": f"Bearer {b_ops.key}"},
        "platform": {"Authorization": f"Bearer {platform.admin_key}"},
        "bot_token": {"Authorization": f"Bearer {bot_tokens['echo']}", "X-Oshal-Bot-Token": bot_tokens["echo"]},
        "no_key": {},
        "revoked": {"Authorization": f"Bearer {revoked.json()['key']}"},
    }
    values = {"ticket_id": ticket.json()["id"], "budget_id": budget.json()["id"], "key_id": a_member_id,
              "name": schedule_name, "connector_id": "shop", "bot": "echo", "approval_id": _HARMLESS_ID,
              "fingerprint": "f" * 16, "scope": "echo", "action": "pause", "view": "deployment",
              "collection": "runbooks", "slug": runbook_slug, "symbol": "AAPL", "timeframe": "1d",
              "app": "desk", "key": record_key}
    secrets = {a_ops.tenant_id, ticket.json()["id"], budget.json()["id"], a_member_id, _key_id(a), marker,
               schedule_name, workflow_name, a_ops.name, runbook_slug, record_key}
    return World(headers, values, secrets, a_ops.tenant_id)


def _path(template: str, values: dict[str, str], route_path: str) -> str:
    if route_path.startswith("/v1/workflows/"):
        values = {**values, "name": values.get("workflow", values["name"])}
    return re.sub(r"{(\w+)(?::\w+)?}", lambda m: values.get(m.group(1), _HARMLESS_ID), template)


def _call(http: httpx.Client, method: str, path: str, headers: dict[str, str],
          params: dict[str, str] | None = None, body: Any = None) -> httpx.Response:
    if method in ("GET", "DELETE"):
        return http.request(method, path, headers=headers, params=params)
    return http.request(method, path, headers=headers, params=params,
                        json={"__matrix_probe__": True} if body is None else body)


def _refused(status: int) -> bool:
    return status in (401, 403)


def test_every_route_refuses_exactly_the_callers_its_declaration_refuses(platform: Platform, world: World) -> None:
    """Allowed callers get past the gate (whatever the handler then says); refused ones get 401 or 403."""
    harmless = {**world.path_values_a, "ticket_id": _HARMLESS_ID, "budget_id": _HARMLESS_ID,
                "key_id": _HARMLESS_ID, "name": "no-such-thing", "connector_id": "no-such-connector",
                "scope": "no-such-bot", "bot": "no-such-bot", "slug": "no-such-document",
                "key": "no-such-record"}
    wrong: list[str] = []
    with httpx.Client(base_url=platform.url, timeout=30) as http:
        for (method, template), access in sorted(ROUTES.items()):
            if template == "/v1/tickets/{ticket_id}/events":
                continue  # a stream: its gate is the same dependency as GET /v1/tickets/{id}, checked below
            path = _path(template, harmless, template)
            for role in ROLES:
                status = _call(http, method, path, world.headers[role]).status_code
                allowed = role in ALLOWED[access.audience]
                if access.audience is Audience.BOT:
                    ok = 400 <= status < 500  # an API key, a bare bot token or no envelope: refused, no crash
                elif allowed:
                    ok = not _refused(status) and status < 500
                else:
                    ok = status == (401 if role in ("bot_token", "no_key", "revoked") else 403)
                if not ok:
                    wrong.append(f"{role:10} {method} {template} -> {status} (declared {access.audience.value})")
    assert not wrong, "\n".join(wrong)


def test_a_bot_token_with_a_forged_envelope_reaches_no_tenant(platform: Platform, world: World) -> None:
    """A real bot token is not enough: the envelope must be one the platform signed for that bot's job."""
    forged = {"t": world.path_values_a["ticket_id"], "p": _HARMLESS_ID, "a": 1, "n": world.tenant_a, "b": "echo",
              "g": "0" * 64}
    token = {"X-Oshal-Bot-Token": world.headers["bot_token"]["X-Oshal-Bot-Token"]}
    with httpx.Client(base_url=platform.url, timeout=30, headers=token) as http:
        for path, body in (("/v1/tools/list", {"envelope": forged}),
                           ("/v1/tools/call", {"envelope": forged, "connector": "shop", "operation": "listProducts"})):
            refused = http.post(path, json=body)
            assert refused.status_code in (401, 403), (path, refused.status_code, refused.text)


def test_the_event_stream_refuses_other_tenants_and_unauthenticated_callers(platform: Platform,
                                                                            world: World) -> None:
    path = f"/v1/tickets/{world.path_values_a['ticket_id']}/events"
    with httpx.Client(base_url=platform.url, timeout=30) as http:
        assert http.get(path, headers=world.headers["operator_b"]).status_code == 404
        assert http.get(path, headers=world.headers["no_key"]).status_code == 401
        with http.stream("GET", path, headers=world.headers["member_a"]) as own:
            assert own.status_code == 200


def _state_of_a(http: httpx.Client, headers: dict[str, str], world: World) -> dict[str, Any]:
    """What tenant A can see of its own data, minus the fields that change by themselves (use times)."""
    def get(path: str) -> Any:
        response = http.get(path, headers=headers)
        assert response.status_code == 200, (path, response.text)
        return response.json()

    ticket = get(f"/v1/tickets/{world.path_values_a['ticket_id']}")
    return {
        "ticket": (ticket["status"], ticket["result"]),
        "keys": sorted((k["id"], k["role"], str(k.get("revoked_at"))) for k in get("/v1/keys")),
        "budgets": sorted((b["id"], b["limit_micros"]) for b in get("/v1/budgets")),
        "schedules": sorted((s["name"], s["enabled"], s["cron"]) for s in get("/v1/schedules")),
        "workflows": sorted((w["name"], w.get("version")) for w in get("/v1/workflows")),
        "policies": sorted((p["connector_id"], p["operation"], p["mode"]) for p in get("/v1/bots/echo/tools")),
        "connectors": sorted((c["id"], c["state"]) for c in get("/v1/connectors")),
        "knowledge": sorted((d["slug"], d["title"], d["updated_at"])
                            for d in get("/v1/knowledge/runbooks")["items"]),
        "bars": (get("/v1/bars")["items"], get("/v1/bars/AAPL/1d")["items"]),
        "records": [(r["key"], r["body"]) for r in get("/v1/apps/desk/records/fills")["items"]],
    }


def _probes_for_b(world: World) -> list[tuple[str, str, dict[str, str] | None, Any]]:
    """Every route, pointed at A's objects, with A named wherever a request can name a tenant."""
    a = world.tenant_a
    probes: list[tuple[str, str, dict[str, str] | None, Any]] = []
    for (method, template), access in sorted(ROUTES.items()):
        if access.audience in (Audience.PUBLIC, Audience.BOT) or template.endswith("/events"):
            continue
        values = dict(world.path_values_a)
        if template.startswith("/v1/workflows/"):
            values["name"] = next(s for s in world.secrets_a if s.startswith("alphaflow"))
        path = _path(template, values, template)
        params = {"tenant": a, "ticket": world.path_values_a["ticket_id"]}
        body: Any = {"tenant": a, "role": "operator", "name": "stolen"} if template == "/v1/keys" else {
            "__matrix_probe__": True}
        probes.append((method, path, params, body))
        if method in ("POST", "PUT", "PATCH") and template in ("/v1/budgets", "/v1/connections",
                                                               "/v1/bots/{bot}/tools", "/v1/schedules",
                                                               "/v1/knowledge/{collection}/{slug}",
                                                               "/v1/bars/{symbol:path}/{timeframe}",
                                                               "/v1/apps/{app}/records/{collection}/{key}"):
            # well-formed bodies too, so the handler itself runs for B (and must act on B only)
            real = {"/v1/budgets": {"scope": "bot", "subject": "echo", "period": "month", "limit_micros": 10},
                    "/v1/connections": {"connector": "shop", "secret": "b-secret"},
                    "/v1/bots/{bot}/tools": {"connector": "shop", "operation": "listProducts", "mode": "off"},
                    "/v1/schedules": {"name": values["name"], "cron": "0 4 * * *", "bot": "echo",
                                      "input": {}},
                    "/v1/knowledge/{collection}/{slug}": {"title": "B's runbook", "body": "B's steps"},
                    "/v1/bars/{symbol:path}/{timeframe}": {"source": "B's", "bars": [
                        {"start": "2016-01-04T00:00:00Z", "open": 1, "high": 1, "low": 1, "close": 1,
                         "volume": 1}]},
                    "/v1/apps/{app}/records/{collection}/{key}": {"note": "B's record"}}[template]
            probes.append((method, path, params, real))
    marker = next(s for s in world.secrets_a if s.startswith("alpha-secret-"))
    probes.append(("GET", "/v1/knowledge/search", {"q": marker}, None))  # finds A's runbook if B can see it
    probes.append(("POST", "/v1/keys", None, {"tenant": "system", "role": "operator"}))
    probes.append(("GET", "/v1/keys", {"tenant": "system"}, None))
    return probes


def test_tenant_b_operator_neither_reads_nor_changes_tenant_a(platform: Platform, world: World) -> None:
    leaks: list[str] = []
    with httpx.Client(base_url=platform.url, timeout=30) as http:
        before = _state_of_a(http, world.headers["operator_a"], world)
        probes = _probes_for_b(world)
        paths_sent = ""  # B's own audit entries name the paths B asked for (never queries or bodies)
        for method, path, params, body in probes:
            paths_sent += path + "\n"
            response = _call(http, method, path, world.headers["operator_b"], params, body)
            # What B sent in this very request may come back (an error naming the id it asked for) ...
            echoed = path + json.dumps(params) + json.dumps(body)
            if path.startswith("/v1/audit"):  # ... and in B's audit log, every path B asked for so far
                echoed += paths_sent
            seen = [s for s in world.secrets_a if s in response.text and s not in echoed]
            if seen:
                leaks.append(f"{method} {path} -> {response.status_code} carries A's {seen}")
            if response.status_code < 300 and body is not None and "tenant" in body:
                leaks.append(f"{method} {path} accepted a body naming another tenant: {response.text[:200]}")
        after = _state_of_a(http, world.headers["operator_a"], world)
    assert not leaks, "\n".join(leaks)
    assert after == before


def test_tenant_operators_are_refused_when_they_name_another_tenant(platform: Platform, world: World) -> None:
    b = world.headers["operator_b"]
    with httpx.Client(base_url=platform.url, timeout=30) as http:
        for tenant in (world.tenant_a, "system", "no-such-tenant"):
            minted = http.post("/v1/keys", headers=b, json={"tenant": tenant, "role": "operator"})
            assert minted.status_code == 403, minted.text
            assert "platform operator" in minted.json()["message"]
            assert http.get("/v1/keys", headers=b, params={"tenant": tenant}).status_code == 403
            assert http.delete(f"/v1/keys/{world.path_values_a['key_id']}", headers=b,
                               params={"tenant": tenant}).status_code == 403
        assert http.get("/v1/tenants", headers=b).status_code == 403
        assert http.post("/v1/tenants", headers=b, json={"name": "grabbed"}).status_code == 403
        own = http.post("/v1/keys", headers=b, json={"role": "member", "name": "mine"})
        assert own.status_code == 201, own.text
        platform_minted = http.post("/v1/keys", headers=world.headers["platform"],
                                    json={"tenant": world.tenant_a, "role": "member", "name": "by-platform"})
        assert platform_minted.status_code == 201 and platform_minted.json()["tenant_id"] == world.tenant_a
    # A's member key still works: B's DELETE above did not revoke it
    with httpx.Client(base_url=platform.url, timeout=30, headers=world.headers["member_a"]) as a_member:
        assert a_member.get("/v1/whoami").status_code == 200


def test_shared_catalog_and_secret_rotation_are_platform_actions(platform: Platform, world: World) -> None:
    with httpx.Client(base_url=platform.url, timeout=30) as http:
        before = http.get("/v1/connectors/shop", headers=world.headers["member_a"]).json()
        for role in ("operator_a", "operator_b"):
            h = world.headers[role]
            replaced = http.post("/v1/connectors/import", headers=h,
                                 json={"id": "shop", "document": SHOP_SPEC, "replace": True})
            assert replaced.status_code == 403 and "platform control" in replaced.json()["message"]
            assert http.patch("/v1/connectors/shop", headers=h,
                              json={"base_url": "https://evil.example.com"}).status_code == 403
            assert http.post("/v1/connectors/shop/operations", headers=h,
                             json={"enable": ["listProducts"]}).status_code == 403
            assert http.post("/v1/secrets/rotate", headers=h).status_code == 403
        after = http.get("/v1/connectors/shop", headers=world.headers["member_a"]).json()
        assert after == before
        patched = http.patch("/v1/connectors/shop", headers=world.headers["platform"],
                             json={"base_url": "https://shop.example.com/v3"})
        assert patched.status_code == 200, patched.text


# --- the access table itself ----------------------------------------------------------------------------


def test_a_route_without_a_declaration_stops_start_up() -> None:
    app = FastAPI()

    @app.get("/v1/undeclared")
    async def undeclared(who: Caller) -> None:
        return None

    served = [r for r in app.router.routes if isinstance(r, APIRoute)]
    declared = [GuardedRoute(m, p, a.audience) for (m, p), a in ROUTES.items()]
    with pytest.raises(ConfigError, match="GET /v1/undeclared has no access declaration"):
        check_declarations(declared + guarded_routes(served))


def test_a_route_guarded_more_loosely_than_declared_stops_start_up() -> None:
    app = FastAPI()

    @app.post("/v1/tenants")
    async def create_tenant(who: Operator) -> None:  # declared PLATFORM: an Operator guard is too loose
        return None

    @app.get("/v1/tenants")
    async def list_tenants(who: PlatformOperator) -> None:
        return None

    served = guarded_routes(r for r in app.router.routes if isinstance(r, Route))
    others = [GuardedRoute(m, p, a.audience) for (m, p), a in ROUTES.items() if p != "/v1/tenants"]
    with pytest.raises(ConfigError, match="POST /v1/tenants is declared platform but its dependency enforces "
                                          "operator"):
        check_declarations(others + served)


def test_every_declaration_names_a_scope_consistent_with_its_audience() -> None:
    for (method, path), access in ROUTES.items():
        assert isinstance(access, Access)
        if access.audience is Audience.PLATFORM:
            assert not access.tenant_scoped, (method, path)
        if access.audience is Audience.BOT:
            assert access.tenant_scoped, (method, path)
        if access.audience in (Audience.OPERATOR,) and method != "GET":
            assert access.tenant_scoped, (method, path)
