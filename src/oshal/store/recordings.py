"""Recordings of model and tool calls at their boundary, keyed by (ticket, phase place, kind, call place)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from oshal import jsontext
from oshal.store.db import Conn


@dataclass(frozen=True, slots=True)
class Recording:
    tenant_id: UUID
    ticket_id: UUID
    phase_id: UUID
    kind: str  # model | tool
    seq: int
    request: Any
    response: Any
    usage: Any
    started_at: datetime
    duration_ms: float


async def save(conn: Conn, recordings: Sequence[Recording]) -> None:
    """Store recordings (a later attempt of the same call replaces an earlier one). The phase's place and step
    come from the phase, so a replay of a run finds its calls by place, whatever its phase ids."""
    latest = {(r.ticket_id, r.phase_id, r.kind, r.seq): r for r in recordings}  # one row per key per statement
    recordings = list(latest.values())
    if not recordings:
        return
    await conn.execute(
        "INSERT INTO recordings (tenant_id, ticket_id, phase_seq, step, kind, seq, request, response, usage, "
        "started_at, duration_ms) SELECT u.tenant, u.ticket, coalesce(p.seq, 0), coalesce(p.step, ''), u.kind, "
        "u.seq, u.request::json, u.response::json, u.usage::json, u.started, u.duration "
        "FROM unnest(%s::uuid[], %s::uuid[], %s::uuid[], %s::text[], %s::int[], %s::text[], %s::text[], %s::text[], "
        "%s::timestamptz[], %s::float8[]) AS u(tenant, ticket, phase, kind, seq, request, response, usage, started, "
        "duration) LEFT JOIN phases p ON p.id = u.phase "
        "ON CONFLICT (ticket_id, phase_seq, kind, seq) DO UPDATE SET request = EXCLUDED.request, "
        "response = EXCLUDED.response, usage = EXCLUDED.usage, started_at = EXCLUDED.started_at, "
        "duration_ms = EXCLUDED.duration_ms",
        ([r.tenant_id for r in recordings], [r.ticket_id for r in recordings], [r.phase_id for r in recordings],
         [r.kind for r in recordings], [r.seq for r in recordings], [_json(r.request) for r in recordings],
         [_json(r.response) for r in recordings], [None if r.usage is None else _json(r.usage) for r in recordings],
         [r.started_at for r in recordings], [r.duration_ms for r in recordings]))


async def replay_context(conn: Conn, ticket: UUID, phase: UUID, bot: str) -> dict[str, Any] | None:
    """The ticket's status, whether it replays another ticket (and which), the place and step of ``phase``, and
    the kill switch that stops ``bot``, if one does (read here, so every replica sees a switch at once)."""
    cur = await conn.execute(
        "SELECT t.status, t.replay_of, t.type, coalesce(p.seq, 0) AS phase_seq, coalesce(p.step, '') AS step, "
        "(SELECT format('kill switch %%s is engaged: %%s', k.scope, k.reason) FROM kill_switches k "
        " WHERE k.scope IN ('global', 'bot:' || %s) ORDER BY k.scope LIMIT 1) AS killed "
        "FROM tickets t LEFT JOIN phases p ON p.id = %s WHERE t.id = %s", (bot, phase, ticket))
    return await cur.fetchone()


async def find(conn: Conn, ticket: UUID, phase_seq: int, kind: str, seq: int) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT * FROM recordings WHERE ticket_id = %s AND phase_seq = %s AND kind = %s "
                             "AND seq = %s", (ticket, phase_seq, kind, seq))
    return await cur.fetchone()


async def of_ticket(conn: Conn, ticket: UUID) -> list[dict[str, Any]]:
    cur = await conn.execute("SELECT * FROM recordings WHERE ticket_id = %s ORDER BY phase_seq, kind, seq",
                             (ticket,))
    return await cur.fetchall()


def _json(value: Any) -> str:
    return jsontext.compact(value, default=str)


async def ticket_result(conn: Conn, ticket: UUID) -> Any:
    """A ticket's result (None when it has none or does not exist): what a replay is compared by."""
    cur = await conn.execute("SELECT result FROM tickets WHERE id = %s", (ticket,))
    row = await cur.fetchone()
    return row["result"] if row else None
