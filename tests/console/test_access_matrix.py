"""The console's authorization matrix: every row of its access table, opened or posted by every kind of caller.

Generated from :data:`oshal.console.access.CONSOLE_ROUTES` (start-up checks it against the routes and the guard
each one really uses). A caller the row admits is never refused; any other is sent to log in (signed out) or
refused (403); nothing tenant B's operator opens or posts shows or changes tenant A's data.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from conftest import Platform, make_tenant, wait_done
from console_client import Console, csrf_of, signed_in
from oshal.api.access import Audience
from oshal.console.access import CONSOLE_ROUTES

CALLERS = ("signed_out", "member_a", "operator_a", "operator_b", "platform")
ALLOWED: dict[Audience, frozenset[str]] = {
    Audience.PUBLIC: frozenset(CALLERS),
    Audience.MEMBER: frozenset({"member_a", "operator_a", "operator_b", "platform"}),
    Audience.OPERATOR: frozenset({"operator_a", "operator_b", "platform"}),
    Audience.PLATFORM: frozenset({"platform"}),
}
# Posting these would end the caller's session or only repeat the login tests: covered in test_session.py.
_NOT_IN_MATRIX = {("POST", "/logout"), ("POST", "/login")}
_SECRET = "alpha-only-" + uuid.uuid4().hex


@dataclass
class World:
    consoles: dict[str, Console]
    ticket_a: str


@pytest.fixture
def world(platform: Platform) -> Iterator[World]:
    a_ops = make_tenant(platform, f"alpha-{uuid.uuid4().hex[:6]}", role="operator")
    b_ops = make_tenant(platform, f"bravo-{uuid.uuid4().hex[:6]}", role="operator")
    with platform.client() as admin:
        member = admin.post("/v1/keys", json={"tenant": a_ops.name, "role": "member", "name": "m"}).json()["key"]
    ticket = a_ops.http.post("/v1/tickets", json={"bot": "echo", "input": {"secret": _SECRET}}).json()["id"]
    wait_done(a_ops.http, ticket)
    consoles = {"signed_out": Console(platform), "member_a": signed_in(platform, member),
                "operator_a": signed_in(platform, a_ops.key), "operator_b": signed_in(platform, b_ops.key),
                "platform": signed_in(platform, platform.admin_key)}
    a_ops.http.close()
    b_ops.http.close()
    yield World(consoles, ticket)
    for console in consoles.values():
        console.http.close()


def _path(template: str, world: World) -> str:
    values = {"ticket_id": world.ticket_a, "name": "missing.mp4", "decision": "approve",
              "approval_id": "00000000-0000-7000-8000-000000000000", "fingerprint": "no-such-finding",
              "view": "system", "fmt": "mmd"}
    return re.sub(r"\{(\w+)\}", lambda m: values[m[1]], template)


def _call(console: Console, method: str, path: str) -> httpx.Response:
    if method == "GET":
        return console.get(path)
    token_page = console.get("/login" if "oshal_session" not in console.http.cookies else "/tickets")
    data = {"csrf": csrf_of(token_page.text), "reason": "matrix", "name": "posture", "decision": "fix",
            "target": "bot:echo", "input": "{}"}
    return console.http.post(path, data=data, headers={"Origin": str(console.http.base_url).rstrip("/")})


ROWS = sorted(key for key in CONSOLE_ROUTES if key not in _NOT_IN_MATRIX)


@pytest.mark.parametrize(("method", "template"), ROWS, ids=[f"{m} {p}" for m, p in ROWS])
def test_each_console_route_admits_exactly_its_audience(world: World, method: str, template: str) -> None:
    access = CONSOLE_ROUTES[(method, template)]
    path = _path(template, world)
    for caller in CALLERS:
        response = _call(world.consoles[caller], method, path)
        sent_to_login = response.status_code == 303 and response.headers["location"].startswith("/login")
        refused = response.status_code in (401, 403) or sent_to_login
        if caller in ALLOWED[access.audience]:
            assert not refused, (caller, method, path, response.status_code, response.text[:300])
        else:
            assert refused, (caller, method, path, response.status_code)
            if caller == "signed_out":
                assert sent_to_login if method == "GET" else response.status_code == 403
        if caller == "operator_b":
            assert _SECRET not in response.text, (method, path)


def test_tenant_b_can_neither_see_nor_act_on_tenant_as_ticket(world: World) -> None:
    b = world.consoles["operator_b"]
    for method, template in ROWS:
        if "{ticket_id}" not in template:
            continue
        response = _call(b, method, _path(template, world))
        assert response.status_code == 404, (method, template, response.status_code)
    a = world.consoles["operator_a"]
    page = a.get(f"/tickets/{world.ticket_a}")
    assert page.status_code == 200 and _SECRET in page.text
