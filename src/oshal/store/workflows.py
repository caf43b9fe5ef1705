"""Workflow definitions, runs, their phases and child tickets, timelines and artifacts (tenant transactions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from oshal.jsontext import compact
from oshal.store.db import Conn, OwnerConn


async def definition(conn: Conn, name: str, version: int | None) -> dict[str, Any] | None:
    """A tenant's own definition wins over a built-in of the same name; no version means the newest."""
    cur = await conn.execute(
        "SELECT id, tenant_id, name, version, document, digest, created_at FROM workflow_definitions "
        "WHERE name = %s AND (%s::int IS NULL OR version = %s) "
        "ORDER BY (tenant_id IS NULL), version DESC LIMIT 1", (name, version, version))
    return await cur.fetchone()


async def definitions(conn: Conn) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT DISTINCT ON (name) name, version, tenant_id IS NULL AS builtin, digest, created_at, "
        "document->>'title' AS title, document->>'description' AS description, "
        "coalesce(document->>'application', '') AS application "
        "FROM workflow_definitions ORDER BY name, (tenant_id IS NULL), version DESC")
    return await cur.fetchall()


async def versions(conn: Conn, name: str) -> list[dict[str, Any]]:
    cur = await conn.execute("SELECT version, digest, tenant_id IS NULL AS builtin, created_at "
                             "FROM workflow_definitions WHERE name = %s ORDER BY version", (name,))
    return await cur.fetchall()


def builtin_digest(conn: OwnerConn, name: str, version: int) -> str | None:
    """The digest of the built-in definition registered under this name and version (None: not registered)."""
    row = conn.execute(
        "SELECT digest FROM workflow_definitions WHERE tenant_id IS NULL AND name = %s AND version = %s",
        (name, version)).fetchone()
    return None if row is None else str(row[0])


def insert_builtin(conn: OwnerConn, ident: UUID, name: str, version: int, document_json: str, digest: str) -> None:
    """Register a built-in definition (tenant-less, on the owner connection start-up uses)."""
    conn.execute(
        "INSERT INTO workflow_definitions (id, tenant_id, name, version, document, digest) "
        "VALUES (%s, NULL, %s, %s, %s::jsonb, %s)", (ident, name, version, document_json, digest))


async def insert_definition(conn: Conn, ident: UUID, tenant: UUID | None, name: str, version: int,
                            document: dict[str, Any], digest: str, by: UUID | None) -> None:
    await conn.execute(
        "INSERT INTO workflow_definitions (id, tenant_id, name, version, document, digest, created_by) "
        "VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s)", (ident, tenant, name, version, compact(document), digest, by))


async def insert_ticket(conn: Conn, tenant: UUID, ident: UUID, *, type_: str | None, bot: str | None,
                        input_json: str, status: str, by: UUID | None, parent: UUID | None = None,
                        key: str | None = None, request_hash: bytes | None = None,
                        replay_of: UUID | None = None) -> bool:
    cur = await conn.execute(
        "INSERT INTO tickets (id, tenant_id, bot, type, status, input, created_by, parent_id, idempotency_key, "
        "request_hash, replay_of) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s) "
        "ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING id",
        (ident, tenant, bot, type_, status, input_json, by, parent, key, request_hash, replay_of))
    return await cur.fetchone() is not None


async def replay_origin(conn: Conn, ticket: UUID) -> dict[str, Any] | None:
    """The ticket this one replays (``replay_of``, None if it is no replay) and how many children it ``made``."""
    cur = await conn.execute("SELECT replay_of, (SELECT count(*) FROM tickets c WHERE c.parent_id = t.id) AS made "
                             "FROM tickets t WHERE t.id = %s", (ticket,))
    return await cur.fetchone()


async def child_ids(conn: Conn, parent: UUID) -> list[UUID]:
    """A ticket's children, in creation order (ids are time-ordered)."""
    cur = await conn.execute("SELECT id FROM tickets WHERE parent_id = %s ORDER BY id", (parent,))
    return [r["id"] for r in await cur.fetchall()]


async def insert_run(conn: Conn, tenant: UUID, ticket: UUID, workflow: str, version: int,
                     state: dict[str, Any]) -> None:
    await conn.execute("INSERT INTO workflow_runs (ticket_id, tenant_id, workflow, version, state) "
                       "VALUES (%s, %s, %s, %s, %s::jsonb)", (ticket, tenant, workflow, version, compact(state)))


async def lock_ticket_and_run(conn: Conn, ticket: UUID) -> dict[str, Any] | None:
    """A workflow ticket and its run, both locked, in one round trip (None: no such ticket with a run)."""
    cur = await conn.execute(
        "SELECT t.status, t.input, r.workflow, r.version, r.state, r.finished FROM tickets t "
        "JOIN workflow_runs r ON r.ticket_id = t.id WHERE t.id = %s FOR UPDATE OF t, r", (ticket,))
    return await cur.fetchone()


async def lock_run(conn: Conn, ticket: UUID) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT workflow, version, state, finished FROM workflow_runs WHERE ticket_id = %s "
                             "FOR UPDATE", (ticket,))
    return await cur.fetchone()


