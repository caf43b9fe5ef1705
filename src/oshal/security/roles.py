"""Least privilege, as data: every grant each runtime role may hold, and the catalog queries that read them.

A migration that grants something new must add it here too; the role tests and ``oshal security verify`` fail
on any grant a runtime role holds that is not listed (directly or through PUBLIC).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import psycopg

from oshal.store.migrate import API_ROLE, REPORT_ROLE, REPORT_TABLES

RUNTIME_ROLES = (API_ROLE, REPORT_ROLE)


@dataclass(frozen=True, slots=True, order=True)
class Grant:
    kind: str  # database | schema | table | column | sequence | function | membership
    target: str
    privilege: str

    def __str__(self) -> str:
        return f"{self.privilege} on {self.kind} {self.target}"


def _table(name: str, *privileges: str) -> set[Grant]:
    return {Grant("table", name, p) for p in privileges}


def _columns(table: str, privilege: str, *columns: str) -> set[Grant]:
    return {Grant("column", f"{table}.{c}", privilege) for c in columns}


def _functions(*signatures: str) -> set[Grant]:
    return {Grant("function", s, "EXECUTE") for s in signatures}


_API: set[Grant] = {
    Grant("database", "oshal", "CONNECT"), Grant("schema", "public", "USAGE"),
    *_table("tenants", "SELECT", "INSERT"),
    *_table("api_keys", "SELECT", "INSERT"), *_columns("api_keys", "UPDATE", "revoked_at"),
    *_table("console_sessions", "SELECT", "INSERT", "DELETE"),
    *_table("bots", "SELECT"), *_table("prices", "SELECT", "INSERT"),
    *_table("tickets", "SELECT", "INSERT"),
    *_columns("tickets", "UPDATE", "status", "result", "error", "finished_at", "phase", "status_reason",
              "resume_status"),
    *_table("phases", "SELECT", "INSERT"),
    *_columns("phases", "UPDATE", "status", "attempt", "dispatched_at", "updated_at"),
    *_table("attempts", "SELECT", "INSERT"), *_table("ledger", "SELECT", "INSERT"),
    *_columns("ledger", "UPDATE", "over_reservation_micros", "settled_late"),
    *_table("ticket_view", "SELECT"),
    *_table("connectors", "SELECT", "INSERT", "UPDATE"),
    *_table("connections", "SELECT", "INSERT", "UPDATE"), *_table("tool_policies", "SELECT", "INSERT", "UPDATE"),
    *_table("approvals", "SELECT", "INSERT"),
    *_columns("approvals", "UPDATE", "status", "decided_by", "decided_at", "reason"),
    *_table("grants", "SELECT", "INSERT"), *_columns("grants", "UPDATE", "redeemed_at", "outcome"),
    *_table("data_keys", "SELECT", "INSERT"), *_columns("data_keys", "UPDATE", "wrapped", "kek_id", "active"),
    *_table("credentials", "SELECT", "INSERT", "DELETE"),
    *_columns("credentials", "UPDATE", "ciphertext", "data_key_id", "version", "updated_at"),
    *_table("ticket_transitions", "SELECT"),
    *_table("ticket_events", "SELECT", "INSERT"), *_table("workflow_definitions", "SELECT", "INSERT"),
    *_table("schedule_fires", "SELECT", "INSERT"), *_table("artifacts", "SELECT", "INSERT"),
    *_table("workflow_runs", "SELECT", "INSERT"), *_columns("workflow_runs", "UPDATE", "state", "finished",
                                                            "updated_at"),
    *_table("schedules", "SELECT", "INSERT"),
    *_columns("schedules", "UPDATE", "cron", "timezone", "input", "policy", "enabled", "last_tick", "next_tick"),
    *_table("audit_log", "SELECT"), *_table("kill_switches", "SELECT", "INSERT", "DELETE"),
    *_table("security_findings", "SELECT", "INSERT", "UPDATE"), *_table("security_scans", "SELECT", "INSERT"),
    *_table("ledger_totals", "SELECT"), *_table("ledger_daily", "SELECT"),
    *_table("ticket_counts_daily", "SELECT"), *_table("rollup_cutoff", "SELECT"),
    *_table("budgets", "SELECT", "INSERT", "DELETE"),
    *_columns("budgets", "UPDATE", "limit_micros", "soft_micros", "updated_at", "created_by", "overrun_at",
              "overrun_micros", "overrun_reason"),
    *_table("budget_usage", "SELECT", "INSERT"),
    *_columns("budget_usage", "UPDATE", "spent", "reserved", "soft_notified"),
    *_table("reservations", "SELECT", "INSERT"),
    *_columns("reservations", "UPDATE", "status", "actual", "settled_at", "expires_at"),
    *_table("recordings", "SELECT", "INSERT"),
    *_columns("recordings", "UPDATE", "request", "response", "usage", "started_at", "duration_ms"),
    *_table("knowledge_documents", "SELECT", "INSERT", "DELETE"),
    *_columns("knowledge_documents", "UPDATE", "title", "body", "tags", "source", "updated_by", "updated_at"),
    *_table("fleet_controls", "SELECT", "INSERT"),
    *_columns("fleet_controls", "UPDATE", "replicas", "restart_seq", "reason", "updated_by", "updated_at"),
    *_table("bars", "SELECT", "INSERT"),
    *_columns("bars", "UPDATE", "open", "high", "low", "close", "volume", "source", "updated_at"),
    *_table("app_records", "SELECT", "INSERT"),
    *_table("nodes", "SELECT", "INSERT"),
    *_columns("nodes", "UPDATE", "joined_at", "joined_from", "hostname", "token_digest", "revoked_at", "revoked_by",
              "last_seen_at"),
}

_REPORT: set[Grant] = {
    Grant("database", "oshal", "CONNECT"), Grant("schema", "public", "USAGE"),
    *(g for t in REPORT_TABLES for g in _table(t, "SELECT")),
}

# Functions are matched by name (their argument lists are long and checked by the migrations themselves).
API_FUNCTIONS = frozenset({
    "oshal_key_check", "oshal_stale_dispatches", "oshal_ticket", "oshal_create_tickets", "oshal_record_results",
    "oshal_stalled_runs", "oshal_due_schedules", "oshal_tool_call", "oshal_audit", "oshal_audit_verify",
    "oshal_audit_head", "oshal_audit_entries", "oshal_audit_anchor", "oshal_audit_anchors", "oshal_audit_prune",
    "oshal_audit_hashes", "oshal_audit_prune_point", "oshal_keys_used", "oshal_key_inventory", "oshal_audit_counts",
    "oshal_held_phases", "oshal_reserve", "oshal_expire_reservations", "oshal_rollup_ledger", "oshal_window",
    "oshal_budget_resume", "oshal_budget_overruns", "oshal_session_check", "oshal_session_sweep",
    "oshal_knowledge_words", "oshal_advance_ticket_counts", "oshal_advance_ledger_daily",
})



class Scope(StrEnum):
    """How a definer function limits what it returns, since it bypasses row-level security."""

    KEY = "key"  # the row of the key whose digest the caller presents; nothing else
    PLATFORM = "platform"  # rows of every tenant, only in the platform's scope (the system tenant set)
    TENANT = "tenant"  # takes the tenant explicitly: that tenant's rows (every tenant's: the platform's scope only)
    METADATA = "metadata"  # rows without tenant data: the audit chain's sequence numbers, hashes and MACs
    NONE = "none"  # returns no rows (a write, or a count)


@dataclass(frozen=True, slots=True)
class Definer:
    name: str
    why: str  # why it must bypass row-level security
    scope: Scope
    roles: frozenset[str] = frozenset({API_ROLE})  # who may execute it (besides its owner)
    # For KEY, PLATFORM and TENANT: the arguments of a call that would return other tenants' rows were the scope
    # check missing. ``{tenant}`` is replaced by the tenant argument; the key check gets ``%(prefix)s`` and
    # ``%(digest)s``.
    probe_args: str | None = None

    @property
    def probe(self) -> str | None:
        """The probing query: every row the function returns for ``probe_args``."""
        return None if self.probe_args is None else f"SELECT * FROM {self.name}({self.probe_args})"

    @property
    def returns_rows(self) -> bool:
        return self.scope is not Scope.NONE


def _definers(*items: Definer) -> dict[str, Definer]:
    return {d.name: d for d in items}


# Every SECURITY DEFINER function in the schema, one by one. `oshal security verify` reports one that is not listed
# here, one executable by a role not listed for it, and a row-returning one that answers a transaction with no
# tenant (or an ordinary tenant) with other tenants' rows.
DEFINERS: dict[str, Definer] = _definers(
    Definer("oshal_key_check", "authenticates a request before its tenant is known (api_keys is tenant data); "
            "returns the key's id, tenant, role and validity only to a caller that presents the key's digest, so "
            "the stored hash never leaves the database", Scope.KEY,
            probe_args="%(prefix)s, %(digest)s"),
    Definer("oshal_stale_dispatches", "the sweeper finds dispatched phases without progress in every tenant, "
            "checks Redis for their copies, then re-sends the lost ones inside their own tenant", Scope.PLATFORM,
            probe_args="interval '0', '-infinity', '00000000-0000-0000-0000-000000000000', 1000"),
    Definer("oshal_stalled_runs", "the sweeper finds workflow runs of every tenant that lost their advance",
            Scope.PLATFORM, probe_args="interval '0', 1000"),
    Definer("oshal_due_schedules", "the scheduler finds due schedules of every tenant, then fires each inside its "
            "own tenant", Scope.PLATFORM, probe_args="1000"),
    Definer("oshal_held_phases", "when a kill switch is released, the queued phases it held in every tenant are "
            "dispatched", Scope.PLATFORM, probe_args="1000"),
    Definer("oshal_budget_resume", "the collector and sweeper resume budget-paused tickets of every tenant that fit "
            "their budgets' room again, holding that room for each", Scope.PLATFORM,
            probe_args="NULL, 1000, 60"),
    Definer("oshal_budget_overruns", "the sweeper finds budgets of every tenant marked overrun, for the spend scan",
            Scope.PLATFORM, probe_args="'-infinity'"),
    Definer("oshal_key_inventory", "the Security Center's access scan reviews the keys of every tenant (unused, "
            "never expiring, operators who never log in)", Scope.TENANT,
            probe_args="{tenant}"),
    Definer("oshal_audit_counts", "the runtime scan counts refused logins and denied tool calls across the "
            "platform; the API role reads the audit log only per tenant", Scope.PLATFORM,
            probe_args="'-infinity'"),
    Definer("oshal_audit_entries", "the platform operator's audit export reads the one chain across tenants",
            Scope.TENANT, probe_args="{tenant}, 0, 1000"),
    Definer("oshal_audit", "appends entries of any tenant to the one hash chain, serialised on its head; the API "
            "role cannot write audit_log or audit_chain itself, so it cannot forge or reorder entries",
            Scope.NONE),
    Definer("oshal_audit_verify", "recomputes every link of the chain, across tenants; returns sequence numbers "
            "and what is wrong with them", Scope.METADATA),
    Definer("oshal_audit_head", "the chain's head (sequence number, hash) and size, to anchor and verify it",
            Scope.METADATA),
    Definer("oshal_audit_anchor", "stores an anchor of the chain's head; the API role cannot write audit_anchors",
            Scope.NONE),
    Definer("oshal_audit_anchors", "the stored anchors (sequence number, hash, MAC), to verify them",
            Scope.METADATA),
    Definer("oshal_audit_hashes", "the stored hashes at the anchored sequence numbers, to verify the anchors",
            Scope.METADATA),
    Definer("oshal_audit_prune", "retention: deletes entries older than the retention (never under 30 days) "
            "through the append-only trigger's one exception, and records the prune in the chain", Scope.NONE),
    Definer("oshal_audit_prune_point", "the last sequence number retention would remove, recorded in the anchor "
            "file before pruning so verify tells retention from a deleted prefix", Scope.METADATA),
    Definer("oshal_session_check", "resolves a console request's session cookie before its tenant is known "
            "(sessions are tenant data); answers only a caller that presents the session token's digest, with that "
            "session's key, tenant and role", Scope.KEY, probe_args="%(digest)s"),
    Definer("oshal_session_sweep", "removes expired console sessions of every tenant; returns how many",
            Scope.NONE),
    Definer("oshal_keys_used", "records when keys of any tenant last authenticated (the access scan's input); "
            "the API role may only revoke keys", Scope.NONE),
    Definer("oshal_expire_reservations", "the sweeper releases budget reservations of every tenant that no result "
            "settled; returns how many", Scope.NONE),
    Definer("oshal_rollup_ledger", "folds old ledger rows of every tenant into daily totals; returns how many",
            Scope.NONE),
    Definer("oshal_advance_ledger_daily", "the sweeper sums a closed day's ledger rows of every tenant into the "
            "daily totals and moves the cut-off; returns the cut-off", Scope.NONE),
    Definer("oshal_advance_ticket_counts", "the sweeper counts a closed day's tickets of every tenant into the "
            "daily counts and moves the cut-off; returns the cut-off", Scope.NONE),
    Definer("oshal_ticket_counts_adjust", "a trigger: a ticket below the cut-off changing status moves its count in "
            "the daily counts, which the API role may only read", Scope.NONE, roles=frozenset()),
    Definer("oshal_ledger_backdated", "a trigger: a ledger row dated before the cut-off is added to its day's "
            "total, which the API role may only read", Scope.NONE, roles=frozenset()),
)

EXPECTED: dict[str, frozenset[Grant]] = {
    API_ROLE: frozenset(_API | {Grant("function", f, "EXECUTE") for f in API_FUNCTIONS}),
    REPORT_ROLE: frozenset(_REPORT),
}

# Grants held by the role itself or by PUBLIC (which every role inherits), in the current database.
_GRANTS_SQL = """
WITH r AS (SELECT oid FROM pg_roles WHERE rolname = %(role)s),
who AS (SELECT oid FROM r UNION ALL SELECT 0)
SELECT 'database' AS kind, d.datname AS target, a.privilege_type AS privilege
  FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = current_database() AND a.grantee IN (SELECT oid FROM who)
