"""SQL for the integration layer: catalog rows, tool policies, approvals and grants."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from oshal.store.db import Conn, Statement


async def connector(conn: Conn, connector_id: str) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT * FROM connectors WHERE id = %s", (connector_id,))
    return await cur.fetchone()


async def connector_head(conn: Conn, connector_id: str) -> dict[str, Any] | None:
    """State and digest without the manifest document (callers keep parsed manifests by digest)."""
    cur = await conn.execute("SELECT id, state, digest, quarantine_reason FROM connectors WHERE id = %s",
                             (connector_id,))
    return await cur.fetchone()


async def connector_manifest(conn: Conn, connector_id: str) -> Any:
    cur = await conn.execute("SELECT manifest FROM connectors WHERE id = %s", (connector_id,))
    row = await cur.fetchone()
    return None if row is None else row["manifest"]


async def record_call(conn: Conn, grant_id: UUID, connector_id: str, outcome: str, *, ok: bool,
                      error: str | None) -> None:
    """The grant's outcome and the connection's health, in one statement."""
    await conn.execute(
        "WITH g AS (UPDATE grants SET outcome = %s WHERE id = %s) "
        "UPDATE connections SET last_success_at = CASE WHEN %s THEN now() ELSE last_success_at END, "
        "last_error_at = CASE WHEN %s THEN last_error_at ELSE now() END, "
        "last_error = CASE WHEN %s THEN last_error ELSE %s END WHERE connector_id = %s",
        (outcome[:500], grant_id, ok, ok, ok, (error or "")[:500], connector_id))


async def connectors(conn: Conn) -> list[dict[str, Any]]:
    cur = await conn.execute("SELECT * FROM connectors ORDER BY id")
    return await cur.fetchall()


async def upsert_connector(conn: Conn, *, connector_id: str, version: str, publisher: str, category: str,
                           title: str, manifest: dict[str, Any], digest: str, state: str,
                           signature: dict[str, Any] | None, quarantine_reason: str | None) -> dict[str, Any]:
    cur = await conn.execute(
        "INSERT INTO connectors (id, version, publisher, category, title, manifest, digest, state, signature, "
        "quarantine_reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
        "version = EXCLUDED.version, publisher = EXCLUDED.publisher, category = EXCLUDED.category, "
        "title = EXCLUDED.title, manifest = EXCLUDED.manifest, digest = EXCLUDED.digest, state = EXCLUDED.state, "
        "signature = EXCLUDED.signature, quarantine_reason = EXCLUDED.quarantine_reason, updated_at = now() "
        "RETURNING *",
        (connector_id, version, publisher, category, title, Jsonb(manifest), digest, state,
         Jsonb(signature) if signature is not None else None, quarantine_reason))
    row = await cur.fetchone()
    assert row is not None
    return row


async def quarantine_enabled(conn: Conn, connector_id: str, digest: str, reason: str) -> bool:
    """Quarantine the connector if it is still enabled at ``digest`` (not re-imported or re-signed meanwhile)."""
    cur = await conn.execute(
        "UPDATE connectors SET state = 'quarantined', quarantine_reason = %s, updated_at = now() "
        "WHERE id = %s AND state = 'enabled' AND digest = %s RETURNING id", (reason, connector_id, digest))
    return await cur.fetchone() is not None  # in pipeline mode rowcount is known only once results are read


async def set_disabled(conn: Conn, connector_id: str, reason: str) -> bool:
    """Disable the connector if it is enabled."""
    cur = await conn.execute(
        "UPDATE connectors SET state = 'disabled', disabled_reason = %s, updated_at = now() "
        "WHERE id = %s AND state = 'enabled' RETURNING id", (reason, connector_id))
    return await cur.fetchone() is not None


async def set_enabled(conn: Conn, connector_id: str, *, quarantine_reason: str | None) -> bool:
    """A disabled connector back to enabled, or to quarantined with the reason its signature no longer holds."""
    cur = await conn.execute(
        "UPDATE connectors SET state = CASE WHEN %s::text IS NULL THEN 'enabled' ELSE 'quarantined' END, "
        "quarantine_reason = %s, disabled_reason = NULL, updated_at = now() WHERE id = %s AND state = 'disabled' "
        "RETURNING id", (quarantine_reason, quarantine_reason, connector_id))
    return await cur.fetchone() is not None


async def connection(conn: Conn, connector_id: str) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT * FROM connections WHERE connector_id = %s", (connector_id,))
    return await cur.fetchone()


async def connections(conn: Conn) -> list[dict[str, Any]]:
    """Each connection with its credential health: expiry, last success, last error, and a verdict."""
    cur = await conn.execute(
        "SELECT c.*, (SELECT count(*) FROM credentials k WHERE k.name = c.secret_name AND k.user_id IS NOT NULL) "
        "AS user_credentials, CASE "
        " WHEN c.expires_at IS NOT NULL AND c.expires_at <= now() THEN 'expired'"
        " WHEN c.expires_at IS NOT NULL AND c.expires_at <= now() + interval '7 days' THEN 'expiring'"
        " WHEN c.last_error_at IS NOT NULL AND (c.last_success_at IS NULL OR c.last_error_at > c.last_success_at)"
        " THEN 'failing'"
        " WHEN c.last_success_at IS NULL THEN 'unused' ELSE 'ok' END AS health "
        "FROM connections c ORDER BY connector_id")
    return await cur.fetchall()


async def upsert_connection(conn: Conn, tenant_id: UUID, connector_id: str, secret_name: str,
                            client_id: str | None, expires_at: dt.datetime | None = None) -> dict[str, Any]:
    cur = await conn.execute(
        "INSERT INTO connections (tenant_id, connector_id, secret_name, client_id, expires_at) "
        "VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (tenant_id, connector_id) DO UPDATE SET secret_name = EXCLUDED.secret_name, "
        "client_id = EXCLUDED.client_id, expires_at = EXCLUDED.expires_at RETURNING *",
        (tenant_id, connector_id, secret_name, client_id, expires_at))
    row = await cur.fetchone()
    assert row is not None
    return row


async def call_context(conn: Conn, ticket_id: UUID, connector_id: str, bot: str,
                       operation: str) -> dict[str, Any] | None:
    """Everything a tool call checks before its grant, in one round trip: the ticket's state and creator, the
    connector's state and digest, the bot's policy for the operation, and the tenant's connection."""
    cur = await conn.execute(
        "SELECT t.status AS ticket_status, t.created_by, c.id, c.state, c.digest, c.quarantine_reason, "
        "coalesce(p.mode, 'off') AS mode, n.connector_id AS connection_connector, n.secret_name, n.client_id, "
        "n.expires_at FROM tickets t "
        "LEFT JOIN connectors c ON c.id = %s "
        "LEFT JOIN tool_policies p ON p.connector_id = c.id AND p.bot = %s AND p.operation = %s "
        "LEFT JOIN connections n ON n.connector_id = c.id WHERE t.id = %s",
        (connector_id, bot, operation, ticket_id))
    return await cur.fetchone()


