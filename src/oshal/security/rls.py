"""Row-level security that proves itself: coverage from the catalog, and a cross-tenant canary per runtime role.

The canary plants rows for a throw-away tenant (as the owner), then, connected as each runtime role, checks
that (1) with no tenant set, no tenant row is visible; (2) as another tenant, no row of any other tenant is
visible and none can be written into the canary tenant; and (3) as the canary tenant, its own rows ARE visible,
so the check can see a leak when there is one. The canary's rows are removed afterwards.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from oshal.audit.seal import seal_problems
from oshal.security import definers
from oshal.security.roles import RUNTIME_ROLES, flags_of, grants_of, privilege_problems, unexpected_grants
from oshal.store.migrate import API_ROLE

# Tables that hold tenant data: every table with a tenant_id column. ``tenants`` itself is the registry of
# tenants (names only) and is read across tenants by operators; it is not tenant data.
_TENANT_TABLES_SQL = """
SELECT c.relname AS name, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced,
       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
   AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                 AND NOT a.attisdropped)
 ORDER BY c.relname
"""


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    checked: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": self.problems, "checked": self.checked}


async def tenant_tables(conn: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]]:
    cur = await conn.execute(_TENANT_TABLES_SQL)
    names = [d.name for d in cur.description or ()]
    return [r if isinstance(r, dict) else dict(zip(names, r, strict=True)) for r in await cur.fetchall()]


def coverage_problems(tables: list[dict[str, Any]]) -> list[str]:
    problems = []
    for t in tables:
        if not t["enabled"]:
            problems.append(f"table {t['name']} holds tenant data without row-level security")
        elif not t["forced"]:
            problems.append(f"table {t['name']} has row-level security but not FORCE (its owner bypasses it)")
        elif not t["policies"]:
            problems.append(f"table {t['name']} has row-level security but no policy")
    return problems


async def verify(owner_url: str, role_urls: dict[str, str]) -> Report:
    """The whole proof: catalog coverage, role attributes, grants, and the canary as every runtime role."""
    report = Report()
    async with await psycopg.AsyncConnection.connect(owner_url, autocommit=True, row_factory=dict_row) as owner:
        tables = await tenant_tables(owner)
        report.problems += coverage_problems(tables)
        report.checked["tenant_tables"] = [t["name"] for t in tables]
        for role in RUNTIME_ROLES:
            report.problems += privilege_problems(role, await flags_of(owner, role))
            report.problems += [f"role {role} holds an unexpected grant: {g}"
                                for g in unexpected_grants(role, await grants_of(owner, role))]
        found = await definers.in_catalog(owner)
        report.problems += definers.catalog_problems(found)
        report.checked["definers"] = [row["signature"] for row in found]
        sealing = await seal_problems(owner)
        report.problems += [f"audit log: {p}" for p in sealing]
        report.checked["audit_sealed"] = not sealing
        canary = await _plant(owner)
        try:
            await _probe_definers(role_urls.get(API_ROLE), canary, report)
            for role in RUNTIME_ROLES:
                url = role_urls.get(role)
                if url is None:
                    report.problems.append(f"no connection details for role {role}: cannot run its canary")
                    continue
                try:
                    report.checked[role] = await _probe(url, [t["name"] for t in tables], canary, report.problems)
                except psycopg.OperationalError as e:
                    report.problems.append(f"cannot connect as {role} to run its canary: {str(e).strip()[:200]}")
        finally:
            await _remove(owner, canary)
    return report


_CANARY_KEY_DIGEST = b"\x00" * 32  # no real key's SHA-256; the definer probe presents it as the canary key's


@dataclass(frozen=True)
class _Canary:
    tenant: uuid.UUID
    ticket: uuid.UUID
    key: uuid.UUID

    @property
    def key_prefix(self) -> str:
        return f"canary{self.key.hex[:10]}"


async def _plant(owner: psycopg.AsyncConnection[Any]) -> _Canary:
    canary = _Canary(uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    async with owner.transaction():
        await owner.execute("SELECT set_config('oshal.tenant_id', %s, true)", (str(canary.tenant),))
        await owner.execute("INSERT INTO tenants (id, name) VALUES (%s, %s)",
                            (canary.tenant, f"rls-canary-{canary.tenant.hex[:12]}"))
        await owner.execute("INSERT INTO api_keys (id, tenant_id, prefix, hash, role, name) "
                            "VALUES (%s, %s, %s, %s, 'member', 'rls canary')",
                            (canary.key, canary.tenant, canary.key_prefix, _CANARY_KEY_DIGEST))
        # a console session whose token digest is the key's: the session check's probe presents it
        await owner.execute("INSERT INTO console_sessions (digest, tenant_id, key_id, expires_at) "
                            "VALUES (%s, %s, %s, now() + interval '1 hour')",
                            (_CANARY_KEY_DIGEST, canary.tenant, canary.key))
        await owner.execute("INSERT INTO tickets (id, tenant_id, bot, status, input) VALUES "
                            "(%s, %s, 'echo', 'cancelled', '{\"canary\": true}')", (canary.ticket, canary.tenant))
        await owner.execute("INSERT INTO ledger (call_id, tenant_id, ticket_id, phase_id, attempt, bot, provider, "
                            "model, input_tokens, output_tokens, cost_micros, price_source) "
                            "VALUES (%s, %s, %s, %s, 1, 'echo', 'canary', 'canary', 1, 1, 1, 'unpriced')",
                            (f"canary:{canary.ticket}", canary.tenant, canary.ticket, uuid.uuid4()))
    return canary


async def _probe_definers(api_url: str | None, canary: _Canary, report: Report) -> None:
    if api_url is None:
        return  # reported with the canary: no connection details for the API role
    bait = definers.Bait(canary.tenant, canary.key_prefix, _CANARY_KEY_DIGEST)
    try:
        problems, calls = await definers.probe_problems(api_url, bait)
    except psycopg.OperationalError as e:
        report.problems.append(f"cannot connect as {API_ROLE} to probe the definer functions: {str(e).strip()[:200]}")
        return
    report.problems += problems
    report.checked["definer_probe_calls"] = calls


async def _remove(owner: psycopg.AsyncConnection[Any], canary: _Canary) -> None:
    async with owner.transaction():
        await owner.execute("SELECT set_config('oshal.tenant_id', %s, true)", (str(canary.tenant),))
        await owner.execute("DELETE FROM ledger WHERE tenant_id = %s", (canary.tenant,))
        await owner.execute("DELETE FROM tickets WHERE tenant_id = %s", (canary.tenant,))
        await owner.execute("DELETE FROM api_keys WHERE tenant_id = %s", (canary.tenant,))
        await owner.execute("DELETE FROM tenants WHERE id = %s", (canary.tenant,))


async def _probe(url: str, tables: list[str], canary: _Canary, problems: list[str]) -> dict[str, Any]:
    """Run the canary's checks connected as one runtime role; every failure is appended to ``problems``."""
    readable: list[str] = []
    seen_own = 0
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        role = str((await (await conn.execute("SELECT current_user")).fetchone() or ("?",))[0])
        stranger = uuid.uuid4()
        for table in tables:
            name = sql.Identifier(table)
            try:
                async with conn.transaction():
                    anonymous = await _count(conn, sql.SQL("SELECT count(*) FROM {} WHERE tenant_id IS NOT NULL")
                                             .format(name))
            except psycopg.errors.InsufficientPrivilege:
                continue  # this role cannot read the table at all: nothing to leak
            readable.append(table)
            if anonymous:
                problems.append(f"{role}: {anonymous} rows of {table} are visible without a tenant")
            async with conn.transaction():
                await conn.execute("SELECT set_config('oshal.tenant_id', %s, true)", (str(stranger),))
                foreign = await _count(conn, sql.SQL(
                    "SELECT count(*) FROM {} WHERE tenant_id IS NOT NULL AND tenant_id <> %s").format(name),
                    (stranger,))
            if foreign:
                problems.append(f"{role}: {foreign} rows of other tenants in {table} are visible to a tenant")
            async with conn.transaction():
                await conn.execute("SELECT set_config('oshal.tenant_id', %s, true)", (str(canary.tenant),))
                seen_own += await _count(conn, sql.SQL("SELECT count(*) FROM {} WHERE tenant_id = %s").format(name),
                                         (canary.tenant,))
        await _probe_writes(conn, role, canary, stranger, problems)
    if "tickets" in readable and seen_own == 0:
        problems.append(f"{role}: the canary tenant cannot see its own rows, so this check proves nothing")
    return {"readable_tables": readable, "canary_rows_seen_by_owner_tenant": seen_own}


