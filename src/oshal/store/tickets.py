"""Ticket, phase and attempt SQL. Every function runs inside a tenant transaction (RLS applies)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from oshal.store.db import Conn, Statement

OPEN = ("queued", "dispatched")
_STATUSES = ("queued", "dispatched", "done", "failed", "dead_letter", "cancelled")


def _other_than(statuses: Sequence[str]) -> list[str]:
    """Phase lookups by id say "status <> ALL(others)" so the partial open-phase index stays out of the plan."""
    return [s for s in _STATUSES if s not in statuses]


@dataclass(frozen=True, slots=True)
class NewTicket:
    id: UUID
    phase_id: UUID
    bot: str
    input_json: str
    idempotency_key: str | None
    request_hash: bytes | None


def insert_dispatched(tenant: UUID, by: UUID | None, rows: Sequence[NewTicket]) -> Statement:
    """Insert tickets with their first phase already marked dispatched; its rows are the ids actually inserted.

    Rows whose idempotency key already exists are skipped (the caller resolves them).
    """
    return ("SELECT id FROM oshal_create_tickets(%s, %s, %s::uuid[], %s::uuid[], %s::text[], %s::text[], "
            "%s::text[], %s::bytea[]) AS id",
            (tenant, by, [r.id for r in rows], [r.phase_id for r in rows], [r.bot for r in rows],
             [r.input_json for r in rows], [r.idempotency_key for r in rows], [r.request_hash for r in rows]))


async def by_idempotency_keys(conn: Conn, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    cur = await conn.execute(
        "SELECT id, idempotency_key, request_hash, status FROM tickets WHERE idempotency_key = ANY(%s)",
        (list(keys),),
    )
    return {str(row["idempotency_key"]): row for row in await cur.fetchall()}


def get(tenant: UUID, ticket_id: UUID) -> Statement:
    return ("SELECT * FROM oshal_ticket(%s, %s)", (tenant, ticket_id))


async def status(conn: Conn, ticket_id: UUID) -> str | None:
    cur = await conn.execute("SELECT status FROM tickets WHERE id = %s", (ticket_id,))
    row = await cur.fetchone()
    return None if row is None else str(row["status"])


async def page(conn: Conn, *, status: str | None, bot: str | None, before: UUID | None,
               limit: int) -> list[dict[str, Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if status:
        clauses.append("status = %s")
        params.append(status)
    if bot:
        clauses.append("bot = %s")
        params.append(bot)
    if before:
        clauses.append("id < %s")
        params.append(before)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    cur = await conn.execute(f"SELECT * FROM ticket_view{where} ORDER BY id DESC LIMIT %s", (*params, limit))
    return await cur.fetchall()


async def cancel(conn: Conn, ticket_id: UUID) -> bool:
    cur = await conn.execute(
        "UPDATE tickets SET status = 'cancelled', finished_at = now() "
        "WHERE id = %s AND status = ANY(%s) RETURNING id", (ticket_id, list(OPEN)))
    if await cur.fetchone() is None:
        return False
    await conn.execute("UPDATE phases SET status = 'cancelled', updated_at = now() "
                       "WHERE ticket_id = %s AND status = ANY(%s)", (ticket_id, list(OPEN)))
    return True


async def redispatch(conn: Conn, phase_ids: Sequence[UUID], *, from_status: Sequence[str]) -> list[dict[str, Any]]:
    """Bump the attempt of phases (still in ``from_status``) and mark them dispatched; returns envelopes' data."""
    cur = await conn.execute(
        """
        WITH p AS (
            UPDATE phases SET status = 'dispatched', attempt = attempt + 1, dispatched_at = now(),
                              updated_at = now()
            WHERE id = ANY(%s) AND status <> ALL(%s)
            RETURNING id, ticket_id, bot, attempt, tenant_id
        ), t AS (
            UPDATE tickets SET status = 'dispatched', error = NULL, result = NULL, finished_at = NULL
            FROM p WHERE tickets.id = p.ticket_id
            RETURNING tickets.id, tickets.input
        )
        SELECT p.id AS phase_id, p.ticket_id, p.bot, p.attempt, p.tenant_id, t.input
        FROM p JOIN t ON t.id = p.ticket_id
        """,
        (list(phase_ids), _other_than(from_status)),
    )
    return await cur.fetchall()


async def phase_of(conn: Conn, ticket_id: UUID) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT id, status, attempt FROM phases WHERE ticket_id = %s AND seq = 0",
                             (ticket_id,))
    return await cur.fetchone()


async def dead_letter_phases(conn: Conn, phase_ids: Sequence[UUID], error: str) -> list[UUID]:
    cur = await conn.execute(
        """
        WITH p AS (
            UPDATE phases SET status = 'dead_letter', updated_at = now()
            WHERE id = ANY(%s) AND status <> ALL(%s) RETURNING ticket_id
        )
        UPDATE tickets SET status = 'dead_letter', error = %s, finished_at = now()
        FROM p WHERE tickets.id = p.ticket_id RETURNING tickets.id
        """,
        (list(phase_ids), _other_than(OPEN), error),
    )
    return [row["id"] for row in await cur.fetchall()]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


async def counts(conn: Conn) -> dict[str, int]:
    cur = await conn.execute("SELECT status, count(*) AS n FROM tickets GROUP BY status")
    return {str(row["status"]): int(row["n"]) for row in await cur.fetchall()}
