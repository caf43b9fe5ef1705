"""Cron schedules that create tickets: the firing loop (:class:`Scheduler`) and the API's service.

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
import json
import os
import secrets
import socket
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from oshal.control.tickets import TicketRequest, TicketService
from oshal.errors import Conflict, Invalid, NotFound, OshalError, TooLarge
from oshal.logs import get_logger
from oshal.store import schedules as repo
from oshal.store import tickets as ticket_repo
from oshal.store.db import Conn, Database
from oshal.types import new_id
from oshal.workflows.cron import MissedTickPolicy, due_ticks, next_fire, validate_cron

__all__ = ["UNCHANGED", "Fire", "RunResult", "Schedule", "ScheduleChange", "ScheduleService", "ScheduleSpec",
           "Scheduler", "tick_key"]

log = get_logger(__name__)
UNCHANGED: Any = object()  # "not given" in a change: JSON null is a valid ticket input, so None cannot mean it


@dataclass(frozen=True, slots=True)
class Schedule:
    id: UUID
    tenant_id: UUID
    name: str
    cron: str
    timezone: str
    ticket_type: str | None
    bot: str | None
    input: Any
    policy: MissedTickPolicy
    enabled: bool
    last_tick: datetime | None  # the latest tick handled (fired or skipped); none at or before it fires again
    next_tick: datetime | None  # None while disabled
    created_by: UUID | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Schedule:
        return cls(**{f.name: row[f.name] for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class Fire:
    tick: datetime
    ticket_id: UUID
    fired_by: str
    fired_at: datetime


@dataclass(frozen=True, slots=True)
class RunResult:
    ticket_id: UUID
    tick: datetime


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    name: str
    cron: str
    timezone: str = "UTC"
    ticket_type: str | None = None
    bot: str | None = None
    input: Any = None
    policy: MissedTickPolicy = "skip"


@dataclass(frozen=True, slots=True)
class ScheduleChange:
    cron: str | None = None
    timezone: str | None = None
    policy: MissedTickPolicy | None = None
    enabled: bool | None = None
    input: Any = UNCHANGED


def tick_key(schedule_id: UUID, tick: datetime) -> str:
    """The idempotency key of the ticket a tick creates: the same tick always names the same ticket."""
    return f"schedule:{schedule_id}:{tick.astimezone(UTC).isoformat()}"


def _request(schedule: Schedule, key: str) -> TicketRequest:
    return TicketRequest(schedule.bot, schedule.input, key, schedule.ticket_type)


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
        if not recorded:
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
        [created] = await self.tickets.create(schedule.tenant_id, schedule.created_by, [_request(schedule, key)])
        return created.id

    def _report(self, schedule_id: UUID, error: OshalError) -> None:
        if self._failing.get(schedule_id) != error.message:
            log.warning("schedule cannot fire; retrying every pass", schedule_id=str(schedule_id),
                        error=error.message, hint=error.hint)
        self._failing[schedule_id] = error.message


class ScheduleService:
    """Create, read, edit, disable and run schedules: the platform without HTTP."""

    def __init__(self, db: Database, tickets: TicketService, *, fires_shown: int = 20) -> None:
        self.db = db
        self.tickets = tickets
        self.fires_shown = fires_shown

    async def create(self, tenant: UUID, principal: UUID | None, spec: ScheduleSpec) -> Schedule:
        validate_cron(spec.cron, spec.timezone)
        if (spec.ticket_type is None) == (spec.bot is None):
            raise Invalid("a schedule creates tickets for a ticket type or for a bot: give exactly one",
                          hint="e.g. --type incident, or --bot echo")
        self._check_size(spec.input)
        if spec.bot is not None:
            await self.tickets.registry.require({spec.bot})
        now = datetime.now(UTC)
        new = repo.NewSchedule(new_id(), tenant, spec.name, spec.cron, spec.timezone, spec.ticket_type, spec.bot,
                               spec.input, spec.policy, next_fire(spec.cron, spec.timezone, now), principal, now)
        async with self.db.tenant(tenant) as conn:
            if spec.ticket_type is not None:
                await self._check_typed_input(conn, spec.ticket_type, spec.input)
            row = await repo.insert(conn, new)
        if row is None:
            raise Conflict(f"a schedule named {spec.name!r} exists already",
                           hint="choose another name, or change the existing one (PATCH /v1/schedules/NAME)")
        log.info("schedule created", schedule=spec.name, tenant=str(tenant), cron=spec.cron, tz=spec.timezone)
        return Schedule.from_row(row)

    async def listing(self, tenant: UUID) -> list[Schedule]:
        async with self.db.tenant(tenant) as conn:
            return [Schedule.from_row(row) for row in await repo.listing(conn)]

    async def show(self, tenant: UUID, name: str) -> tuple[Schedule, list[Fire]]:
        """The schedule and its most recent fires, newest first."""
        async with self.db.tenant(tenant) as conn:
            schedule = await self._get(conn, name)
            fires = await repo.recent_fires(conn, schedule.id, self.fires_shown)
        return schedule, [Fire(**row) for row in fires]

    async def update(self, tenant: UUID, name: str, change: ScheduleChange) -> Schedule:
        """Apply ``change``. A new cron or time zone, and re-enabling, start the timetable afresh from now:
        ticks that passed under the old timetable, or while disabled, are not owed and never fire."""
        async with self.db.tenant(tenant) as conn:
            current = await self._get(conn, name, lock=True)
            columns = await self._columns(conn, current, change)
            if not columns:
                return current
            row = await repo.update(conn, current.id, columns)
        assert row is not None  # locked above, and schedules are never deleted
        log.info("schedule updated", schedule=name, tenant=str(tenant), changed=sorted(columns))
        return Schedule.from_row(row)

    async def disable(self, tenant: UUID, name: str) -> Schedule:
        return await self.update(tenant, name, ScheduleChange(enabled=False))

    async def enable(self, tenant: UUID, name: str) -> Schedule:
        return await self.update(tenant, name, ScheduleChange(enabled=True))

    async def run_now(self, tenant: UUID, principal: UUID | None, name: str) -> RunResult:
        """Fire once now, outside the timetable (a disabled schedule too); ``last_tick`` does not move."""
        now = datetime.now(UTC)
        async with self.db.tenant(tenant) as conn:
            schedule = await self._get(conn, name)
        # ":run:" keeps the key apart from every timetable tick's key, so a manual run never stands in for one.
        key = f"schedule:{schedule.id}:run:{now.isoformat()}"
        [created] = await self.tickets.create(tenant, principal, [_request(schedule, key)])
        async with self.db.tenant(tenant) as conn:
            await repo.insert_fire(conn, schedule_id=schedule.id, tick=now, tenant_id=tenant, ticket_id=created.id,
                                   fired_by=f"run:key:{principal}" if principal else "run")
        log.info("schedule run by hand", schedule=name, tenant=str(tenant), ticket=str(created.id))
        return RunResult(created.id, now)

    async def _get(self, conn: Conn, name: str, *, lock: bool = False) -> Schedule:
        row = await repo.by_name(conn, name, lock=lock)
        if row is None:
            raise NotFound(f"no schedule named {name!r}", hint="see the tenant's schedules: GET /v1/schedules "
                           "or `oshal schedule list`")
        return Schedule.from_row(row)

    async def _columns(self, conn: Conn, current: Schedule, change: ScheduleChange) -> dict[str, Any]:
        cron = change.cron if change.cron is not None else current.cron
        timezone = change.timezone if change.timezone is not None else current.timezone
        enabled = change.enabled if change.enabled is not None else current.enabled
        columns: dict[str, Any] = {}
        if change.cron is not None or change.timezone is not None:
            validate_cron(cron, timezone)
            columns.update(cron=cron, timezone=timezone)
        if change.input is not UNCHANGED:
            self._check_size(change.input)
            if current.ticket_type is not None:
                await self._check_typed_input(conn, current.ticket_type, change.input)
            columns["input"] = change.input
        if change.policy is not None:
            columns["policy"] = change.policy
        retimed = (cron, timezone) != (current.cron, current.timezone) or not current.enabled
        if not enabled:
            columns.update(enabled=False, next_tick=None)
        elif retimed:
            # Never backwards: a tick at or before the stored last_tick has been handled already.
            since = max(datetime.now(UTC), current.last_tick or datetime.min.replace(tzinfo=UTC))
            columns.update(enabled=True, last_tick=since, next_tick=next_fire(cron, timezone, since))
        return columns

    def _check_size(self, value: Any) -> None:
        size = len(json.dumps(value, separators=(",", ":")))
        if size > self.tickets.max_input_bytes:
            raise TooLarge(f"the schedule's input is {size} bytes; a ticket's input may be at most "
                           f"{self.tickets.max_input_bytes}", hint="pass large payloads by reference")

    async def _check_typed_input(self, conn: Conn, ticket_type: str, value: Any) -> None:
        """The type must exist and accept the input now, or every tick would fail later, unseen."""
        try:
            definition = await self.tickets.runner.definition(conn, ticket_type)
        except NotFound as e:
            raise Invalid(f"unknown ticket type {ticket_type!r}", hint=e.hint) from e
        problem = definition.input_problem(value)
        if problem is not None:
            raise Invalid(f"the input does not fit ticket type {ticket_type!r}: {problem}",
                          hint=f"the type's input_schema says what the input must look like "
                               f"(oshal workflow show {ticket_type})")
