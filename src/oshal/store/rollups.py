"""The daily roll-ups of ticket counts and ledger totals: moving their cut-offs (definer functions, any scope)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from oshal.store.db import Conn

RollUp = Literal["ticket_counts", "ledger_daily"]
# '-infinity' (nothing rolled yet) reads as NULL: Python's datetime has no infinity.
_ADVANCE = {"ticket_counts": "SELECT nullif(oshal_advance_ticket_counts(%s, %s), '-infinity') AS cutoff",
            "ledger_daily": "SELECT nullif(oshal_advance_ledger_daily(%s, %s), '-infinity') AS cutoff"}


async def advance(conn: Conn, roll_up: RollUp, until: datetime, max_days: int) -> datetime | None:
    """Move ``roll_up``'s cut-off by at most ``max_days`` days towards the last midnight (UTC) before ``until`` (and
    an hour before now); returns the cut-off reached (None: nothing rolled yet)."""
    cur = await conn.execute(_ADVANCE[roll_up], (until, max_days))
    row = await cur.fetchone()
    assert row is not None
    cutoff: datetime | None = row["cutoff"]
    return cutoff


async def cutoffs(conn: Conn) -> dict[str, Any]:
    """Both cut-offs (None: nothing rolled yet) and when each last moved."""
    cur = await conn.execute(
        "SELECT nullif(tickets_before, '-infinity') AS tickets_before, nullif(ledger_before, '-infinity') AS "
        "ledger_before, tickets_advanced_at, ledger_advanced_at FROM rollup_cutoff")
    row = await cur.fetchone()
    assert row is not None
    return row
