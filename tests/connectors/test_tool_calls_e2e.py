"""A bot's ticket calls a connector end to end: API -> lane -> bot -> tool gateway -> broker -> runtime -> API.

The store's API key is a canary: after the run it must appear nowhere but inside the encrypted credential,
not in Redis, ticket results, attempts, the ledger, grants, API responses or logs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis as sync_redis

from conftest import Platform, TenantClient, make_tenant, wait_done
from external.fake_shop import FakeShop, echoed_encodings
from oshal.connectors.manifest import ConnectorManifest
from oshal.connectors.publisher_keys import generate_keypair, private_key_pem, public_key_text
from oshal.connectors.signing import sign_manifest
from oshal.connectors.trust import TrustStore
from oshal.mesh.envelopes import Envelope
from oshal.mesh.redis_keys import lane_stream
from shopfront import ACCOUNT_PATH, SHOP_SPEC, enable_shop

CANARY = "canary-shop-key-7f3a9c1e5b"

@pytest.fixture
def shop() -> Iterator[FakeShop]:
    with FakeShop(api_key=CANARY) as server:
        yield server


def _connect(platform: Platform, tenant: TenantClient, modes: dict[str, str]) -> None:
    ops = TenantClient(tenant.tenant_id, tenant.name, tenant.key, tenant.http)
    response = ops.http.post("/v1/connections", json={"connector": "shop", "secret": CANARY})
    assert response.status_code == 201 and CANARY not in response.text
    for operation, mode in modes.items():
        assert ops.http.put("/v1/bots/echo/tools", json={"connector": "shop", "operation": operation,
                                                          "mode": mode}).status_code == 200


def _everything_in_redis(platform: Platform) -> str:
    r: sync_redis.Redis = platform.redis_admin()
    chunks = []
    for key in r.scan_iter(count=1000):
        kind = r.type(key)
        if kind == b"stream":
            chunks.extend(repr(entry) for entry in r.xrange(key))
        elif kind == b"string":
            chunks.append(repr(r.get(key)))
    r.close()
    return "\n".join(chunks)


def _everything_in_postgres(platform: Platform) -> str:
    with platform.superuser() as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]
        return "\n".join(str(row[0]) for table in tables
                         for row in conn.execute(f"SELECT row_to_json(t)::text FROM {table} t").fetchall())


def test_a_ticket_calls_a_connector_and_the_credential_never_leaks(
        platform: Platform, shop: FakeShop, capfd: pytest.CaptureFixture[str]) -> None:
    ops = make_tenant(platform, "retail", role="operator")
    enable_shop(platform, shop, ["listProducts"])
    _connect(platform, ops, {"listProducts": "auto"})

    script = {"tool_calls": [{"connector": "shop", "operation": "listProducts", "arguments": {"limit": 2}}]}
    ticket = ops.http.post("/v1/tickets", params={"wait": 20}, json={"bot": "echo", "input": script}).json()
    assert ticket["status"] == "done", ticket
    [result] = ticket["result"]["tool_results"]
    assert result["status"] == 200 and result["connector"] == "shop" and result["operation"] == "listProducts"
    requests = shop.api_requests
    assert len(requests) == result["pages"] >= 2  # the runtime followed the store's Link pagination
    items = result["data"]["data"]
    assert [p["id"] for p in items] == list(range(1, len(items) + 1)) and len(items) > 2  # every page, in order
    assert all(r.headers["x-auth-token"] == CANARY and r.query["limit"] == ["2"] for r in requests)

    grants = ops.http.get("/v1/grants", params={"ticket": ticket["id"]}).json()
    assert len(grants) == 1 and grants[0]["redeemed_at"] is not None
    # The outcome and the connection's health are written just after the call, off the bot's path.
    deadline = time.monotonic() + 10
    while ops.http.get("/v1/grants", params={"ticket": ticket["id"]}).json()[0]["outcome"] is None:
        assert time.monotonic() < deadline, "the call's outcome was never recorded"
        time.sleep(0.02)
    assert ops.http.get("/v1/grants", params={"ticket": ticket["id"]}).json()[0]["outcome"] == "200"
    connection = ops.http.get("/v1/connections").json()
    assert connection[0]["last_success_at"] is not None and connection[0]["last_error"] is None

    responses = [ops.http.get(path).text for path in (
        f"/v1/tickets/{ticket['id']}", "/v1/ledger", "/v1/connections", "/v1/grants", "/v1/connectors/shop",
        "/v1/approvals", "/v1/bots/echo/tools")]
    assert all(CANARY not in body for body in responses)
    assert CANARY not in _everything_in_redis(platform)
    assert CANARY not in _everything_in_postgres(platform)  # the credential is only there encrypted
    out, err = capfd.readouterr()
    assert CANARY not in out and CANARY not in err


def test_a_credential_the_api_echoes_in_any_encoding_is_redacted_everywhere(
        platform: Platform, shop: FakeShop, capfd: pytest.CaptureFixture[str]) -> None:
    ops = make_tenant(platform, "retail", role="operator")
    enable_shop(platform, shop, ["getAccount"], spec={**SHOP_SPEC, "paths": {**SHOP_SPEC["paths"], **ACCOUNT_PATH}})
    _connect(platform, ops, {"getAccount": "auto"})

    script = {"tool_calls": [{"connector": "shop", "operation": "getAccount", "arguments": {}}]}
    ticket = ops.http.post("/v1/tickets", params={"wait": 20}, json={"bot": "echo", "input": script}).json()
    assert ticket["status"] == "done", ticket
    [result] = ticket["result"]["tool_results"]
    echoed = echoed_encodings(CANARY)
    assert result["status"] == 200 and result["data"]["account"] == "demo"
    assert shop.api_requests[-1].headers["x-auth-token"] == CANARY  # the store saw it and echoed it 20 ways
    assert result["data"]["debug"].keys() == echoed.keys()
    assert all("[redacted]" in value for value in result["data"]["debug"].values())

    recorded = _recorded_tool_response(platform, ticket["id"])
    assert "[redacted]" in recorded
    responses = [ops.http.get(path).text for path in (f"/v1/tickets/{ticket['id']}", "/v1/grants")]
    places = {"api": "\n".join(responses), "recording": recorded, "redis": _everything_in_redis(platform),
              "postgres": _everything_in_postgres(platform), "logs": "".join(capfd.readouterr())}
    leaks = {(place, name) for place, text in places.items() for name, form in echoed.items() if form in text}
    assert leaks == set()


def _recorded_tool_response(platform: Platform, ticket: str) -> str:
    """The recording of the ticket's tool call (written just after the call, off the bot's path)."""
    deadline = time.monotonic() + 10
    while True:
        with platform.superuser() as conn:
            row = conn.execute("SELECT response::text FROM recordings WHERE ticket_id = %s AND kind = 'tool'",
                               (ticket,)).fetchone()
        if row is not None:
            return str(row[0])
        assert time.monotonic() < deadline, "the tool call was never recorded"
        time.sleep(0.05)


def test_policy_and_approvals_gate_the_call(platform: Platform, shop: FakeShop) -> None:
    ops = make_tenant(platform, "retail", role="operator")
    enable_shop(platform, shop, ["listProducts", "createOrder"])
    _connect(platform, ops, {"createOrder": "ask"})
    order = {"tool_calls": [{"connector": "shop", "operation": "createOrder", "arguments": {"body": {"sku": "A-1"}}}]}

    off = ops.http.post("/v1/tickets", params={"wait": 20}, json={
        "bot": "echo", "input": {"tool_calls": [{"connector": "shop", "operation": "listProducts"}]}}).json()
    assert off["status"] == "failed" and "tool policy off" in off["error"]

    first = ops.http.post("/v1/tickets", params={"wait": 20}, json={"bot": "echo", "input": order}).json()
    # The ticket rests waiting for a person, not failed; the attempt that asked ended without the call.
    assert first["status"] == "approval_required" and "needs an approval" in first["status_reason"]
    [pending] = ops.http.get("/v1/approvals", params={"status": "pending"}).json()
    assert pending["arguments"] == {"body": {"sku": "A-1"}} and pending["ticket_id"] == first["id"]
    assert shop.api_requests == []  # nothing reached the store without the approval
    _wait_phase_ended(platform, first["id"])
    assert ops.http.post(f"/v1/approvals/{pending['id']}/approve").status_code == 200
    done = wait_done(ops.http, first["id"])  # approving re-ran the work; no requeue needed
    assert done["status"] == "done" and done["result"]["tool_results"][0]["status"] == 201
    assert [r.body for r in shop.api_requests] == [{"sku": "A-1"}]

    second = ops.http.post("/v1/tickets", params={"wait": 20}, json={"bot": "echo", "input": order}).json()
    assert second["status"] == "approval_required"
    [pending] = ops.http.get("/v1/approvals", params={"status": "pending"}).json()
    _wait_phase_ended(platform, second["id"])
    rejected = ops.http.post(f"/v1/approvals/{pending['id']}/reject", json={"reason": "not this one"})
    assert rejected.status_code == 200
    final = ops.http.get(f"/v1/tickets/{second['id']}").json()
    assert final["status"] == "failed" and final["status_reason"] == "tool call rejected: not this one"
    assert len(shop.api_requests) == 1


def _wait_phase_ended(platform: Platform, ticket: str) -> None:
    """The bot's attempt that asked for the approval has reported back (its call was refused)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with platform.superuser() as conn:
            row = conn.execute("SELECT status FROM phases WHERE ticket_id = %s", (ticket,)).fetchone()
        if row and row[0] in ("failed", "dead_letter"):
            return
        time.sleep(0.05)
    raise AssertionError(f"the attempt of ticket {ticket} did not end")


