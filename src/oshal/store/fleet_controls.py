"""Fleet-control SQL: operators' orders for the processes that run a bot (restart, replicas), and what was applied.

The API role writes orders; whatever runs the nodes reads them and records what it applied (see
``oshal.launcher.fleet_reconciler``, which does so as the owner).
"""

from __future__ import annotations

from typing import Any

from oshal.store.db import Conn

_COLUMNS = ("bot, replicas, restart_seq, reason, updated_by, updated_at, applied_seq, applied_replicas, applied_at, "
            "applied_note")


async def controls(conn: Conn) -> dict[str, dict[str, Any]]:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM fleet_controls")
    return {r["bot"]: r for r in await cur.fetchall()}


async def control(conn: Conn, bot: str) -> dict[str, Any] | None:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM fleet_controls WHERE bot = %s", (bot,))
    return await cur.fetchone()


async def order_restart(conn: Conn, bot: str, reason: str, by: str) -> dict[str, Any]:
    """One more restart asked of the bot's processes; the row with its new ``restart_seq``."""
    cur = await conn.execute(
        "INSERT INTO fleet_controls (bot, restart_seq, reason, updated_by) VALUES (%s, 1, %s, %s) "
        "ON CONFLICT (bot) DO UPDATE SET restart_seq = fleet_controls.restart_seq + 1, reason = EXCLUDED.reason, "
        f"updated_by = EXCLUDED.updated_by, updated_at = now() RETURNING {_COLUMNS}", (bot, reason, by))
    row = await cur.fetchone()
    assert row is not None
    return row


async def order_replicas(conn: Conn, bot: str, replicas: int | None, reason: str, by: str) -> dict[str, Any]:
    """The bot's desired replicas (None: back to its manifest's)."""
    cur = await conn.execute(
        "INSERT INTO fleet_controls (bot, replicas, reason, updated_by) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (bot) DO UPDATE SET replicas = EXCLUDED.replicas, reason = EXCLUDED.reason, "
        f"updated_by = EXCLUDED.updated_by, updated_at = now() RETURNING {_COLUMNS}", (bot, replicas, reason, by))
    row = await cur.fetchone()
    assert row is not None
    return row