def tool_call(tenant: UUID, ticket: UUID, bot: str, connector_id: str, operation: str, digest: str,
              grant_id: UUID, arguments_hash: str, expires_at: dt.datetime) -> Statement:
    """The one-statement tool-call path (see migration 008): grant issued and redeemed, credential row read."""
    return ("SELECT * FROM oshal_tool_call(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (tenant, ticket, bot, connector_id, operation, digest, grant_id, arguments_hash, expires_at))


async def record_calls(conn: Conn, rows: list[tuple[UUID, str, str, bool, str | None]]) -> None:
    """Outcomes of many calls (grant id, connector, outcome, ok, error) and the connections' health."""
    await conn.execute(
        "WITH u AS (SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::bool[], %s::text[]) "
        "AS u(grant_id, connector_id, outcome, ok, error)), "
        "g AS (UPDATE grants SET outcome = u.outcome FROM u WHERE grants.id = u.grant_id), "
        "h AS (SELECT connector_id, bool_or(ok) AS any_ok, bool_and(ok) AS all_ok, "
        "      (array_agg(error ORDER BY ok) FILTER (WHERE NOT ok))[1] AS error FROM u GROUP BY connector_id) "
        "UPDATE connections SET last_success_at = CASE WHEN h.any_ok THEN now() ELSE last_success_at END, "
        "last_error_at = CASE WHEN h.all_ok THEN last_error_at ELSE now() END, "
        "last_error = CASE WHEN h.all_ok THEN last_error ELSE h.error END "
        "FROM h WHERE connections.connector_id = h.connector_id",
        ([r[0] for r in rows], [r[1] for r in rows], [r[2][:500] for r in rows], [r[3] for r in rows],
         [(r[4] or "")[:500] or None for r in rows]))


async def connector_head_and_policy(conn: Conn, connector_id: str, bot: str, operation: str) -> dict[str, Any] | None:
    """:func:`connector_head` plus the bot's policy for the operation (``off`` when none), in one round trip."""
    cur = await conn.execute(
        "SELECT c.id, c.state, c.digest, c.quarantine_reason, coalesce(p.mode, 'off') AS mode FROM connectors c "
        "LEFT JOIN tool_policies p ON p.connector_id = c.id AND p.bot = %s AND p.operation = %s WHERE c.id = %s",
        (bot, operation, connector_id))
    return await cur.fetchone()


async def set_policy(conn: Conn, tenant_id: UUID, bot: str, connector_id: str, operation: str, mode: str,
                     by: UUID | None) -> None:
    await conn.execute(
        "INSERT INTO tool_policies (tenant_id, bot, connector_id, operation, mode, updated_by) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (tenant_id, bot, connector_id, operation) "
        "DO UPDATE SET mode = EXCLUDED.mode, updated_by = EXCLUDED.updated_by, updated_at = now()",
        (tenant_id, bot, connector_id, operation, mode, by))


async def policies(conn: Conn, bot: str | None) -> list[dict[str, Any]]:
    if bot:
        cur = await conn.execute("SELECT * FROM tool_policies WHERE bot = %s ORDER BY connector_id, operation",
                                 (bot,))
    else:
        cur = await conn.execute("SELECT * FROM tool_policies ORDER BY bot, connector_id, operation")
    return await cur.fetchall()


async def approval_for(conn: Conn, ticket_id: UUID, connector_id: str, operation: str,
                       arguments_hash: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT * FROM approvals WHERE ticket_id = %s AND connector_id = %s AND operation = %s "
        "AND arguments_hash = %s", (ticket_id, connector_id, operation, arguments_hash))
    return await cur.fetchone()


async def request_approval(conn: Conn, approval_id: UUID, tenant_id: UUID, ticket_id: UUID, bot: str,
                           connector_id: str, operation: str, arguments_hash: str,
                           arguments: dict[str, Any]) -> UUID:
    cur = await conn.execute(
        "INSERT INTO approvals (id, tenant_id, ticket_id, bot, connector_id, operation, arguments_hash, arguments, "
        "status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'pending') "
        "ON CONFLICT (tenant_id, ticket_id, connector_id, operation, arguments_hash) DO UPDATE SET status = "
        "approvals.status RETURNING id",
        (approval_id, tenant_id, ticket_id, bot, connector_id, operation, arguments_hash, Jsonb(arguments)))
    row = await cur.fetchone()
    assert row is not None
    return row["id"]  # type: ignore[no-any-return]


async def approvals(conn: Conn, status: str | None) -> list[dict[str, Any]]:
    return await _all(conn, ("SELECT * FROM approvals WHERE status = %s ORDER BY requested_at", (status,)) if status
                      else ("SELECT * FROM approvals ORDER BY requested_at", ()))


async def decide(conn: Conn, approval_id: UUID, status: str, by: UUID, reason: str | None) -> dict[str, Any] | None:
    cur = await conn.execute(
        "UPDATE approvals SET status = %s, decided_by = %s, decided_at = now(), reason = %s "
        "WHERE id = %s AND status = 'pending' RETURNING *", (status, by, reason, approval_id))
    return await cur.fetchone()


async def insert_grant(conn: Conn, grant_id: UUID, tenant_id: UUID, bot: str, ticket_id: UUID, connector_id: str,
                       operation: str, arguments_hash: str, approval_id: UUID | None,
                       expires_at: dt.datetime) -> None:
    await conn.execute(
        "INSERT INTO grants (id, tenant_id, bot, ticket_id, connector_id, operation, arguments_hash, approval_id, "
        "expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (grant_id, tenant_id, bot, ticket_id, connector_id, operation, arguments_hash, approval_id, expires_at))


async def redeem_grant(conn: Conn, grant_id: UUID) -> bool:
    """Atomically mark a live grant used; False when it was used already, expired or is not this tenant's."""
    cur = await conn.execute(
        "UPDATE grants SET redeemed_at = now() WHERE id = %s AND redeemed_at IS NULL AND expires_at > now() "
        "RETURNING id", (grant_id,))
    return await cur.fetchone() is not None


async def grant_outcome(conn: Conn, grant_id: UUID, outcome: str) -> None:
    await conn.execute("UPDATE grants SET outcome = %s WHERE id = %s", (outcome, grant_id))


async def grants(conn: Conn, ticket_id: UUID | None) -> list[dict[str, Any]]:
    return await _all(conn, ("SELECT * FROM grants WHERE ticket_id = %s ORDER BY issued_at", (ticket_id,)) if ticket_id
                      else ("SELECT * FROM grants ORDER BY issued_at DESC LIMIT 500", ()))


async def _all(conn: Conn, statement: Statement) -> list[dict[str, Any]]:
    cur = await conn.execute(*statement)
    return await cur.fetchall()


async def recent_decisions(conn: Conn, limit: int) -> list[dict[str, Any]]:
    """Tool-call approvals decided most recently, newest first."""
    return await _all(conn, ("SELECT * FROM approvals WHERE status <> 'pending' ORDER BY decided_at DESC NULLS LAST "
                             "LIMIT %s", (limit,)))
