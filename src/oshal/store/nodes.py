"""Remote nodes: enrollment codes, the identity each one was redeemed for, and revocations.

Every function runs in the platform's scope (``Database.platform()``): the rows belong to the system tenant.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from oshal.store.db import Conn

_PUBLIC_COLUMNS = ("id, bot, label, code_expires_at, created_by, created_at, joined_at, joined_from, hostname, "
                   "revoked_at, revoked_by, last_seen_at")


async def insert_enrollment(conn: Conn, *, node_id: UUID, bot: str, label: str, code_digest: bytes,
                            expires_at: datetime, created_by: str) -> dict[str, Any]:
    """A new node awaiting its join; its tenant is the transaction's (the system tenant's)."""
    cur = await conn.execute(
        "INSERT INTO nodes (id, tenant_id, bot, label, code_digest, code_expires_at, created_by) "
        "VALUES (%s, current_setting('oshal.tenant_id')::uuid, %s, %s, %s, %s, %s) "
        f"RETURNING tenant_id, {_PUBLIC_COLUMNS}",
        (node_id, bot, label, code_digest, expires_at, created_by))
    row = await cur.fetchone()
    assert row is not None
    return row


async def by_code_for_update(conn: Conn, code_digest: bytes) -> dict[str, Any] | None:
    """The node a code was minted for, locked until the transaction ends (a second redeemer waits, then sees it
    joined)."""
    cur = await conn.execute(
        f"SELECT tenant_id, now() AS now, {_PUBLIC_COLUMNS} FROM nodes WHERE code_digest = %s FOR UPDATE",
        (code_digest,))
    return await cur.fetchone()


async def mark_joined(conn: Conn, node_id: UUID, *, token_digest: bytes, joined_from: str,
                      hostname: str) -> dict[str, Any]:
    cur = await conn.execute(
        "UPDATE nodes SET joined_at = now(), token_digest = %s, joined_from = %s, hostname = %s "
        f"WHERE id = %s AND joined_at IS NULL RETURNING tenant_id, {_PUBLIC_COLUMNS}",
        (token_digest, joined_from, hostname, node_id))
    row = await cur.fetchone()
    assert row is not None, "the node's row is locked by this transaction and was not joined"
    return row


async def by_id_for_update(conn: Conn, node_id: UUID) -> dict[str, Any] | None:
    cur = await conn.execute(f"SELECT tenant_id, {_PUBLIC_COLUMNS} FROM nodes WHERE id = %s FOR UPDATE",
                             (node_id,))
    return await cur.fetchone()


async def mark_revoked(conn: Conn, node_id: UUID, revoked_by: str) -> dict[str, Any]:
    cur = await conn.execute(
        "UPDATE nodes SET revoked_at = coalesce(revoked_at, now()), revoked_by = coalesce(revoked_by, %s) "
        f"WHERE id = %s RETURNING tenant_id, {_PUBLIC_COLUMNS}", (revoked_by, node_id))
    row = await cur.fetchone()
    assert row is not None
    return row


async def token_check(conn: Conn, node_id: UUID) -> dict[str, Any] | None:
    """What a gateway token of ``node_id`` is checked against: its digest, bot and whether it was revoked."""
    cur = await conn.execute("SELECT bot, token_digest, revoked_at FROM nodes WHERE id = %s AND joined_at IS NOT NULL",
                             (node_id,))
    return await cur.fetchone()


async def listing(conn: Conn, *, limit: int) -> list[dict[str, Any]]:
    cur = await conn.execute(
        f"SELECT now() AS now, {_PUBLIC_COLUMNS} FROM nodes ORDER BY created_at DESC, id LIMIT %s", (limit,))
    return await cur.fetchall()


async def active(conn: Conn) -> list[dict[str, Any]]:
    """Joined, not revoked: the nodes whose Redis users must exist."""
    cur = await conn.execute(
        "SELECT id, bot FROM nodes WHERE joined_at IS NOT NULL AND revoked_at IS NULL ORDER BY id")
    return await cur.fetchall()


async def mark_seen(conn: Conn, seen: Sequence[tuple[UUID, datetime]]) -> None:
    """Remember when each node's heartbeat was last observed (shown once it stops beating)."""
    if not seen:
        return
    await conn.execute(
        "UPDATE nodes AS n SET last_seen_at = s.at FROM unnest(%s::uuid[], %s::timestamptz[]) AS s (id, at) "
        "WHERE n.id = s.id AND (n.last_seen_at IS NULL OR n.last_seen_at < s.at)",
        ([node for node, _ in seen], [at for _, at in seen]))
