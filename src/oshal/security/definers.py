"""SECURITY DEFINER functions held to their list (:data:`oshal.security.roles.DEFINERS`).

A definer function runs as its owner and so bypasses row-level security. The catalog check finds every one in the
database and reports those nobody listed (with why it must bypass RLS), those some role may execute that the list
does not name, and listed ones that are gone. The probe then calls each row-returning one as the API role, in a
transaction with no tenant and in one of a stranger tenant, and reports any that answers with other tenants' rows.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from oshal.security.roles import DEFINERS, Scope

# Every definer in every schema (an attacker's would not be in ``public``), and which roles may execute it. Superusers
# and the function's owner always may; predefined pg_* roles own nothing here.
_DEFINERS_SQL = """
SELECT p.proname::text AS name, p.oid::regprocedure::text AS signature, pg_get_function_result(p.oid) AS result,
       array(SELECT r.rolname::text FROM pg_roles r
              WHERE NOT r.rolsuper AND r.oid <> p.proowner AND r.rolname NOT LIKE 'pg\\_%'
                AND has_function_privilege(r.oid, p.oid, 'EXECUTE') ORDER BY 1) AS executors
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
 ORDER BY 2
"""

_SET_TENANT = "SELECT set_config('oshal.tenant_id', %s, true)"


async def in_catalog(conn: psycopg.AsyncConnection[Any]) -> list[dict[str, Any]]:
    cur = await conn.execute(_DEFINERS_SQL)
    names = [d.name for d in cur.description or ()]
    return [r if isinstance(r, dict) else dict(zip(names, r, strict=True)) for r in await cur.fetchall()]


def catalog_problems(found: list[dict[str, Any]]) -> list[str]:
    problems = []
    for row in found:
        listed = DEFINERS.get(row["name"])
        signature = row["signature"]
        if listed is None:
            problems.append(f"SECURITY DEFINER function {signature} is not listed in security/roles.py DEFINERS "
                            "(list it with why it must bypass row-level security, or drop it)")
            continue
        executors = set(row["executors"])
        problems += [f"SECURITY DEFINER function {signature} is executable by {role}, which DEFINERS does not "
                     "list for it" for role in sorted(executors - listed.roles)]
        problems += [f"DEFINERS lists {role} for {signature}, which it cannot execute"
                     for role in sorted(listed.roles - executors)]
        if listed.scope is Scope.METADATA and "tenant_id" in row["result"]:
            problems.append(f"SECURITY DEFINER function {signature} is listed as returning no tenant data but "
                            f"returns {row['result']}")
    present = {row["name"] for row in found}
    problems += [f"DEFINERS lists {name}, but the database has no such SECURITY DEFINER function"
                 for name in sorted(set(DEFINERS) - present)]
    return problems


@dataclass(frozen=True, slots=True)
class Bait:
    """A tenant the probe looks for (the RLS canary), with one API key whose digest the probe knows."""

    tenant: uuid.UUID
    key_prefix: str
    key_digest: bytes


async def probe_problems(api_url: str, bait: Bait) -> tuple[list[str], int]:
    """Call each row-returning definer as the API role where it must not answer with other tenants' rows.

    Returns the problems and how many calls were made.
    """
    problems: list[str] = []
    calls = 0
    async with await psycopg.AsyncConnection.connect(api_url, autocommit=True) as conn:
        stranger = uuid.uuid4()
        for definer in DEFINERS.values():
            if definer.probe is None:
                continue
            for session, argument, expect in _cases(definer.scope, bait, stranger):
                calls += 1
                outcome = await _call(conn, definer.probe, session, argument, bait)
                problem = _judge(definer.name, definer.scope, session, argument, expect, outcome, bait)
                if problem:
                    problems.append(problem)
    return problems, calls


def _cases(scope: Scope, bait: Bait, stranger: uuid.UUID) -> list[tuple[uuid.UUID | None, Any, str]]:
    """(the transaction's tenant, the call's tenant or digest, what must happen)."""
    if scope is Scope.KEY:
        return [(None, hashlib.sha256(os.urandom(32)).digest(), "nothing"),
                (None, bait.key_digest, "own")]  # positive control: the key's own row, and only it
    if scope is Scope.PLATFORM:
        return [(None, None, "refused"), (stranger, None, "refused")]
    return [(None, bait.tenant, "refused"), (None, None, "refused"), (stranger, bait.tenant, "refused"),
            (stranger, None, "refused"), (stranger, stranger, "own"), (bait.tenant, bait.tenant, "own")]


async def _call(conn: psycopg.AsyncConnection[Any], probe: str, session: uuid.UUID | None, argument: Any,
                bait: Bait) -> list[dict[str, Any]] | psycopg.Error:
    statement = probe.replace("{tenant}", "%(tenant)s::uuid")
    params = {"tenant": str(argument) if isinstance(argument, uuid.UUID) else None, "prefix": bait.key_prefix,
              "digest": argument if isinstance(argument, bytes) else b""}
    try:
        async with conn.transaction(force_rollback=True):  # a probe changes nothing, whatever it calls
            if session is not None:
                await conn.execute(_SET_TENANT, (str(session),))
            cur = await conn.execute(statement.encode(), params)
            names = [d.name for d in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]
    except psycopg.Error as refused:  # judged below: only a refusal for lack of privilege is the expected one
        return refused


def _judge(name: str, scope: Scope, session: uuid.UUID | None, argument: Any, expect: str,
           outcome: list[dict[str, Any]] | psycopg.Error, bait: Bait) -> str | None:
    where = f"as the API role with {'no tenant' if session is None else 'tenant ' + str(session)} set"
    if isinstance(argument, uuid.UUID):
        where += f", asked for tenant {argument}"
    elif argument is None and scope is Scope.TENANT:
        where += ", asked for every tenant"
    if isinstance(outcome, psycopg.Error):
        if expect == "refused" and isinstance(outcome, psycopg.errors.InsufficientPrivilege):
            return None
        return f"{name} failed ({where}): {str(outcome).strip()[:200]}"
    if expect == "refused":
        return f"{name} answered ({len(outcome)} rows) where it must refuse ({where})"
    if scope is Scope.KEY:
        own = [r for r in outcome if r.get("tenant_id") == bait.tenant]
        if expect == "nothing" and outcome:
            return f"{name} returned {len(outcome)} rows for a digest that matches no key ({where})"
        if expect == "own" and (len(own) != 1 or len(outcome) != 1):
            return f"{name} did not return exactly the presented key's row ({where}), so this check proves nothing"
        return None
    owner = session if isinstance(argument, uuid.UUID) else None
    foreign = [r for r in outcome if r.get("tenant_id") != owner]
    if foreign:
        return f"{name} returned {len(foreign)} rows of other tenants ({where})"
    return None
