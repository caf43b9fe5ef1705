"""Advancing the daily roll-ups (ticket counts, ledger totals) a day per transaction, up to the last midnight (UTC)
that is more than an hour ago. The sweeper calls it hourly; a first run on an existing database catches up day by
day, each day's lock short."""

from __future__ import annotations

import datetime as dt

import psycopg

from oshal.logs import get_logger
from oshal.store import rollups as repo
from oshal.store.db import Database

log = get_logger(__name__)
_MAX_DAYS = 400  # per call of advance(): a year of catching up, then the next pass goes on


async def advance(db: Database, until: dt.datetime | None = None) -> dict[str, dt.datetime | None]:
    """Advance both roll-ups as far as ``until`` (default: now) allows; returns each one's cut-off. A roll-up whose
    table lock is not granted within its lock_timeout (a long transaction writing it) is left for the next call."""
    until = until or dt.datetime.now(dt.UTC)
    reached: dict[str, dt.datetime | None] = {}
    roll_ups: tuple[repo.RollUp, ...] = ("ticket_counts", "ledger_daily")
    for roll_up in roll_ups:
        previous: dt.datetime | None = None
        for _ in range(_MAX_DAYS):
            try:
                async with db.system() as conn:
                    cutoff = await repo.advance(conn, roll_up, until, 1)
            except psycopg.errors.LockNotAvailable:
                log.warning("roll-up not advanced: its table stayed locked by a long transaction", roll_up=roll_up,
                            hint="it is tried again on the sweeper's next hourly pass")
                cutoff = previous
                break
            if cutoff == previous:
                break
            previous = cutoff
        reached[roll_up] = previous
    return reached
