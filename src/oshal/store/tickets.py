"""Ticket, phase and attempt SQL. Every function runs inside a tenant transaction (RLS applies)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from oshal import jsontext
from oshal.store.db import Conn, Statement
from oshal.types import OPEN_PHASE_STATUSES, PhaseStatus

OPEN = tuple(s.value for s in OPEN_PHASE_STATUSES)


def _other_than(statuses: Sequence[str]) -> list[str]:
    """Phase lookups by id say "status <> ALL(others)" so the partial open-phase index stays out of the plan."""
    return [s.value for s in PhaseStatus if s not in statuses]


@dataclass(frozen=True, slots=True)
class NewTicket:
    id: UUID
    phase_id: UUID
    bot: str
    input_json: str
    idempotency_key: str | None
    request_hash: bytes | None


def insert_dispatched(tenant: UUID, by: UUID | None, rows: Sequence[NewTicket]) -> Statement:
    """Insert tickets with their first phase already marked dispatched; its rows are the ids actually inserted,
    each with the reason it was held back instead (``exhausted``: a budget above it has nothing left).

    Rows whose idempotency key already exists are skipped (the caller resolves them).
    """
    return ("SELECT id, exhausted FROM oshal_create_tickets(%s, %s, %s::uuid[], %s::uuid[], %s::text[], "
            "%s::text[], %s::text[], %s::bytea[])",
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


async def status_and_creator(conn: Conn, ticket_id: UUID) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT status, created_by FROM tickets WHERE id = %s", (ticket_id,))
    return await cur.fetchone()


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
    cur = await conn.execute(f"SELECT * FROM ticket_view{where} ORDER BY id DESC LIMIT %s", (*params, limit))  # nosec B608 - only constant SQL fragments are interpolated
    return await cur.fetchall()


async def set_status(conn: Conn, ticket_id: UUID, *, from_status: str, to_status: str, reason: str | None,
                     finished: bool = False, resume_status: str | None = None) -> bool:
    """Move one ticket if it is still in ``from_status`` (the trigger checks and records the transition)."""
    cur = await conn.execute(
        "UPDATE tickets SET status = %s, status_reason = %s, resume_status = %s, "
        "finished_at = CASE WHEN %s THEN now() ELSE NULL END "
        "WHERE id = %s AND status = %s RETURNING id",
        (to_status, reason, resume_status, finished, ticket_id, from_status))
    return await cur.fetchone() is not None


async def cancel_open_phases(conn: Conn, ticket_ids: Sequence[UUID]) -> None:
    await conn.execute("UPDATE phases SET status = 'cancelled', updated_at = now() "
                       "WHERE ticket_id = ANY(%s) AND status = ANY(%s)", (list(ticket_ids), list(OPEN)))


async def lock(conn: Conn, ticket_id: UUID) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT id, status, type, bot, parent_id, resume_status, status_reason, input FROM tickets "
        "WHERE id = %s FOR UPDATE",
        (ticket_id,))
    return await cur.fetchone()


async def children(conn: Conn, parent_id: UUID) -> list[dict[str, Any]]:
    cur = await conn.execute("SELECT id, status, result, error FROM tickets WHERE parent_id = %s ORDER BY id",
                             (parent_id,))
    return await cur.fetchall()


async def set_actor(conn: Conn, actor: str, reason: str | None) -> None:
    """Who (and why) the timeline records for the transitions of this transaction."""
    await conn.execute("SELECT set_config('oshal.actor', %s, true), set_config('oshal.reason', %s, true)",
                       (actor, reason or ""))


async def redispatch(conn: Conn, phase_ids: Sequence[UUID], *, from_status: Sequence[str]) -> list[dict[str, Any]]:
    """Bump the attempt of phases (still in ``from_status``) and mark them dispatched; returns envelopes' data.

    A ticket that had finished badly (an operator requeue) goes back to in_progress; one still in progress
    (a sweeper re-drive) keeps its state.
    """
    cur = await conn.execute(
        """
        WITH p AS (
            UPDATE phases SET status = 'dispatched', attempt = attempt + 1, dispatched_at = now(),
                              updated_at = now()
            WHERE id = ANY(%s) AND status <> ALL(%s)
            RETURNING id, ticket_id, bot, attempt, tenant_id, input
        ), t AS (
            UPDATE tickets SET status = 'in_progress', error = NULL, result = NULL, finished_at = NULL,
                               status_reason = NULL
            FROM p WHERE tickets.id = p.ticket_id AND tickets.status IN ('dead_letter', 'failed')
            RETURNING tickets.id
        )
        SELECT p.id AS phase_id, p.ticket_id, p.bot, p.attempt, p.tenant_id, coalesce(p.input, tk.input) AS input
        FROM p JOIN tickets tk ON tk.id = p.ticket_id
        """,
        (list(phase_ids), _other_than(from_status)),
    )
    return await cur.fetchall()


async def replay_source(conn: Conn, ticket_id: UUID) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT id, bot, type, input, status, parent_id, replay_of FROM tickets WHERE id = %s",
                             (ticket_id,))
    return await cur.fetchone()


async def queued_phases(conn: Conn, ticket_id: UUID) -> list[UUID]:
    cur = await conn.execute("SELECT id FROM phases WHERE ticket_id = %s AND status = 'queued' ORDER BY seq",
                             (ticket_id,))
    return [row["id"] for row in await cur.fetchall()]


async def undispatch(conn: Conn, phases: Sequence[tuple[UUID, int]]) -> int:
    """Dispatches that never reached a lane (a kill switch held them) go back to queued, their attempt unspent."""
    cur = await conn.execute(
        "UPDATE phases SET status = 'queued', attempt = phases.attempt - 1, dispatched_at = NULL, updated_at = now() "
        "FROM unnest(%s::uuid[], %s::int[]) AS h(id, attempt) "
        "WHERE phases.id = h.id AND phases.attempt = h.attempt AND phases.status = 'dispatched' RETURNING phases.id",
        ([p for p, _ in phases], [a for _, a in phases]))
    return len(await cur.fetchall())  # not cur.rowcount: inside a pipelined transaction it is not known yet


async def phase_of(conn: Conn, ticket_id: UUID) -> dict[str, Any] | None:
    """The ticket's latest phase."""
    cur = await conn.execute(
        "SELECT id, status, attempt FROM phases WHERE ticket_id = %s ORDER BY seq DESC LIMIT 1", (ticket_id,))
    return await cur.fetchone()


