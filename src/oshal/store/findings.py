"""Security findings, the scans' runs, and the tickets findings are filed as (the system tenant's transactions).

A finding is one row per fingerprint; ``evidence`` arrives as JSON text. The Security Center (``oshal.security``)
decides what to file, reopen or close; these functions only read and write the rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from oshal.store.db import Conn

_INSERT = (
    "INSERT INTO security_findings (fingerprint, tenant_id, scan, check_id, severity, title, subject, "
    "remediation, evidence, status, triage) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'open', 'new') "
    "RETURNING *")

# -- findings ---------------------------------------------------------------------------------------------------


async def lock_of_scan(conn: Conn, scan: str) -> list[dict[str, Any]]:
    """Every finding ``scan`` reported so far, locked until the transaction ends."""
    cur = await conn.execute("SELECT * FROM security_findings WHERE scan = %s FOR UPDATE", (scan,))
    return await cur.fetchall()


async def insert(conn: Conn, tenant: UUID, *, fingerprint: str, scan: str, check: str, severity: str, title: str,
                 subject: str, remediation: str, evidence_json: str) -> dict[str, Any]:
    """A new open, untriaged finding."""
    cur = await conn.execute(_INSERT, (fingerprint, tenant, scan, check, severity, title, subject, remediation,
                                       evidence_json))
    row = await cur.fetchone()
    assert row is not None
    return row


async def seen_again(conn: Conn, fingerprint: str, *, severity: str, title: str, remediation: str,
                     evidence_json: str, triage: str, reopened: bool) -> dict[str, Any]:
    """A scan reported a known finding again: it is open, with what the scan says now."""
    cur = await conn.execute(
        "UPDATE security_findings SET severity = %s, title = %s, remediation = %s, evidence = %s, status = 'open', "
        "triage = %s, last_seen = now(), seen_count = seen_count + 1, fixed_at = NULL, "
        "reopened = reopened + %s WHERE fingerprint = %s RETURNING *",
        (severity, title, remediation, evidence_json, triage, int(reopened), fingerprint))
    updated = await cur.fetchone()
    assert updated is not None
    return updated


async def mark_fixed(conn: Conn, fingerprint: str) -> None:
    await conn.execute("UPDATE security_findings SET status = 'fixed', fixed_at = now() WHERE fingerprint = %s",
                       (fingerprint,))


async def assess(conn: Conn, fingerprint: str, *, triage: str, until: dt.datetime | None, by: str,
                 assessment: str) -> dict[str, Any] | None:
    """An operator's triage of a finding; None when there is no such finding."""
    cur = await conn.execute(
        "UPDATE security_findings SET triage = %s, accepted_until = %s, assessed_by = %s, assessment = %s "
        "WHERE fingerprint = %s RETURNING *", (triage, until, by, assessment, fingerprint))
    return await cur.fetchone()


async def listing(conn: Conn, *, status: str | None, scan: str | None) -> list[dict[str, Any]]:
    """Findings (of one status and scan, when given), most recently seen first."""
    cur = await conn.execute(
        "SELECT * FROM security_findings WHERE (%(status)s::text IS NULL OR status = %(status)s) "
        "AND (%(scan)s::text IS NULL OR scan = %(scan)s) ORDER BY last_seen DESC",
        {"status": status, "scan": scan})
    return await cur.fetchall()


async def open_counts(conn: Conn) -> list[dict[str, Any]]:
    """Open findings counted per (scan, severity, triage), as ``n``."""
    cur = await conn.execute("SELECT scan, severity, triage, count(*) AS n FROM security_findings "
                             "WHERE status = 'open' GROUP BY scan, severity, triage")
    return await cur.fetchall()


# -- scan runs --------------------------------------------------------------------------------------------------


async def insert_run(conn: Conn, run_id: UUID, tenant: UUID, *, scan: str, started_at: dt.datetime, found: int,
                     opened: int, fixed: int, error: str | None) -> None:
    await conn.execute(
        "INSERT INTO security_scans (id, tenant_id, scan, started_at, found, opened, fixed, error) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (run_id, tenant, scan, started_at, found, opened, fixed, error))


async def last_runs(conn: Conn) -> list[dict[str, Any]]:
    """Each scan's latest run (scan, finished_at, found, opened, fixed, error)."""
    cur = await conn.execute("SELECT DISTINCT ON (scan) scan, finished_at, found, opened, fixed, error "
                             "FROM security_scans ORDER BY scan, finished_at DESC")
    return await cur.fetchall()


async def try_lock_scans(conn: Conn, key: int) -> bool:
    """Whether this transaction got the scans' lock (one replica scans at a time); it is released on commit."""
    cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS mine", (key,))
    row = await cur.fetchone()
    return bool(row and row["mine"])


# -- the tickets findings are filed as ----------------------------------------------------------------------------


async def file_ticket(conn: Conn, ticket: UUID, tenant: UUID, fingerprint: str, *, ticket_type: str, body_json: str,
                      reason: str) -> None:
    """The finding's ticket (escalated, for an operator; keyed by the fingerprint), linked to the finding."""
    await conn.execute(
        "INSERT INTO tickets (id, tenant_id, bot, type, status, input, status_reason, idempotency_key) "
        "VALUES (%s, %s, NULL, %s, 'escalated', %s, %s, %s)",
        (ticket, tenant, ticket_type, body_json, reason, f"security:{fingerprint}"))
    await conn.execute("UPDATE security_findings SET ticket_id = %s WHERE fingerprint = %s", (ticket, fingerprint))


async def move_ticket(conn: Conn, ticket: UUID, status: str, reason: str) -> None:
    """Move a finding's ticket to ``status`` (the timeline records ``reason``); finished when it is done."""
    await conn.execute("SELECT set_config('oshal.reason', %s, true)", (reason,))
    await conn.execute(
        "UPDATE tickets SET status = %s, status_reason = %s, finished_at = CASE WHEN %s = 'done' THEN now() END "
        "WHERE id = %s AND status <> %s", (status, reason, status, ticket, status))


async def recent_tickets(conn: Conn, limit: int) -> list[dict[str, Any]]:
    """The tenant's newest tickets' texts (id, input, result, error): what the secrets scan reads."""
    cur = await conn.execute("SELECT id, input, result, error FROM tickets ORDER BY id DESC LIMIT %s", (limit,))
    return await cur.fetchall()