UNION ALL
SELECT 'schema', n.nspname, a.privilege_type
  FROM pg_namespace n, aclexplode(n.nspacl) a
 WHERE n.nspname NOT LIKE 'pg\\_%%' AND n.nspname <> 'information_schema' AND a.grantee IN (SELECT oid FROM who)
UNION ALL
SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END, c.relname, a.privilege_type
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
 WHERE n.nspname = 'public' AND a.grantee IN (SELECT oid FROM who)
UNION ALL
SELECT 'column', c.relname || '.' || att.attname, a.privilege_type
  FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace,
       aclexplode(att.attacl) a
 WHERE n.nspname = 'public' AND NOT att.attisdropped AND a.grantee IN (SELECT oid FROM who)
UNION ALL
SELECT 'function', p.proname, a.privilege_type
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,
       aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
 WHERE n.nspname = 'public' AND a.grantee IN (SELECT oid FROM who)
UNION ALL
SELECT 'membership', g.rolname, 'MEMBER'
  FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = (SELECT oid FROM r)
"""

_FLAGS_SQL = """
SELECT r.rolname, r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb, r.rolreplication,
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relowner = r.oid AND n.nspname = 'public') AS owned_relations,
       (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE p.proowner = r.oid AND n.nspname = 'public') AS owned_functions,
       (SELECT count(*) FROM pg_namespace n WHERE n.nspowner = r.oid) AS owned_schemas
  FROM pg_roles r WHERE r.rolname = %(role)s