async def resend(conn: Conn, phase_ids: Sequence[UUID], stale_after_s: float) -> list[dict[str, Any]]:
    """Bump the attempt of dispatched phases that are still without progress; returns their envelopes' data.

    Re-checked here, in the same statement: a phase that a result finished, or that was dispatched again, since
    the sweeper looked is left alone.
    """
    cur = await conn.execute(
        """
        WITH p AS (
            UPDATE phases SET attempt = attempt + 1, dispatched_at = now(), updated_at = now()
            WHERE id = ANY(%s) AND status <> ALL(%s) AND updated_at < now() - make_interval(secs => %s)
            RETURNING id, ticket_id, bot, attempt, input
        )
        SELECT p.id AS phase_id, p.ticket_id, p.bot, p.attempt, coalesce(p.input, tk.input) AS input
        FROM p JOIN tickets tk ON tk.id = p.ticket_id
        """,
        (list(phase_ids), _other_than(["dispatched"]), stale_after_s),
    )
    return await cur.fetchall()


def dumps(value: Any) -> str:
    return jsontext.compact(value)


# The tenant's tickets per status: the daily counts of those below the roll-up cut-off (a row per day and status)
# plus a count of those from it on, an index-only range scan of the tenant's id index (which carries status). The
# cut-off is read in the same statement, so the two parts agree whenever the sweeper moves it; the one read just
# before bounds the range for the planner's estimate too (a cut-off only ever moves forward).
_COUNTS = """
SELECT status, sum(n)::bigint AS n FROM (
    SELECT status, n FROM ticket_counts_daily
    UNION ALL
    SELECT status, count(*) FROM tickets WHERE id >= %s AND id >= (SELECT tickets_below FROM rollup_cutoff WHERE id)
     GROUP BY status
) parts GROUP BY status HAVING sum(n) <> 0
"""


async def counts(conn: Conn) -> dict[str, int]:
    cur = await conn.execute("SELECT tickets_below FROM rollup_cutoff WHERE id")
    row = await cur.fetchone()
    assert row is not None
    cur = await conn.execute(_COUNTS, (row["tickets_below"],))
    return {str(row["status"]): int(row["n"]) for row in await cur.fetchall()}


async def finish_from_phase(conn: Conn, ticket_id: UUID) -> str | None:
    """Give an in-progress plain ticket the outcome its phase already reached (it finished while paused)."""
    cur = await conn.execute(
        """
        UPDATE tickets t SET status = p.status, result = a.output, error = a.error, finished_at = now()
        FROM phases p JOIN LATERAL (
            SELECT output, error FROM attempts WHERE attempts.phase_id = p.id
            ORDER BY (attempts.outcome = p.status) DESC, attempt DESC, deliveries DESC LIMIT 1
        ) a ON true
        WHERE t.id = %s AND t.status = 'in_progress' AND t.type IS NULL AND p.ticket_id = t.id
          AND p.seq = 0 AND p.status IN ('done', 'failed', 'dead_letter')
        RETURNING t.status
        """, (ticket_id,))
    row = await cur.fetchone()
    return None if row is None else str(row["status"])


