"""Least privilege proven: every grant of every runtime role, and the cross-tenant canary of `security verify`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import Platform
from oshal.security import rls
from oshal.security.roles import EXPECTED, Grant
from oshal.store.migrate import API_ROLE, REPORT_ROLE


def _grants(platform: Platform, role: str) -> set[Grant]:
    from oshal.security.roles import _GRANTS_SQL

    with platform.superuser() as conn:
        rows = conn.execute(_GRANTS_SQL, {"role": role}).fetchall()
    return {Grant(*row) for row in rows}


@pytest.mark.parametrize("role", [API_ROLE, REPORT_ROLE])
def test_each_runtime_role_holds_exactly_its_listed_grants(platform: Platform, role: str) -> None:
    held = _grants(platform, role)
    extra = sorted(held - EXPECTED[role])
    missing = sorted(EXPECTED[role] - held)
    assert extra == [], f"{role} holds grants nobody listed: {[str(g) for g in extra]}"
    assert missing == [], f"security/roles.py lists grants {role} does not hold: {[str(g) for g in missing]}"
    with platform.superuser() as conn:
        flags = conn.execute("SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolinherit FROM pg_roles "
                             "WHERE rolname = %s", (role,)).fetchone()
        owned = conn.execute("SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles "
                             "WHERE rolname = %s)", (role,)).fetchone()[0]
    assert flags == (False, False, False, False, False) and owned == 0


def test_the_reporting_role_reads_its_tables_within_a_tenant_and_writes_nothing(platform: Platform) -> None:
    import psycopg

    assert platform.engines.report_url is not None
    with psycopg.connect(platform.engines.report_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM tickets").fetchone()[0] == 0  # no tenant: nothing
        for statement in ("INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), 'x')",
                          "SELECT * FROM credentials", "SELECT * FROM api_keys", "SELECT * FROM audit_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def _verify(platform: Platform) -> rls.Report:
    urls = {API_ROLE: platform.engines.api_url, REPORT_ROLE: str(platform.engines.report_url)}
    return asyncio.run(rls.verify(platform.engines.owner_url, urls))


def test_verify_proves_isolation_with_a_canary_that_can_see_its_own_rows(platform: Platform) -> None:
    report = _verify(platform)
    assert report.ok, report.problems
    assert {"tickets", "ledger", "audit_log", "credentials", "security_findings"} <= set(
        report.checked["tenant_tables"])
    for role in (API_ROLE, REPORT_ROLE):
        # The positive control: as the canary tenant, each role saw the canary's rows in the tables it reads.
        assert report.checked[role]["canary_rows_seen_by_owner_tenant"] >= 2, report.checked[role]
    assert "credentials" not in report.checked[REPORT_ROLE]["readable_tables"]
    with platform.superuser() as conn:  # and the canary left nothing behind
        assert conn.execute("SELECT count(*) FROM tenants WHERE name LIKE 'rls-canary-%'").fetchone()[0] == 0


@pytest.fixture
def undo(platform: Platform) -> Iterator[list[str]]:
    statements: list[str] = []
    yield statements
    with platform.superuser() as conn:
        for statement in statements:
            conn.execute(statement)


def test_verify_fails_on_bypassrls_and_shows_the_leak(platform: Platform, undo: list[str]) -> None:
    with platform.superuser() as conn:
        conn.execute(f"ALTER ROLE {API_ROLE} BYPASSRLS")
    undo.append(f"ALTER ROLE {API_ROLE} NOBYPASSRLS")
    report = _verify(platform)
    assert f"role {API_ROLE} has BYPASSRLS" in report.problems
    assert any(p.startswith(f"{API_ROLE}:") and "visible without a tenant" in p for p in report.problems)
    assert any(p.startswith(f"{API_ROLE}:") and "other tenants in tickets are visible" in p for p in report.problems)


def test_verify_fails_on_unforced_rls_and_on_an_extra_grant(platform: Platform, undo: list[str]) -> None:
    with platform.superuser() as conn:
        conn.execute("ALTER TABLE ledger NO FORCE ROW LEVEL SECURITY")
        conn.execute(f"GRANT DELETE ON tickets TO {REPORT_ROLE}")
    undo += ["ALTER TABLE ledger FORCE ROW LEVEL SECURITY", f"REVOKE DELETE ON tickets FROM {REPORT_ROLE}"]
    report = _verify(platform)
    assert "table ledger has row-level security but not FORCE (its owner bypasses it)" in report.problems
    assert f"role {REPORT_ROLE} holds an unexpected grant: DELETE on table tickets" in report.problems


def test_verify_fails_on_a_policy_that_leaks(platform: Platform, undo: list[str]) -> None:
    with platform.superuser() as conn:
        conn.execute("CREATE POLICY leak ON ledger FOR SELECT USING (true)")
    undo.append("DROP POLICY leak ON ledger")
    report = _verify(platform)
    assert any("rows of other tenants in ledger are visible" in p for p in report.problems), report.problems


def test_the_cli_runs_the_proof_on_the_host(platform: Platform) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    env.update(OSHAL_HOME=str(platform.home), COLUMNS="200")
    done = subprocess.run([sys.executable, "-m", "oshal.cli.main", "security", "verify", "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["ok"] and report["checked"][REPORT_ROLE]["canary_rows_seen_by_owner_tenant"] >= 2