async def run(conn: Conn, ticket: UUID) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT workflow, version, state, finished, created_at, updated_at "
                             "FROM workflow_runs WHERE ticket_id = %s", (ticket,))
    return await cur.fetchone()


async def save_run(conn: Conn, ticket: UUID, state: dict[str, Any], finished: bool) -> None:
    await conn.execute("UPDATE workflow_runs SET state = %s::jsonb, finished = %s, updated_at = now() "
                       "WHERE ticket_id = %s", (compact(state), finished, ticket))


async def next_seq(conn: Conn, ticket: UUID) -> int:
    cur = await conn.execute("SELECT coalesce(max(seq), -1) + 1 AS n FROM phases WHERE ticket_id = %s", (ticket,))
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def insert_phases(conn: Conn, tenant: UUID, ticket: UUID,
                        rows: Sequence[tuple[UUID, int, str, str, str | None]]) -> None:
    """(phase id, seq, step, bot, input json): committed as dispatched; the append follows the commit."""
    await conn.execute(
        "INSERT INTO phases (id, tenant_id, ticket_id, seq, bot, status, attempt, dispatched_at, updated_at, "
        "step, input) SELECT u.id, %s, %s, u.seq, u.bot, 'dispatched', 1, now(), now(), u.step, u.input::jsonb "
        "FROM unnest(%s::uuid[], %s::int[], %s::text[], %s::text[], %s::text[]) AS u(id, seq, step, bot, input)",
        (tenant, ticket, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
         [r[4] for r in rows]))


async def phase_facts(conn: Conn, phase_ids: Sequence[str]) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT p.id, p.status, a.output, a.error FROM phases p LEFT JOIN LATERAL ("
        # one row per execution: the one that decided the phase's status (a duplicate run may have failed after it)
        " SELECT output, error FROM attempts WHERE attempts.phase_id = p.id"
        " ORDER BY (attempts.outcome = p.status) DESC, attempt DESC, deliveries DESC LIMIT 1"
        ") a ON true WHERE p.id = ANY(%s::uuid[])", (list(phase_ids),))
    return await cur.fetchall()


async def child_facts(conn: Conn, child_ids: Sequence[str]) -> list[dict[str, Any]]:
    cur = await conn.execute("SELECT id, status, result AS output, error FROM tickets WHERE id = ANY(%s::uuid[])",
                             (list(child_ids),))
    return await cur.fetchall()


async def checkpoint(conn: Conn, ticket: UUID, *, state: dict[str, Any], run_finished: bool, status: str,
                     phase: str | None, reason: str | None, result: Any, error: str | None) -> None:
    """The run's checkpoint and the ticket's state in one statement (one round trip per step)."""
    await conn.execute(
        "WITH r AS (UPDATE workflow_runs SET state = %s::jsonb, finished = %s, updated_at = now() "
        "WHERE ticket_id = %s) "
        "UPDATE tickets SET status = %s, phase = %s, status_reason = %s, result = %s::jsonb, error = %s, "
        "finished_at = CASE WHEN %s THEN now() ELSE finished_at END WHERE id = %s",
        (compact(state), run_finished, ticket, status, phase, reason, None if result is None else compact(result),
         error, run_finished, ticket))


async def timeline(conn: Conn, ticket: UUID) -> list[dict[str, Any]]:
    """The ticket's creation (from the ticket row: its first state, time and creator), then every transition."""
    cur = await conn.execute(
        "SELECT t.created_at AS at, NULL::text AS from_status, "
        "coalesce((SELECT e.from_status FROM ticket_events e WHERE e.ticket_id = t.id ORDER BY e.at, e.id LIMIT 1), "
        "t.status) AS to_status, NULL::text AS phase, coalesce('key:' || t.created_by::text, 'platform') AS actor, "
        "'created' AS reason FROM tickets t WHERE t.id = %s "
        "UNION ALL (SELECT at, from_status, to_status, phase, actor, reason FROM ticket_events "
        "WHERE ticket_id = %s ORDER BY at, id)", (ticket, ticket))
    return await cur.fetchall()


async def phases_of(conn: Conn, ticket: UUID) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT p.seq, p.step, p.bot, p.status, p.attempt, p.dispatched_at, p.updated_at FROM phases p "
        "WHERE p.ticket_id = %s ORDER BY p.seq", (ticket,))
    return await cur.fetchall()


async def insert_artifact(conn: Conn, tenant: UUID, ident: UUID, ticket: UUID, name: str, key: str, size: int,
                          sha256: str, content_type: str, by: str) -> dict[str, Any]:
    cur = await conn.execute(
        "INSERT INTO artifacts (id, tenant_id, ticket_id, name, object_key, size, sha256, content_type, created_by) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (ticket_id, name) DO NOTHING "
        "RETURNING id, name, size, sha256, content_type, created_at",
        (ident, tenant, ticket, name, key, size, sha256, content_type, by))
    return await cur.fetchone() or {}


async def artifacts(conn: Conn, ticket: UUID) -> list[dict[str, Any]]:
    cur = await conn.execute("SELECT id, name, object_key, size, sha256, content_type, created_by, created_at "
                             "FROM artifacts WHERE ticket_id = %s ORDER BY created_at, name", (ticket,))
    return await cur.fetchall()