async def type_counts(conn: Conn) -> list[dict[str, Any]]:
    """Typed (workflow) tickets per (type, status), as ``n``."""
    cur = await conn.execute("SELECT type, status, count(*) AS n FROM tickets WHERE type IS NOT NULL "
                             "GROUP BY type, status ORDER BY type, status")
    return await cur.fetchall()


# The spans of a plain ticket's route that the database timestamps: commit to lane, lane to bot, the bot's run
# (bot clock), result to collector commit. In milliseconds.
_SPANS = """
    extract(epoch FROM p.dispatched_at - t.created_at) * 1000 AS committed_to_lane,
    extract(epoch FROM a.started_at - p.dispatched_at) * 1000 AS lane_to_bot,
    extract(epoch FROM a.finished_at - a.started_at) * 1000 AS bot_run,
    extract(epoch FROM a.recorded_at - a.finished_at) * 1000 AS result_to_commit
  FROM attempts a JOIN phases p ON p.id = a.phase_id JOIN tickets t ON t.id = a.ticket_id
 WHERE t.type IS NULL AND a.outcome = 'done' AND p.dispatched_at IS NOT NULL AND a.started_at IS NOT NULL"""
SPANS = ("committed_to_lane", "lane_to_bot", "bot_run", "result_to_commit")


async def route_spans(conn: Conn, ticket_id: UUID) -> dict[str, float] | None:
    """One plain ticket's spans (its latest successful attempt); None if it has none (yet)."""
    cur = await conn.execute(f"SELECT {_SPANS} AND a.ticket_id = %s "  # nosec B608 - constant SQL only
                             "ORDER BY a.recorded_at DESC LIMIT 1", (ticket_id,))
    row = await cur.fetchone()
    return None if row is None else {span: float(row[span]) for span in SPANS}


async def recent_route_percentiles(conn: Conn, last: int = 1000) -> dict[str, tuple[float, float]]:
    """(p50, p99) of each span over the tenant's ``last`` successful plain-ticket attempts; empty without any."""
    percentiles = ", ".join(f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {s}) AS {s}_p50, "
                            f"percentile_cont(0.99) WITHIN GROUP (ORDER BY {s}) AS {s}_p99" for s in SPANS)
    cur = await conn.execute(f"SELECT count(*) AS n, {percentiles} FROM (SELECT {_SPANS} "  # nosec B608
                             "ORDER BY a.recorded_at DESC LIMIT %s) recent", (last,))
    row = await cur.fetchone()
    if row is None or not row["n"]:
        return {}
    return {s: (float(row[f"{s}_p50"]), float(row[f"{s}_p99"])) for s in SPANS}


async def activity(conn: Conn, since_id: UUID) -> list[dict[str, Any]]:
    """Tickets created from ``since_id`` on (ids are time-ordered), per status and the UTC hour each finished (None:
    not finished): what the console's overview counts and charts. One index-only range scan of the tenant's id index
    (it carries status and finished_at). date_bin from a UTC origin rather than date_trunc: the hours are UTC hours
    (the chart's) whatever the session's time zone, and it costs less per row."""
    cur = await conn.execute(
        "SELECT status, date_bin('1 hour', finished_at, '2000-01-01 00:00:00+00') AS hour, count(*)::int AS n "
        "FROM tickets WHERE id >= %s GROUP BY 1, 2", (since_id,))
    return await cur.fetchall()


async def awaiting_approval(conn: Conn, limit: int) -> list[dict[str, Any]]:
    """Tickets waiting at an approval gate, oldest first (a partial index holds only these)."""
    cur = await conn.execute(
        "SELECT id, bot, type, status_reason, parent_id, created_at FROM tickets WHERE status = 'approval_required' "
        "ORDER BY id LIMIT %s", (limit,))
    return await cur.fetchall()


async def recent_per_bot(conn: Conn, per_bot: int, scanned: int = 2000) -> list[dict[str, Any]]:
    """The newest ``per_bot`` tickets of each bot among the tenant's newest ``scanned`` (a bounded read)."""
    cur = await conn.execute(
        "SELECT id, bot, status, created_at, finished_at FROM ("
        " SELECT *, row_number() OVER (PARTITION BY bot ORDER BY id DESC) AS rn FROM ("
        "  SELECT id, bot, status, created_at, finished_at FROM tickets ORDER BY id DESC LIMIT %s) newest"
        ") ranked WHERE rn <= %s ORDER BY bot, id DESC", (scanned, per_bot))
    return await cur.fetchall()


async def newest_of_types(conn: Conn, types: Sequence[str], limit: int) -> list[dict[str, Any]]:
    """The tenant's newest tickets of these ticket types (an application's work), newest first."""
    cur = await conn.execute(
        "SELECT id, type, status, phase, status_reason, created_at, finished_at FROM tickets "
        "WHERE type = ANY(%s) ORDER BY id DESC LIMIT %s", (list(types), limit))
    return await cur.fetchall()
