"""SECURITY DEFINER functions, one by one: listed with a reason, executable only by the roles listed for them, and
none answers the API role with other tenants' rows when no tenant (or another tenant) is set."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from conftest import Platform, TenantClient, make_tenant
from oshal.control import api_keys
from oshal.security import rls
from oshal.security.roles import DEFINERS, Scope
from oshal.store.migrate import API_ROLE, REPORT_ROLE

ROW_RETURNING = sorted(name for name, d in DEFINERS.items() if d.probe is not None)


def _verify(platform: Platform) -> rls.Report:
    urls = {API_ROLE: platform.engines.api_url, REPORT_ROLE: str(platform.engines.report_url)}
    return asyncio.run(rls.verify(platform.engines.owner_url, urls))


@pytest.fixture
def undo(platform: Platform) -> Iterator[list[str]]:
    statements: list[str] = []
    yield statements
    with platform.owner() as conn:
        for statement in statements:
            conn.execute(statement.encode())


def test_the_list_is_the_database_and_verify_passes_on_a_fresh_platform(platform: Platform) -> None:
    with platform.owner() as conn:
        in_db = {r[0] for r in conn.execute(
            "SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE p.prosecdef AND n.nspname = 'public'").fetchall()}
    assert in_db == set(DEFINERS)
    assert all(d.why for d in DEFINERS.values())
    # Every row-returning definer that could return tenant rows is probed; the rest return none, or no tenant data.
    assert {n for n, d in DEFINERS.items() if d.scope in (Scope.KEY, Scope.PLATFORM, Scope.TENANT)} == set(
        ROW_RETURNING)
    report = _verify(platform)
    assert report.ok, report.problems
    assert len(report.checked["definers"]) == len(DEFINERS)
    assert report.checked["definer_probe_calls"] >= 2 * len(ROW_RETURNING)


def test_verify_reports_an_unlisted_definer(platform: Platform, undo: list[str]) -> None:
    with platform.owner() as conn:
        conn.execute("CREATE FUNCTION oshal_planted() RETURNS bigint LANGUAGE sql SECURITY DEFINER "
                     "AS $$ SELECT count(*) FROM api_keys $$")
    undo.append("DROP FUNCTION oshal_planted()")
    report = _verify(platform)
    assert not report.ok
    assert any("oshal_planted() is not listed in security/roles.py DEFINERS" in p for p in report.problems), (
        report.problems)


def test_verify_reports_a_definer_executable_by_a_role_not_listed_for_it(platform: Platform,
                                                                         undo: list[str]) -> None:
    with platform.owner() as conn:
        conn.execute(f"GRANT EXECUTE ON FUNCTION oshal_key_inventory(uuid) TO {REPORT_ROLE}")
    undo.append(f"REVOKE EXECUTE ON FUNCTION oshal_key_inventory(uuid) FROM {REPORT_ROLE}")
    report = _verify(platform)
    assert (f"SECURITY DEFINER function oshal_key_inventory(uuid) is executable by {REPORT_ROLE}, which DEFINERS "
            "does not list for it") in report.problems


def test_verify_reports_a_definer_that_answers_without_a_tenant(platform: Platform, undo: list[str]) -> None:
    """A later migration that redefines a work queue without its scope check is caught."""
    with platform.owner() as conn:
        original = conn.execute("SELECT pg_get_functiondef('oshal_due_schedules(int)'::regprocedure)").fetchone()[0]
        conn.execute("CREATE OR REPLACE FUNCTION oshal_due_schedules(p_limit int) "
                     "RETURNS TABLE (tenant_id uuid, schedule_id uuid) LANGUAGE sql STABLE SECURITY DEFINER "
                     "SET search_path = public, pg_temp AS $$ SELECT tenant_id, id FROM schedules LIMIT p_limit $$")
    undo.append(original)
    report = _verify(platform)
    assert any(p.startswith("oshal_due_schedules answered") and "no tenant set" in p for p in report.problems), (
        report.problems)


# --- each row-returning definer, called as the API role with real rows of another tenant ---------------------------


@pytest.fixture
def victim(platform: Platform) -> Iterator[TenantClient]:
    """Tenant A with rows every definer could leak: keys, audit entries, a dispatched phase (a bot nobody runs)."""
    tc = make_tenant(platform, "victim", role="operator")
    created = tc.http.post("/v1/tickets", json={"bot": "idle", "input": {"secret": "of A"}})
    assert created.status_code == 201, created.text
    yield tc
    tc.http.close()


def _api(platform: Platform) -> psycopg.Connection[Any]:
    return psycopg.connect(platform.engines.api_url, autocommit=True)


def _call(conn: psycopg.Connection[Any], name: str, session: str | None, tenant: str | None,
          prefix: str = "", digest: bytes = b"") -> list[dict[str, Any]]:
    probe = DEFINERS[name].probe
    assert probe is not None
    with conn.transaction():
        if session is not None:
            conn.execute("SELECT set_config('oshal.tenant_id', %s, true)", (session,))
        cur = conn.execute(probe.replace("{tenant}", "%(tenant)s::uuid").encode(),
                           {"tenant": tenant, "prefix": prefix, "digest": digest})
        names = [d.name for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _plant_session(platform: Platform, tenant: str, digest: bytes) -> None:
    """A console session of the tenant's key whose token digest is ``digest`` (as the RLS canary plants one)."""
    with platform.owner() as conn, conn.transaction():
        conn.execute("SELECT set_config('oshal.tenant_id', %s, true)", (tenant,))
        conn.execute("INSERT INTO console_sessions (digest, tenant_id, key_id, expires_at) "
                     "SELECT %s, tenant_id, id, now() + interval '1 hour' FROM api_keys WHERE tenant_id = %s "
                     "ON CONFLICT DO NOTHING", (digest, tenant))


