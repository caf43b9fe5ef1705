"""Kill-switch SQL: which switches are engaged, engaging and releasing one, and the phases they held."""

from __future__ import annotations

from typing import Any

from oshal.store.db import Conn


async def engaged(conn: Conn) -> dict[str, dict[str, Any]]:
    """The engaged switches by scope (``global`` or ``bot:NAME``)."""
    cur = await conn.execute("SELECT scope, reason, engaged_by, engaged_at FROM kill_switches")
    return {r["scope"]: r for r in await cur.fetchall()}


async def engage(conn: Conn, scope: str, reason: str, by: str) -> dict[str, Any] | None:
    """The new switch's row, or None when ``scope`` is engaged already."""
    cur = await conn.execute(
        "INSERT INTO kill_switches (scope, reason, engaged_by) VALUES (%s, %s, %s) "
        "ON CONFLICT (scope) DO NOTHING RETURNING scope, reason, engaged_by, engaged_at",
        (scope, reason, by))
    return await cur.fetchone()


async def release(conn: Conn, scope: str) -> bool:
    """False when ``scope`` was not engaged."""
    cur = await conn.execute("DELETE FROM kill_switches WHERE scope = %s RETURNING scope", (scope,))
    return await cur.fetchone() is not None


async def held_phases(conn: Conn, limit: int) -> list[dict[str, Any]]:
    """Queued phases in every tenant that a switch held back (platform scope): tenant_id, phase_id, bot."""
    cur = await conn.execute("SELECT * FROM oshal_held_phases(%s)", (limit,))
    return await cur.fetchall()