def test_the_gateway_refuses_bad_bot_identities_and_envelopes(platform: Platform, shop: FakeShop) -> None:
    ops = make_tenant(platform, "retail", role="operator")
    enable_shop(platform, shop, ["listProducts"])
    _connect(platform, ops, {"listProducts": "auto"})
    tid = ops.http.post("/v1/tickets", json={"bot": "idle", "input": {}}).json()["id"]
    r = platform.redis_admin()
    [(_, fields)] = r.xrange(lane_stream("idle"))
    r.close()
    env = Envelope.decode(fields)
    tokens = json.loads((platform.home / "run" / "bot-tokens.json").read_text())
    wire = {"t": env.ticket_id, "p": env.phase_id, "a": env.attempt, "n": env.tenant_id, "b": env.bot, "g": env.sig}
    call = {"envelope": wire, "connector": "shop", "operation": "listProducts", "arguments": {}}

    def post(token: str | None, body: dict[str, Any]) -> httpx.Response:
        headers = {"X-Oshal-Bot-Token": token} if token else {}
        return httpx.post(f"{platform.url}/v1/tools/call", json=body, headers=headers)

    assert post(None, call).status_code == 401
    assert post("idle.forged", call).status_code == 401
    assert post(tokens["echo"], call).status_code == 403  # echo was not dispatched this ticket
    forged = {**call, "envelope": {**wire, "n": ops.tenant_id.replace(ops.tenant_id[-4:], "0000")}}
    assert post(tokens["idle"], forged).status_code == 403  # tenant rewritten: the signature breaks
    refused = post(tokens["idle"], call)
    assert refused.status_code == 403 and "tool policy off" in refused.json()["message"]  # idle has no policy
    assert ops.http.post(f"/v1/tickets/{tid}/cancel").status_code == 200
    assert post(tokens["idle"], call).status_code == 409  # closed tickets call nothing
    assert shop.api_requests == []