def _system_tenant(platform: Platform) -> str:
    with platform.owner() as conn:
        return str(conn.execute("SELECT id FROM tenants WHERE name = 'system'").fetchone()[0])


@pytest.mark.parametrize("name", ROW_RETURNING)
def test_no_definer_returns_another_tenants_rows(platform: Platform, victim: TenantClient, name: str) -> None:
    other = make_tenant(platform, "bystander")
    other.http.close()
    a, b = victim.tenant_id, other.tenant_id
    scope = DEFINERS[name].scope
    with _api(platform) as conn:
        if scope is Scope.KEY:
            prefix = api_keys.parse_prefix(victim.key)
            assert prefix is not None
            if name == "oshal_session_check":  # it takes a console session's digest: give the victim one
                _plant_session(platform, a, api_keys.digest(victim.key))
            wrong = hashlib.sha256(b"not the key").digest()
            assert _call(conn, name, None, None, prefix, wrong) == []
            assert _call(conn, name, b, None, prefix, wrong) == []
            own = _call(conn, name, None, None, prefix, api_keys.digest(victim.key))  # proof of possession
            assert [str(r["tenant_id"]) for r in own] == [a]
            assert "hash" not in own[0]  # the stored hash never leaves the database
            return
        refused = [(None, None), (None, a), (b, None), (b, a)] if scope is Scope.TENANT else [(None, None), (b, None)]
        for session, tenant in refused:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="may not see them"):
                _call(conn, name, session, tenant)
        if scope is Scope.TENANT:
            assert {str(r["tenant_id"]) for r in _call(conn, name, b, b)} <= {b}  # B asking for itself: no A
            assert {str(r["tenant_id"]) for r in _call(conn, name, a, a)} == {a}  # A's own rows: the control
        # The platform's scope (the system tenant) answers: the loops and the Security Center still work. A
        # tenant-scoped definer is asked for A's rows by name: across all tenants, A's may lie past the page.
        platform_rows = _call(conn, name, _system_tenant(platform), a if scope is Scope.TENANT else None)
    if name in ("oshal_stale_dispatches", "oshal_key_inventory", "oshal_audit_entries"):
        assert a in {str(r["tenant_id"]) for r in platform_rows}  # A's rows exist: the refusals above hid them


def test_a_bootstrap_key_is_recognised_by_its_digest_and_a_prefix_clash_refused(platform: Platform) -> None:
    """The bootstrap check has no stored hash to compare against any more: the database compares it."""
    from oshal.errors import Conflict

    platform.on_plane(platform.plane.admin.register_bootstrap_key(platform.admin_key))  # known: nothing to do
    prefix = api_keys.parse_prefix(platform.admin_key)
    with pytest.raises(Conflict, match="prefix belongs to a different key"):
        platform.on_plane(platform.plane.admin.register_bootstrap_key(f"osk_{prefix}_{'x' * 43}"))
    with platform.owner() as conn:
        assert conn.execute("SELECT count(*) FROM api_keys WHERE prefix = %s", (prefix,)).fetchone()[0] == 1
