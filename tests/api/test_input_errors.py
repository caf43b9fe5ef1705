"""Inputs Postgres cannot store, integers past their column, and unexpected errors: a JSON 4xx or a JSON 500."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx
import pytest

from conftest import Platform, TenantClient

NUL = "a\u0000b"


def _refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid" and field in body["message"], body
    assert "NUL" in body["message"] or "surrogate" in body["message"], body


@pytest.mark.parametrize(("body", "field"), [
    ({"bot": "echo", "input": {"text": NUL}}, "input.text"),
    ({"bot": "echo", "input": {"deep": [{"x": [NUL]}]}}, "input.deep.0.x.0"),
    ({"bot": "echo", "input": {NUL: 1}}, "input.a\x00b"),
    ({"bot": "echo", "input": {}, "idempotency_key": NUL}, "idempotency_key"),
    ({"bot": NUL, "input": {}}, "bot"),
    ({"bot": "echo", "input": "\ud800 lone surrogate"}, "input"),
])
def test_nul_in_a_ticket_body_is_a_422_naming_the_field(platform: Platform, tenant_client: TenantClient,
                                                         body: dict[str, Any], field: str) -> None:
    raw = json.dumps(body).encode()  # escaped: a lone surrogate cannot be sent as UTF-8
    _refused(tenant_client.http.post("/v1/tickets", content=raw, headers={"Content-Type": "application/json"}), field)


def test_nul_anywhere_else_is_a_422_naming_the_field(platform: Platform, tenant_client: TenantClient) -> None:
    http = tenant_client.http
    ticket = http.post("/v1/tickets", json={"bot": "idle", "input": {}}).json()["id"]
    _refused(http.post("/v1/tickets/batch", json={"tickets": [{"bot": "echo", "input": {}},
                                                             {"bot": "echo", "input": [NUL]}]}), "tickets.1.input.0")
    for path in ("/v1/tickets", "/v1/ledger", "/v1/dead-letters"):
        _refused(http.get(path, params={"bot": NUL}), "query.bot")
    for path in ("/v1/connectors/a%00b", "/v1/schedules/a%00b", "/v1/workflows/a%00b"):
        _refused(http.get(path), "path.")
    _refused(http.post(f"/v1/tickets/{ticket}/cancel", json={"reason": NUL}), "reason")
    _refused(http.post("/v1/schedules", json={"name": "nightly", "cron": "@daily", "bot": "echo",
                                              "input": {"k": NUL}}), "input.k")
    with platform.client() as admin:
        _refused(admin.post("/v1/kill", json={"reason": NUL}), "reason")
    assert http.get(f"/v1/tickets/{ticket}").json()["status"] != "cancelled"  # refused before anything ran


def test_a_nul_the_platform_does_not_store_is_still_accepted(platform: Platform, tenant_client: TenantClient) -> None:
    """The check is about storing: an escaped backslash followed by "u0000" is ordinary text."""
    created = tenant_client.http.post("/v1/tickets", json={"bot": "echo", "input": {"text": "\\u0000"}})
    assert created.status_code == 201, created.text


@pytest.mark.parametrize(("path", "params"), [
    ("/v1/workflows/build", {"version": 2**31}),
    ("/v1/audit", {"after": 2**63}),
    ("/v1/tickets", {"limit": 2**64}),
])
def test_integers_past_their_column_are_422(platform: Platform, path: str, params: dict[str, int]) -> None:
    with platform.client() as admin:
        response = admin.get(path, params=params)
    assert response.status_code == 422, response.text
    assert next(iter(params)) in response.json()["message"]


def test_prices_and_budgets_are_bounded(platform: Platform) -> None:
    with platform.client() as admin:
        price = admin.post("/v1/prices", json={"provider": "p", "model": "m", "effective_from": "2030-01-01T00:00:00Z",
                                               "input": 2**63, "output": 1})
        budget = admin.put("/v1/budgets", json={"scope": "tenant", "period": "day", "limit_micros": 10,
                                                "soft_micros": 2**63})
    assert price.status_code == 422 and "input" in price.json()["message"]
    assert budget.status_code == 422 and "soft_micros" in budget.json()["message"]


def test_a_body_that_is_not_utf8_is_a_422(platform: Platform, tenant_client: TenantClient) -> None:
    response = tenant_client.http.post("/v1/tickets", content=b'{"bot": "\xff\xfe"}',
                                       headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["error"] == "invalid"


def test_a_mixed_batch_of_typed_and_bot_tickets_is_a_422(platform: Platform, tenant_client: TenantClient) -> None:
    response = tenant_client.http.post("/v1/tickets/batch", json={"tickets": [{"bot": "echo"},
                                                                              {"type": "content"}]})
    assert response.status_code == 422 and "not both" in response.json()["message"]


_BOOM = """
import json
from fastapi import FastAPI
from fastapi.testclient import TestClient
from oshal import logs
from oshal.api.fallback import install_fallback_handlers

logs.configure("info", json=True)
app = FastAPI()
install_fallback_handlers(app)

@app.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret internals")

with TestClient(app, raise_server_exceptions=False) as client:
    response = client.get("/boom")
print(json.dumps({"status": response.status_code, "type": response.headers["content-type"], "body": response.text}))
"""


def test_an_unexpected_error_is_a_json_500_with_an_error_id() -> None:
    """The catch-all, on an app of its own in a process of its own (no platform route fails on purpose, and the
    log configuration is process-wide)."""
    ran = subprocess.run([sys.executable, "-c", _BOOM], capture_output=True, text=True, timeout=60, check=True)
    answer = json.loads(ran.stdout.strip().splitlines()[-1])
    assert answer["status"] == 500 and answer["type"] == "application/json"
    body = json.loads(answer["body"])
    assert body["error"] == "internal" and body["error_id"] in body["message"]
    assert "secret internals" not in answer["body"] and "Traceback" not in answer["body"]
    [logged] = [json.loads(line) for line in ran.stderr.splitlines() if body["error_id"] in line]
    assert logged["event"] == "request.unexpected_error" and "secret internals" in logged["traceback"]
