"""The Security Center: each scan finds the problem planted for it, once; files one ticket; updates rather than
duplicates on a re-scan; closes the ticket when the problem is fixed; reopens the same ticket on a regression."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conftest import Platform, make_tenant
from external.fake_shop import FakeShop
from oshal.security.vulndb import import_db, installed_packages
from oshal.store.migrate import API_ROLE
from shopfront import enable_shop

AWS_KEY = "AKIA" + "Q2VBWJ7XKZ4TN5PE"  # the shape of an AWS access key id (built so this file holds none)


def scan(platform: Platform, *names: str) -> dict[str, dict[str, Any]]:
    with platform.client() as admin:
        response = admin.post("/v1/security/scan", json={"scans": list(names)}, timeout=300)
    assert response.status_code == 200, response.text
    results = {r["scan"]: r for r in response.json()}
    assert all(r["error"] is None for r in results.values()), results
    return results


def findings(platform: Platform, check: str, status: str | None = None) -> list[dict[str, Any]]:
    with platform.client() as admin:
        params = {"status": status} if status else {}
        rows = admin.get("/v1/security/findings", params=params).json()
        if status is None:
            rows = rows + admin.get("/v1/security/findings", params={"status": "fixed"}).json()
    return [r for r in rows if r["check_id"] == check]


def ticket(platform: Platform, ticket_id: str) -> dict[str, Any]:
    with platform.client() as admin:
        response = admin.get(f"/v1/tickets/{ticket_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def lifecycle(platform: Platform, scan_name: str, check: str, plant: Any, fix: Any,
              *, files: bool = True) -> dict[str, Any]:
    """Plant -> one finding (and one ticket) -> re-scan updates it -> fix closes it -> regression reopens it."""
    plant()
    scan(platform, scan_name)
    [first] = findings(platform, check)
    assert first["status"] == "open" and first["seen_count"] == 1
    assert first["remediation"] and first["evidence"] and len(first["fingerprint"]) == 32
    if files:
        assert first["ticket_id"] is not None
        filed = ticket(platform, first["ticket_id"])
        assert filed["status"] == "escalated" and filed["type"] == "security_finding"
    else:
        assert first["ticket_id"] is None
    scan(platform, scan_name)
    [again] = findings(platform, check)
    assert again["fingerprint"] == first["fingerprint"] and again["seen_count"] == 2
    assert again["ticket_id"] == first["ticket_id"]  # updated, not duplicated
    fix()
    scan(platform, scan_name)
    [fixed] = findings(platform, check)
    assert fixed["status"] == "fixed" and fixed["fixed_at"] is not None
    if files:
        assert ticket(platform, first["ticket_id"])["status"] == "done"
    plant()
    scan(platform, scan_name)
    [back] = findings(platform, check)
    assert back["status"] == "open" and back["reopened"] == 1 and back["ticket_id"] == first["ticket_id"]
    if files:
        reopened = ticket(platform, first["ticket_id"])
        assert reopened["status"] == "escalated" and "regression" in reopened["status_reason"]
    fix()
    scan(platform, scan_name)
    return first


def test_posture_finds_a_runtime_role_with_bypassrls(platform: Platform) -> None:
    def plant() -> None:
        with platform.superuser() as conn:
            conn.execute(f"ALTER ROLE {API_ROLE} BYPASSRLS")

    def fix() -> None:
        with platform.superuser() as conn:
            conn.execute(f"ALTER ROLE {API_ROLE} NOBYPASSRLS")

    first = lifecycle(platform, "posture", "role.attributes", plant, fix)
    assert first["severity"] == "critical" and "BYPASSRLS" in first["title"]
    with platform.client() as admin:  # a HIGH or CRITICAL filing is in the audit log
        actions = [e["action"] for e in admin.get("/v1/audit", params={"limit": 10_000}).json()]
    assert "security.finding.filed" in actions


def test_posture_finds_an_unauthenticated_route(platform: Platform) -> None:
    app: FastAPI = platform.plane.app

    async def dump() -> dict[str, str]:
        return {"debug": "state"}

    def plant() -> None:
        app.add_api_route("/v1/debug/dump", dump, methods=["GET"])

    def fix() -> None:
        app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", "") != "/v1/debug/dump"]

    plant()
    assert httpx.get(f"{platform.url}/v1/debug/dump").status_code == 200  # really open
    fix()
    first = lifecycle(platform, "posture", "route.unauthenticated", plant, fix)
    assert first["subject"] == "route:/v1/debug/dump" and first["severity"] == "high"
    # Every other route of the app authenticates, or is one of the public probes.
    assert findings(platform, "route.unauthenticated", "open") == []


def test_posture_finds_an_edited_signed_manifest(platform: Platform) -> None:
    with FakeShop(api_key="k") as shop:
        enable_shop(platform, shop, ["listProducts"])

    def plant() -> None:
        with platform.superuser() as conn:
            conn.execute("UPDATE connectors SET manifest = jsonb_set(manifest, '{base_url}', "
                         "'\"https://attacker.example\"') WHERE id = 'shop'")

    def fix() -> None:
        with platform.superuser() as conn:
            conn.execute("UPDATE connectors SET manifest = jsonb_set(manifest, '{base_url}', %s) WHERE id = 'shop'",
                         (json.dumps(original),))

    with platform.superuser() as conn:
        original = conn.execute("SELECT manifest->>'base_url' FROM connectors WHERE id = 'shop'").fetchone()[0]
    first = lifecycle(platform, "posture", "connector.signature", plant, fix)
    assert first["severity"] == "critical" and "digest" in first["title"]


def test_posture_finds_a_tampered_audit_log(platform: Platform) -> None:
    from oshal.audit import trail

    platform.on_plane(trail.record_now(platform.plane.db, trail.Entry(None, "test", "test.tamper", "x", {})))
    with platform.superuser() as conn:
        seq = conn.execute("SELECT seq FROM audit_chain").fetchone()[0]
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE audit_log SET actor = 'nobody' WHERE seq = %s", (seq,))
    try:
        scan(platform, "posture")
        [found] = findings(platform, "audit.chain", "open")
        assert found["severity"] == "critical" and f"#{seq}" in found["title"] and found["ticket_id"]
    finally:
        with platform.superuser() as conn:
            conn.execute("SET session_replication_role = replica")
            conn.execute("UPDATE audit_log SET actor = 'test' WHERE seq = %s", (seq,))
    scan(platform, "posture")
    assert findings(platform, "audit.chain", "open") == []


def test_secrets_finds_a_canary_leaked_into_a_log(platform: Platform) -> None:
    log = platform.home / "logs" / "control.log"

    def plant() -> None:
        log.parent.mkdir(exist_ok=True)
        log.write_text('2026-11-26T00:00:00Z [info] calling provider aws_access_key_id="' + AWS_KEY + '"\n')

    def fix() -> None:
        log.unlink()

    first = lifecycle(platform, "secrets", "secret.aws_access_key", plant, fix)
    assert first["severity"] == "critical"
    assert AWS_KEY not in json.dumps(first) and first["evidence"]["redacted"].startswith("AKIA")


def test_secrets_finds_a_key_in_a_ticket_result(platform: Platform) -> None:
    tenant = make_tenant(platform, "leaky")
    leaked = tenant.http.post("/v1/tickets", params={"wait": 10}, json={
        "bot": "echo", "input": {"note": "deploy", "aws_access_key_id": AWS_KEY}}).json()
    assert leaked["status"] == "done"
    scan(platform, "secrets")
    found = [f for f in findings(platform, "secret.aws_access_key", "open") if leaked["id"] in f["subject"]]
    assert len(found) == 1 and found[0]["evidence"]["source"] == "tickets"


def test_code_finds_dangerous_connector_code_and_a_vulnerable_package(platform: Platform, tmp_path: Path) -> None:
    plugin = tmp_path / "connector_plugin"
    plugin.mkdir()
    platform.plane.security.ctx.connector_code.append(plugin)
    source = "import subprocess\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
    try:
        first = lifecycle(platform, "code", "bandit.B602", lambda: (plugin / "hook.py").write_text(source),
                          lambda: (plugin / "hook.py").unlink())
        assert first["severity"] == "high" and first["evidence"]["test_id"] == "B602"
    finally:
        platform.plane.security.ctx.connector_code.remove(plugin)

    version = installed_packages()["httpx"]
    advisory = {"id": "GHSA-test-0000-0000", "aliases": ["CVE-2099-0001"], "package": "httpx",
                "summary": "planted for the test", "severity": "high",
                "affected": [{"introduced": "0", "fixed": "999.0"}], "references": []}
    planted, clean = tmp_path / "planted.json", tmp_path / "clean.json"
    planted.write_text(json.dumps({"format": "oshal-vulndb/1", "updated": "2099-01-01T00:00:00Z",
                                   "advisories": [advisory]}))
    clean.write_text(json.dumps({"format": "oshal-vulndb/1", "updated": "2099-01-02T00:00:00Z",
                                 "advisories": []}))
    try:
        import_db(planted, platform.home, force=True)
        scan(platform, "code")
        [vuln] = findings(platform, "vuln.GHSA-test-0000-0000", "open")
        assert vuln["evidence"]["installed"] == version and "upgrade httpx" in vuln["remediation"]
        import_db(clean, platform.home, force=True)
        scan(platform, "code")
        assert findings(platform, "vuln.GHSA-test-0000-0000", "open") == []
    finally:
        (platform.home / "security" / "vulndb.json").unlink(missing_ok=True)


def test_runtime_finds_a_burst_of_refused_logins_and_a_stranger_heartbeat(platform: Platform) -> None:
    for _ in range(25):
        httpx.get(f"{platform.url}/v1/tickets", headers={"Authorization": "Bearer osk_0123456789ab_guess"})
    platform.on_plane(platform.plane.auth.failures.flush())
    scan(platform, "runtime")
    [burst] = findings(platform, "auth.failure_burst", "open")
    assert burst["evidence"]["failures"] >= 25 and burst["ticket_id"]

    r = platform.redis_admin()
    try:
        first = lifecycle(platform, "runtime", "heartbeat.unknown_bot",
                          lambda: r.set("oshal:hb:ghost:node-1", "{}", px=60_000),
                          lambda: r.delete("oshal:hb:ghost:node-1"))
    finally:
        r.close()
    assert first["subject"] == "heartbeat:ghost"


def test_ledger_finds_a_cost_spike(platform: Platform) -> None:
    tenant = make_tenant(platform, "spender")

    def plant() -> None:
        with platform.superuser() as conn:
            for n in range(3):
                conn.execute(
                    "INSERT INTO ledger (call_id, tenant_id, ticket_id, phase_id, attempt, bot, provider, model, "
                    "input_tokens, output_tokens, cost_micros, price_source) VALUES (%s, %s, %s, %s, 1, 'summarizer', "
                    "'openai', 'gpt-4o', 1000, 1000, 2000000, 'estimated')",
                    (f"spike-{n}", tenant.tenant_id, uuid.uuid4(), uuid.uuid4()))

    def fix() -> None:
        with platform.superuser() as conn:
            conn.execute("DELETE FROM ledger WHERE call_id LIKE 'spike-%'")

    first = lifecycle(platform, "ledger", "cost.spike", plant, fix)
    assert first["evidence"]["last_hour_micros"] == 6_000_000 and first["evidence"]["bot"] == "summarizer"


@pytest.fixture
def old_key(platform: Platform) -> Iterator[str]:
    tenant = make_tenant(platform, "forgotten")
    with platform.superuser() as conn:
        conn.execute("UPDATE api_keys SET created_at = now() - interval '60 days' WHERE tenant_id = %s",
                     (tenant.tenant_id,))
        prefix = conn.execute("SELECT prefix FROM api_keys WHERE tenant_id = %s", (tenant.tenant_id,)).fetchone()[0]
    yield prefix


def test_access_findings_wait_for_an_operator_who_triages_them(platform: Platform, old_key: str) -> None:
    scan(platform, "access")
    unused = [f for f in findings(platform, "key.unused", "open") if f["subject"] == f"key:{old_key}"]
    assert len(unused) == 1 and unused[0]["severity"] == "low" and unused[0]["ticket_id"] is None
    assert unused[0]["triage"] == "new"
    fingerprint = unused[0]["fingerprint"]
    with platform.client() as admin:
        bad = admin.post(f"/v1/security/findings/{fingerprint}/assess", json={"decision": "accept",
                                                                              "reason": "later"})
        assert bad.status_code == 422 and "expiry" in bad.json()["message"]
        fixing = admin.post(f"/v1/security/findings/{fingerprint}/assess",
                            json={"decision": "fix", "reason": "revoke it"}).json()
        assert fixing["triage"] == "fix" and fixing["ticket_id"] is not None
        until = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() + 30 * 86400))
        accepted = admin.post(f"/v1/security/findings/{fingerprint}/assess",
                              json={"decision": "accept", "reason": "batch job key", "until": until}).json()
        assert accepted["triage"] == "accepted"
        assert ticket(platform, fixing["ticket_id"])["status"] == "done"  # accepting closes its ticket
        summary = admin.get("/v1/security/summary").json()
    assert summary["last_runs"]["access"]["found"] >= 1 and summary["open"] >= 1
    scan(platform, "access")  # an accepted risk is seen again but files nothing new
    [seen] = [f for f in findings(platform, "key.unused", "open") if f["fingerprint"] == fingerprint]
    assert seen["triage"] == "accepted" and seen["seen_count"] == 2
    with platform.superuser() as conn:  # fixed: the key is revoked
        conn.execute("UPDATE api_keys SET revoked_at = now() WHERE prefix = %s", (old_key,))
    scan(platform, "access")
    [fixed] = [f for f in findings(platform, "key.unused") if f["fingerprint"] == fingerprint]
    assert fixed["status"] == "fixed"


def test_scans_and_findings_are_for_platform_operators_only(platform: Platform) -> None:
    ops = make_tenant(platform, "tenant-ops", role="operator")
    assert ops.http.post("/v1/security/scan", json={"scans": ["access"]}).status_code == 403
    assert ops.http.get("/v1/security/findings").status_code == 403
    with platform.client() as admin:
        unknown = admin.post("/v1/security/scan", json={"scans": ["everything"]})
    assert unknown.status_code == 422


def test_runtime_finds_a_bot_identity_outside_its_lane_and_nothing_on_normal_traffic(platform: Platform) -> None:
    import redis as sync_redis

    tenant = make_tenant(platform, "traffic")
    assert tenant.http.post("/v1/tickets", params={"wait": 10}, json={"bot": "echo", "input": 1}).json()["status"] \
        == "done"
    scan(platform, "runtime")
    assert findings(platform, "redis.acl_denied", "open") == []  # bots stay inside their ACLs

    credentials = json.loads((platform.home / "run" / "bot-credentials.json").read_text())
    admin = platform.redis_admin()

    def plant() -> None:
        as_echo = sync_redis.Redis.from_url(credentials["echo"], driver_info=None)
        with pytest.raises(sync_redis.exceptions.NoPermissionError):
            as_echo.xadd("oshal:lane:summarizer", {"e": "forged"})
        as_echo.close()

    try:
        first = lifecycle(platform, "runtime", "redis.acl_denied", plant, admin.acl_log_reset)
    finally:
        admin.close()
    assert first["subject"] == "acl:bot-echo:oshal:lane:summarizer" and first["severity"] == "high"