async def _probe_writes(conn: psycopg.AsyncConnection[Any], role: str, canary: _Canary, stranger: uuid.UUID,
                        problems: list[str]) -> None:
    """As another tenant: updating the canary's ticket touches nothing; inserting into its tenant is refused."""
    attempts = [
        ("update", "UPDATE tickets SET error = 'rls canary' WHERE id = %s", (canary.ticket,)),
        ("insert", "INSERT INTO tickets (id, tenant_id, bot, status, input) VALUES (%s, %s, 'echo', 'cancelled', "
                   "'{}')", (uuid.uuid4(), canary.tenant)),
    ]
    for kind, statement, params in attempts:
        try:
            async with conn.transaction():
                await conn.execute("SELECT set_config('oshal.tenant_id', %s, true)", (str(stranger),))
                cur = await conn.execute(statement, params)
                changed = cur.rowcount
                raise _Rollback(changed)
        except _Rollback as done:
            if done.changed:
                problems.append(f"{role}: could {kind} a row of another tenant in tickets")
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.CheckViolation):
            pass  # refused: RLS's WITH CHECK, or no grant at all


class _Rollback(Exception):
    def __init__(self, changed: int) -> None:
        super().__init__(changed)
        self.changed = changed


async def _count(conn: psycopg.AsyncConnection[Any], query: sql.Composed, params: tuple[Any, ...] = ()) -> int:
    row = await (await conn.execute(query, params)).fetchone()
    return int(row[0]) if row else 0
