"""Tenant isolation, proven through the API and through a direct connection as the API's database role."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from conftest import Platform, make_tenant, wait_done
from oshal.store.migrate import API_ROLE

TENANT_TABLES = ("api_keys", "tickets", "phases", "attempts", "ledger", "connections", "tool_policies", "approvals",
                 "grants", "credentials", "data_keys", "ticket_events", "workflow_runs", "schedules",
                 "schedule_fires", "artifacts", "workflow_definitions", "audit_log", "security_findings",
                 "security_scans", "budgets", "budget_usage", "reservations", "ledger_daily", "recordings",
                 "console_sessions", "knowledge_documents", "bars",
                 "app_records", "nodes", "ticket_counts_daily")
TICKET_TABLES = TENANT_TABLES[:5]  # the ones a finished ticket writes to


def test_a_member_never_sees_or_touches_another_tenants_work(platform: Platform) -> None:
    a, b = make_tenant(platform, "tenant-a"), make_tenant(platform, "tenant-b")
    tid = a.http.post("/v1/tickets", json={"bot": "echo", "input": {"secret": "a-only"}}).json()["id"]
    wait_done(a.http, tid)

    assert b.http.get(f"/v1/tickets/{tid}").status_code == 404
    assert b.http.get(f"/v1/tickets/{tid}", params={"wait": 0.2}).status_code == 404
    assert b.http.get(f"/v1/tickets/{tid}/events").status_code == 404
    assert b.http.post(f"/v1/tickets/{tid}/cancel").status_code == 404
    assert b.http.get("/v1/tickets").json()["items"] == []
    assert b.http.get("/v1/ledger").json()["items"] == []
    assert b.http.get("/v1/ledger", params={"ticket": tid}).json()["items"] == []
    assert b.http.get("/v1/ledger/summary", params={"by": "tenant"}).json()["rows"] == []
    # Same idempotency key in two tenants: two different tickets, no conflict.
    body = {"bot": "echo", "input": 1, "idempotency_key": "k"}
    assert a.http.post("/v1/tickets", json=body).json()["id"] != b.http.post("/v1/tickets", json=body).json()["id"]
    assert [t["id"] for t in a.http.get("/v1/tickets").json()["items"]][-1] == tid


def _api_connection(platform: Platform) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(platform.engines.api_url)


def test_the_api_role_sees_only_the_tenant_of_its_transaction(platform: Platform) -> None:
    a, b = make_tenant(platform, "tenant-a"), make_tenant(platform, "tenant-b")
    for client in (a, b):
        wait_done(client.http, client.http.post("/v1/tickets", json={"bot": "echo", "input": 1}).json()["id"])

    with _api_connection(platform) as conn:
        for table in TENANT_TABLES:
            # No tenant: nothing, except the built-in workflow definitions every tenant shares.
            shared = " WHERE tenant_id IS NOT NULL" if table == "workflow_definitions" else ""
            assert conn.execute(f"SELECT count(*) FROM {table}{shared}").fetchone() == (0,), table
        conn.rollback()
        with conn.transaction():
            conn.execute("SELECT set_config('oshal.tenant_id', %s, true)", (a.tenant_id,))
            tenants = conn.execute("SELECT DISTINCT tenant_id::text FROM tickets").fetchall()
            assert tenants == [(a.tenant_id,)]
            for table in TICKET_TABLES:
                rows = conn.execute(f"SELECT DISTINCT tenant_id::text FROM {table}").fetchall()
                assert rows == [(a.tenant_id,)], table
            # Writing into another tenant is refused by the policy's WITH CHECK.
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute("INSERT INTO tickets (id, tenant_id, bot, status, input) "
                             "VALUES (%s, %s, 'echo', 'in_progress', '{}')", (uuid.uuid4(), b.tenant_id))
            # Updating another tenant's rows silently matches nothing.
            changed = conn.execute("UPDATE tickets SET error = 'x' WHERE tenant_id = %s", (b.tenant_id,))
            assert changed.rowcount == 0


def test_the_api_role_has_no_privilege_to_escape(platform: Platform) -> None:
    with _api_connection(platform) as conn:
        role = conn.execute("SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles "
                            "WHERE rolname = current_user").fetchone()
        assert role == (False, False, False, False)
        owned = conn.execute("SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
                             "WHERE r.rolname = %s", (API_ROLE,)).fetchone()
        assert owned == (0,)
        for statement in ("DELETE FROM tickets", "TRUNCATE ledger", "ALTER TABLE tickets DISABLE ROW LEVEL SECURITY",
                          "SET row_security = off; SELECT 1 FROM tickets", "SELECT * FROM api_keys WHERE false",
                          "INSERT INTO bots (name, harness, provider, model, replicas, concurrency, manifest) "
                          "VALUES ('x','d','d','d',1,1,'{}')"):
            conn.rollback()
            if statement.startswith("SELECT * FROM api_keys"):
                assert conn.execute(statement).fetchall() == []  # allowed, but RLS hides everything
                continue
            with pytest.raises(psycopg.Error):
                conn.execute(statement)


def test_every_tenant_table_has_rls_enabled_and_forced(platform: Platform) -> None:
    with platform.superuser() as conn:
        rows = dict(conn.execute(
            "SELECT relname, relrowsecurity AND relforcerowsecurity FROM pg_class "
            "WHERE relname = ANY(%s) AND relkind IN ('r', 'p')", (list(TENANT_TABLES),)).fetchall())
        # a partitioned table's partitions hold its rows: each must force RLS too (they are reached by name too)
        partitions = dict(conn.execute(
            "SELECT c.relname, c.relrowsecurity AND c.relforcerowsecurity FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent::regclass::text = ANY(%s)",
            (list(TENANT_TABLES),)).fetchall())
        with_tenant_column = {r[0] for r in conn.execute(
            "SELECT c.table_name FROM information_schema.columns c JOIN information_schema.tables t "
            "USING (table_schema, table_name) WHERE c.column_name = 'tenant_id' AND c.table_schema = 'public' "
            "AND t.table_type = 'BASE TABLE'").fetchall()}
        views = conn.execute("SELECT relname, reloptions FROM pg_class WHERE relkind = 'v' "
                             "AND relnamespace = 'public'::regnamespace").fetchall()
    assert rows == dict.fromkeys(TENANT_TABLES, True)
    assert "bars_default" in partitions and partitions == dict.fromkeys(partitions, True)
    assert with_tenant_column == set(TENANT_TABLES) | set(partitions)
    # A view over tenant tables must apply the caller's RLS, not its owner's.
    assert sorted(views) == [("ledger_totals", ["security_invoker=true"]), ("ticket_view", ["security_invoker=true"])]
