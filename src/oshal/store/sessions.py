"""Web console sessions: only a digest of each session token is stored (migration 016)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from oshal.store.db import Conn


async def open_session(conn: Conn, *, digest: bytes, tenant_id: UUID, key_id: UUID, expires_at: datetime) -> None:
    """Inside the tenant's transaction (RLS checks the row belongs to it)."""
    await conn.execute("INSERT INTO console_sessions (digest, tenant_id, key_id, expires_at) VALUES (%s, %s, %s, %s)",
                       (digest, tenant_id, key_id, expires_at))


async def session_check(conn: Conn, digest: bytes) -> dict[str, Any] | None:
    """The live session whose token has ``digest``, with its key's tenant, role and validity; None if there is none."""
    cur = await conn.execute("SELECT * FROM oshal_session_check(%s)", (digest,))
    return await cur.fetchone()


async def close_session(conn: Conn, digest: bytes) -> None:
    """Inside the session's tenant transaction."""
    await conn.execute("DELETE FROM console_sessions WHERE digest = %s", (digest,))


async def sweep_expired(conn: Conn, limit: int = 1000) -> int:
    cur = await conn.execute("SELECT oshal_session_sweep(%s) AS n", (limit,))
    row = await cur.fetchone()
    return int(row["n"]) if row else 0
