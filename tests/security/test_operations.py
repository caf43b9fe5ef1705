"""Run-time fail-closed denials, notification of filed findings, the scheduled scans, and the CLI."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cli.test_cli import run, run_json
from conftest import Platform, make_tenant
from external.webhook_sink import WebhookSink
from oshal.store.migrate import API_ROLE


@pytest.fixture
def audit_unwritable(platform: Platform) -> Iterator[None]:
    with platform.superuser() as conn:
        conn.execute(f"REVOKE EXECUTE ON FUNCTION oshal_audit(uuid[], text[], text[], text[], jsonb[]) FROM {API_ROLE}")
    try:
        yield
    finally:
        with platform.superuser() as conn:
            conn.execute(f"GRANT EXECUTE ON FUNCTION oshal_audit(uuid[], text[], text[], text[], jsonb[]) "
                         f"TO {API_ROLE}")


def test_an_action_whose_audit_entry_cannot_be_written_does_not_happen(platform: Platform,
                                                                       audit_unwritable: None) -> None:
    with platform.client() as admin:
        engaged = admin.post("/v1/kill", json={"bot": "echo", "reason": "should not stick"})
        created = admin.post("/v1/tenants", json={"name": "unaudited"})
    assert engaged.status_code == 503 and "audit log cannot be written" in engaged.json()["message"]
    assert created.status_code == 503
    with platform.superuser() as conn:
        assert conn.execute("SELECT count(*) FROM kill_switches").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM tenants WHERE name = 'unaudited'").fetchone()[0] == 0


def test_a_tool_call_is_denied_when_the_policy_store_cannot_be_read(platform: Platform) -> None:
    from external.fake_shop import FakeShop
    from shopfront import enable_shop

    with FakeShop(api_key="policy-canary") as shop:
        tenant = make_tenant(platform, "policy-down", role="operator")
        enable_shop(platform, shop, ["listProducts"])
        assert tenant.http.post("/v1/connections", json={"connector": "shop", "secret": "policy-canary"}
                                ).status_code == 201
        assert tenant.http.put("/v1/bots/echo/tools", json={"connector": "shop", "operation": "listProducts",
                                                             "mode": "auto"}).status_code == 200
        with platform.superuser() as conn:
            conn.execute(f"REVOKE SELECT ON tool_policies FROM {API_ROLE}")
        try:
            ticket = tenant.http.post("/v1/tickets", params={"wait": 20}, json={"bot": "echo", "input": {
                "tool_calls": [{"connector": "shop", "operation": "listProducts"}]}}).json()
        finally:
            with platform.superuser() as conn:
                conn.execute(f"GRANT SELECT ON tool_policies TO {API_ROLE}")
        assert ticket["status"] == "failed"  # denied, not allowed with a warning
        assert shop.api_requests == []


def test_a_filed_finding_is_notified_by_webhook_and_redis(platform: Platform) -> None:
    center = platform.plane.security
    r = platform.redis_admin()
    pubsub = r.pubsub()
    pubsub.subscribe("oshal:security")
    with WebhookSink() as sink:
        center.webhook_url = f"{sink.root}/hooks/security"
        try:
            r.set("oshal:hb:intruder:node-9", "{}", px=60_000)
            with platform.client() as admin:
                assert admin.post("/v1/security/scan", json={"scans": ["runtime"]}).status_code == 200
        finally:
            center.webhook_url = None
            r.delete("oshal:hb:intruder:node-9")
        posted = [q.body for q in sink.requests if q.path == "/hooks/security"]
    messages: list[dict[str, Any]] = []  # other HIGH findings of this scan may be notified too
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("intruder" in m["title"] for m in messages):
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            messages.append(json.loads(message["data"]))
    pubsub.close()
    r.close()
    [hook] = [p for p in posted if "intruder" in p["title"]]
    assert hook["severity"] == "high" and hook["ticket"] and hook["remediation"]
    assert any("intruder" in m["title"] for m in messages)


def test_the_control_plane_runs_the_scans_on_its_schedule(platform: Platform) -> None:
    r = platform.redis_admin()
    r.set("oshal:hb:scheduled-ghost:n", "{}", px=60_000)
    stop = asyncio.Event()

    async def schedule_briefly() -> None:
        task = asyncio.create_task(platform.plane.security.run(stop, 0.2))
        await asyncio.sleep(0.1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = await platform.plane.security.findings(status="open", scan="runtime")
            if any(f["subject"] == "heartbeat:scheduled-ghost" for f in found):
                break
            await asyncio.sleep(0.2)
        stop.set()
        await task

    try:
        platform.on_plane(schedule_briefly(), timeout=120)
    finally:
        r.delete("oshal:hb:scheduled-ghost:n")
        r.close()
    found = platform.on_plane(platform.plane.security.findings(status="open", scan="runtime"))
    assert any(f["subject"] == "heartbeat:scheduled-ghost" for f in found)


def test_the_cli_scans_triages_verifies_and_pulls_the_switch(platform: Platform) -> None:
    results: list[dict[str, Any]] = run_json(platform, "security", "scan", "access", "runtime")
    assert [r["scan"] for r in results] == ["access", "runtime"] and all(r["error"] is None for r in results)
    summary = run_json(platform, "security", "summary")
    assert set(summary["last_runs"]) >= {"access", "runtime"}
    table = run(platform, "security", "findings", "--status", "all")
    assert table.returncode == 0 and "findings (" in table.stdout
    bad = run(platform, "security", "assess", "0" * 32, "fix", "--reason", "x")
    assert bad.returncode == 4 and "no finding" in bad.stderr

    intact = run(platform, "audit", "verify")
    assert intact.returncode == 0 and "intact" in intact.stdout
    engaged = run(platform, "kill", "engage", "--bot", "echo", "--reason", "cli drill")
    assert engaged.returncode == 0 and "bot:echo engaged" in engaged.stdout
    assert run_json(platform, "kill", "status")[0]["scope"] == "bot:echo"
    released = run(platform, "kill", "release", "--bot", "echo")
    assert released.returncode == 0 and "released" in released.stdout
    member = make_tenant(platform, "cli-member")
    refused = run(platform, "kill", "engage", "--reason", "no", key=member.key)
    assert refused.returncode == 5
    exported = run(platform, "audit", "export")
    assert exported.returncode == 0
    assert any(json.loads(line)["action"] == "kill_switch.engage" for line in exported.stdout.splitlines())
    minted = run(platform, "key", "mint")
    assert minted.returncode == 0 and minted.stdout.strip().startswith("osk_")