def test_a_ticket_calls_an_mcp_server_imported_with_the_cli(platform: Platform) -> None:
    import os
    import subprocess
    import sys

    from conftest import REPO

    server = f"{sys.executable} {REPO / 'tests' / 'external' / 'mcp_demo_server.py'}"
    env = {**os.environ, "OSHAL_API_URL": platform.url, "OSHAL_API_KEY": platform.admin_key,
           "OSHAL_HOME": str(platform.home)}
    imported = subprocess.run([sys.executable, "-m", "oshal.cli.main", "connector", "import-mcp", "--id", "demo",
                               "--stdio", server, "--publisher", "acme", "--json"],
                              env=env, capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["operations"] == 7
    admin = platform.client()
    assert admin.post("/v1/connectors/demo/operations", json={"enable": ["add"]}).status_code == 200
    manifest = ConnectorManifest.model_validate(admin.get("/v1/connectors/demo").json()["manifest"])
    assert manifest.operation("add").risk == "read"  # type: ignore[union-attr]
    private, public = generate_keypair()
    TrustStore.in_home(platform.home).trust("acme", public_key_text(public))
    signed = sign_manifest(manifest, private_key_pem(private), "acme")
    assert admin.post("/v1/connectors/demo/signature", json={"signature": signed.to_dict()}).status_code == 200
    assert admin.put("/v1/bots/echo/tools", json={"connector": "demo", "operation": "add",
                                                  "mode": "auto"}).status_code == 200

    script = {"tool_calls": [{"connector": "demo", "operation": "add", "arguments": {"body": {"a": 2, "b": 3}}}]}
    ticket = admin.post("/v1/tickets", params={"wait": 30}, json={"bot": "echo", "input": script}).json()
    assert ticket["status"] == "done", ticket
    [result] = ticket["result"]["tool_results"]
    assert result["status"] == 200 and result["data"] == {"result": 5}


def test_a_rotated_oauth2_refresh_token_is_stored_for_the_next_call(platform: Platform) -> None:
    import uuid

    with FakeShop(rotate_refresh_tokens=True, refresh_token="rt-0") as oauth_shop:
        spec = json.loads(json.dumps(SHOP_SPEC))
        spec["components"]["securitySchemes"] = {"oauth": {"type": "oauth2", "flows": {"authorizationCode": {
            "authorizationUrl": f"{oauth_shop.root}/authorize", "tokenUrl": f"{oauth_shop.root}/oauth/token",
            "refreshUrl": f"{oauth_shop.root}/oauth/token", "scopes": {}}}}}
        spec["security"] = [{"oauth": []}]
        ops = make_tenant(platform, "retail", role="operator")
        admin = platform.client()
        assert admin.post("/v1/connectors/import", json={"document": spec, "id": "shop", "publisher": "acme"}
                          ).status_code == 201
        admin.patch("/v1/connectors/shop", json={"base_url": f"{oauth_shop.root}/v3", "allow_private_network": True})
        admin.post("/v1/connectors/shop/operations", json={"enable": ["listProducts"]})
        manifest = ConnectorManifest.model_validate(admin.get("/v1/connectors/shop").json()["manifest"])
        assert manifest.auth[0].kind == "oauth2_refresh_token"
        private, public = generate_keypair()
        TrustStore.in_home(platform.home).trust("acme", public_key_text(public))
        signature = sign_manifest(manifest, private_key_pem(private), "acme")
        assert admin.post("/v1/connectors/shop/signature", json={"signature": signature.to_dict()}).status_code == 200
        assert ops.http.post("/v1/connections", json={"connector": "shop", "secret": "rt-0",
                                                      "client_id": "shop-client"}).status_code == 201
        ops.http.put("/v1/bots/echo/tools", json={"connector": "shop", "operation": "listProducts", "mode": "auto"})

        script = {"tool_calls": [{"connector": "shop", "operation": "listProducts", "arguments": {"limit": 50}}]}
        ticket = ops.http.post("/v1/tickets", params={"wait": 20}, json={"bot": "echo", "input": script}).json()
        assert ticket["status"] == "done" and ticket["result"]["tool_results"][0]["status"] == 200, ticket
        assert oauth_shop.refresh_token != "rt-0"  # the provider rotated it ...
        stored = platform.on_plane(platform.plane.secrets.get(uuid.UUID(ops.tenant_id), "connector.shop"))
        assert stored == oauth_shop.refresh_token  # ... and the new one is what the tenant's credential holds now


def test_a_users_own_credential_wins_and_an_expired_one_fails_closed(platform: Platform, shop: FakeShop) -> None:
    ops = make_tenant(platform, "retail", role="operator")
    enable_shop(platform, shop, ["listProducts"])
    _connect(platform, ops, {"listProducts": "auto"})
    with platform.client() as admin:  # a second key in the tenant: a user with a credential of their own
        alice = admin.post("/v1/keys", json={"tenant": "retail", "role": "member", "name": "alice"}).json()
    stored = ops.http.post("/v1/connections", json={"connector": "shop", "secret": "alice-own-key",
                                                    "user": alice["id"]})
    assert stored.status_code == 201 and "alice-own-key" not in stored.text
    script = {"tool_calls": [{"connector": "shop", "operation": "listProducts", "arguments": {"limit": 50}}]}
    with platform.client(alice["key"]) as as_alice:
        mine = as_alice.post("/v1/tickets", params={"wait": 20}, json={"bot": "echo", "input": script}).json()
    # The fake store only knows the tenant's key, so alice's own key is refused there: proof it was the one sent.
    assert mine["status"] == "done" and mine["result"]["tool_results"][0]["status"] == 401
    assert shop.api_requests[-1].headers["x-auth-token"] == "alice-own-key"
    theirs = ops.http.post("/v1/tickets", params={"wait": 20}, json={"bot": "echo", "input": script}).json()
    assert theirs["result"]["tool_results"][0]["status"] == 200
    assert shop.api_requests[-1].headers["x-auth-token"] == CANARY
    [connection] = ops.http.get("/v1/connections").json()
    assert connection["user_credentials"] == 1

    expired = ops.http.post("/v1/connections", json={"connector": "shop", "secret": CANARY,
                                                     "expires_at": "2020-01-01T00:00:00Z"})
    assert expired.status_code == 201
    [connection] = ops.http.get("/v1/connections").json()
    assert connection["health"] == "expired"
    calls_before = len(shop.api_requests)
    refused = ops.http.post("/v1/tickets", params={"wait": 20}, json={"bot": "echo", "input": script}).json()
    assert refused["status"] == "failed" and "expired at 2020-01-01" in refused["error"]
    assert len(shop.api_requests) == calls_before  # nothing was sent with an expired credential
    naive = ops.http.post("/v1/connections", json={"connector": "shop", "secret": CANARY,
                                                   "expires_at": "2030-01-01T00:00:00"})
    assert naive.status_code == 422 and "time zone" in naive.json()["message"]


def test_the_one_statement_path_records_each_grant_and_follows_policy_changes_at_once(
        platform: Platform, shop: FakeShop) -> None:
    ops = make_tenant(platform, "retail", role="operator")
    enable_shop(platform, shop, ["listProducts"])
    _connect(platform, ops, {"listProducts": "auto"})
    script = {"tool_calls": [{"connector": "shop", "operation": "listProducts", "arguments": {"limit": 50}}] * 3}
    ticket = ops.http.post("/v1/tickets", params={"wait": 20}, json={"bot": "echo", "input": script}).json()
    assert ticket["status"] == "done" and [r["status"] for r in ticket["result"]["tool_results"]] == [200] * 3
    grants = ops.http.get("/v1/grants", params={"ticket": ticket["id"]}).json()
    assert len(grants) == 3 and all(g["issued_at"] and g["redeemed_at"] for g in grants)
    assert len({g["id"] for g in grants}) == 3  # one single-use grant per call, never shared

    # A policy change applies to the very next call, even though the manifest is cached in this process.
    assert ops.http.put("/v1/bots/echo/tools", json={"connector": "shop", "operation": "listProducts",
                                                     "mode": "off"}).status_code == 200
    off = ops.http.post("/v1/tickets", params={"wait": 20}, json={"bot": "echo", "input": script}).json()
    assert off["status"] == "failed" and "tool policy off" in off["error"]
    # So does a quarantine (the connector's state is read with every call).
    assert ops.http.put("/v1/bots/echo/tools", json={"connector": "shop", "operation": "listProducts",
                                                     "mode": "auto"}).status_code == 200
    with platform.superuser() as conn:
        conn.execute("UPDATE connectors SET state = 'quarantined', quarantine_reason = 'test' WHERE id = 'shop'")
    quarantined = ops.http.post("/v1/tickets", params={"wait": 20}, json={"bot": "echo", "input": script}).json()
    assert quarantined["status"] == "failed" and "quarantined" in quarantined["error"]
    assert len(shop.api_requests) == 3


def test_a_malformed_gateway_request_is_a_clear_422(platform: Platform) -> None:
    with httpx.Client(base_url=platform.url, timeout=10) as bot:
        missing = bot.post("/v1/tools/call", json={"envelope": {"t": "x"}, "connector": "shop"})
        assert missing.status_code == 422
        body = missing.json()
        assert body["error"] == "invalid" and "envelope.p: Field required" in body["message"]
        assert "operation: Field required" in body["message"]
        not_json = bot.post("/v1/tools/call", content=b"{not json", headers={"Content-Type": "application/json"})
        assert not_json.status_code == 422 and not_json.json()["error"] == "invalid"