"""

AnyConn = psycopg.AsyncConnection[Any]


async def grants_of(conn: AnyConn, role: str) -> set[Grant]:
    cur = await conn.execute(_GRANTS_SQL, {"role": role})
    return {Grant(str(k), str(t), str(p)) for k, t, p in _tuples(await cur.fetchall())}


async def flags_of(conn: AnyConn, role: str) -> dict[str, Any] | None:
    cur = await conn.execute(_FLAGS_SQL, {"role": role})
    rows = _dicts(cur.description, await cur.fetchall())
    return rows[0] if rows else None


def unexpected_grants(role: str, actual: set[Grant]) -> list[Grant]:
    return sorted(actual - EXPECTED.get(role, frozenset()))


def privilege_problems(role: str, flags: dict[str, Any] | None) -> list[str]:
    """Why ``role`` is not a least-privilege runtime role (it exists, is no superuser, bypasses nothing, owns
    nothing)."""
    if flags is None:
        return [f"role {role} does not exist"]
    problems = []
    for flag, meaning in (("rolsuper", "is a superuser"), ("rolbypassrls", "has BYPASSRLS"),
                          ("rolcreaterole", "may create roles"), ("rolcreatedb", "may create databases"),
                          ("rolreplication", "has REPLICATION")):
        if flags[flag]:
            problems.append(f"role {role} {meaning}")
    owned = int(flags["owned_relations"]) + int(flags["owned_functions"]) + int(flags["owned_schemas"])
    if owned:
        problems.append(f"role {role} owns {owned} objects (owners bypass grants and, unless forced, RLS)")
    return problems


def _tuples(rows: list[Any]) -> list[tuple[Any, ...]]:
    return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in rows]


def _dicts(description: Any, rows: list[Any]) -> list[dict[str, Any]]:
    names = [d.name for d in description or ()]
    return [r if isinstance(r, dict) else dict(zip(names, r, strict=True)) for r in rows]
