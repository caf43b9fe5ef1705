"""Kill switches: which scopes (``global``, ``bot:NAME``) an operator has engaged."""

from __future__ import annotations

from typing import Any

from oshal.store.db import Conn


async def engaged_for_bot(conn: Conn, bot: str) -> dict[str, Any] | None:
    """The switch (scope, reason) that stops ``bot`` now, the global one first; None when none does."""
    cur = await conn.execute(
        "SELECT scope, reason FROM kill_switches WHERE scope IN ('global', 'bot:' || %s) ORDER BY scope LIMIT 1",
        (bot,))
    return await cur.fetchone()
