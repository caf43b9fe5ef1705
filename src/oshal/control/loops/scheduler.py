"""The loop that fires cron schedules; the schedules and their service are :mod:`oshal.control.schedules`.

Exactly one ticket per tick, across any number of control-plane replicas, rests on three things:

1. **The row lock.** Each due schedule is handled in one tenant transaction that first takes its row
   ``FOR UPDATE SKIP LOCKED``; a replica that finds the row locked skips it, and one that locks it after
   another replica committed sees the advanced ``last_tick`` and finds nothing due.
2. **The ticket's idempotency key** ``schedule:{id}:{tick}``. ``TicketService.create`` commits in its own
   transaction, so the ticket cannot share the schedule's transaction. It is created first instead, and
   the key makes any repeat of that create return the same ticket: at most one ticket per tick, ever.
3. **The fire row** (``schedule_fires``, primary key ``(schedule_id, tick)``) and the advanced
   ``last_tick``/``next_tick`` commit together with the schedule's transaction, after the ticket exists.

A crash between the ticket's commit and the schedule's commit leaves the ticket without its fire row and
``last_tick`` where it was. The next pass finds the same tick due again, finds the ticket by its key and
records the fire: nothing is lost and nothing fires twice.

Ticks are computed on the database's clock, so replicas with skewed clocks agree on what is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from datetime import UTC, datetime
from uuid import UUID

from oshal.control.schedules import Schedule
from oshal.control.tickets import TicketService
from oshal.errors import OshalError
from oshal.logs import get_logger
from oshal.store import schedules as repo
from oshal.store import tickets as ticket_repo
from oshal.store.db import Conn, Database
from oshal.workflows.cron import due_ticks, next_fire

__all__ = ["Scheduler", "tick_key"]

log = get_logger(__name__)


def tick_key(schedule_id: UUID, tick: datetime) -> str:
    """The idempotency key of the ticket a tick creates: the same tick always names the same ticket."""
    return f"schedule:{schedule_id}:{tick.astimezone(UTC).isoformat()}"


class Scheduler:
    """Fires due schedules every ``interval_s``; any number of instances may run against one database."""

    def __init__(self, db: Database, tickets: TicketService, *, interval_s: float, batch: int = 100,
                 instance: str | None = None) -> None:
        self.db = db
        self.tickets = tickets
        self.interval_s = interval_s
        self.batch = batch
        self.instance = instance or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._failing: dict[UUID, str] = {}  # schedule -> last error logged, so a broken one warns once

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("scheduler pass failed", instance=self.instance)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

    async def tick(self, now: datetime | None = None) -> int:
        """One pass over the due schedules; returns how many ticks this instance fired (one ticket each).

        ``now`` replaces the database clock for the tick arithmetic (tests); which schedules are due is
        still decided by the database's ``next_tick <= now()``.
        """
        async with self.db.platform() as conn:
            due = await repo.due(conn, self.batch)
        fired = 0
        for row in due:
            try:
                fired += await self._fire_schedule(row["tenant_id"], row["schedule_id"], now)
            except OshalError as e:
                self._report(row["schedule_id"], e)
            except Exception:
                log.exception("firing a schedule failed", schedule_id=str(row["schedule_id"]))
        return fired

    async def _fire_schedule(self, tenant: UUID, schedule_id: UUID, now: datetime | None) -> int:
        async with self.db.tenant(tenant) as conn:
            row = await repo.lock_due(conn, schedule_id)
            if row is None or not row["enabled"]:
                return 0  # another replica is firing it, or it was disabled after the due query
            schedule = Schedule.from_row(row)
            ticks, last_tick = due_ticks(schedule.cron, schedule.timezone, schedule.last_tick,
                                         now or row["db_now"], schedule.policy, schedule.created_at)
            fired = 0
            for tick in ticks:
                fired += await self._fire(conn, schedule, tick)
            if not ticks and last_tick != schedule.last_tick:
                log.info("schedule skipped missed ticks", schedule=schedule.name, tenant=str(tenant),
                         latest=last_tick.isoformat() if last_tick else None, policy=schedule.policy)
            next_tick = next_fire(schedule.cron, schedule.timezone, last_tick or schedule.created_at)
            await repo.update(conn, schedule.id, {"last_tick": last_tick, "next_tick": next_tick})
        self._failing.pop(schedule_id, None)
        return fired

    async def _fire(self, conn: Conn, schedule: Schedule, tick: datetime) -> int:
        ticket_id = await self._ticket_for(conn, schedule, tick_key(schedule.id, tick))
        recorded = await repo.insert_fire(conn, schedule_id=schedule.id, tick=tick, tenant_id=schedule.tenant_id,
                                          ticket_id=ticket_id, fired_by=self.instance)
        if recorded is None:
            log.info("schedule tick fired already", schedule=schedule.name, tick=tick.isoformat())
            return 0
        log.info("schedule fired", schedule=schedule.name, tenant=str(schedule.tenant_id), tick=tick.isoformat(),
                 ticket=str(ticket_id), instance=self.instance)
        return 1

    async def _ticket_for(self, conn: Conn, schedule: Schedule, key: str) -> UUID:
        # Looked up first: a pass that crashed after creating the ticket left it behind, and the schedule's
        # input may have been edited since, which the create would refuse as a different request.
        existing = await ticket_repo.by_idempotency_keys(conn, [key])
        if key in existing:
            return UUID(str(existing[key]["id"]))
        [created] = await self.tickets.create(schedule.tenant_id, schedule.created_by, [schedule.ticket_request(key)])
        return created.id

    def _report(self, schedule_id: UUID, error: OshalError) -> None:
        if self._failing.get(schedule_id) != error.message:
            log.warning("schedule cannot fire; retrying every pass", schedule_id=str(schedule_id),
                        error=error.message, hint=error.hint)
        self._failing[schedule_id] = error.message
