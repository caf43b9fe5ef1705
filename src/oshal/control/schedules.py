"""Cron schedules that create tickets: the schedule record and the API's service (create, read, edit, disable,
run by hand). The loop that fires them is :class:`oshal.control.loops.scheduler.Scheduler`."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from oshal import jsontext
from oshal.control.tickets import TicketRequest, TicketService
from oshal.errors import Conflict, Invalid, NotFound, TooLarge
from oshal.logs import get_logger
from oshal.store import schedules as repo
from oshal.store.db import Conn, Database
from oshal.types import new_id
from oshal.workflows.cron import MissedTickPolicy, next_fire, validate_cron

__all__ = ["UNCHANGED", "Fire", "Schedule", "ScheduleChange", "ScheduleService", "ScheduleSpec"]

log = get_logger(__name__)
UNCHANGED: Any = object()  # "not given" in a change: JSON null is a valid ticket input, so None cannot mean it


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule as stored: one field per column of ``schedules``."""

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

    def row(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def ticket_request(self, idempotency_key: str) -> TicketRequest:
        """The ticket the schedule creates, under the key that names this fire."""
        return TicketRequest(self.bot, self.input, idempotency_key, self.ticket_type)


@dataclass(frozen=True, slots=True)
class Fire:
    tick: datetime
    ticket_id: UUID
    fired_by: str
    fired_at: datetime


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """What a new schedule is asked to be; the service adds its identity and timetable."""

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
        new = Schedule(id=new_id(), tenant_id=tenant, name=spec.name, cron=spec.cron, timezone=spec.timezone,
                       ticket_type=spec.ticket_type, bot=spec.bot, input=spec.input, policy=spec.policy, enabled=True,
                       last_tick=None, next_tick=next_fire(spec.cron, spec.timezone, now), created_by=principal,
                       created_at=now)
        async with self.db.tenant(tenant) as conn:
            if spec.ticket_type is not None:
                await self._check_typed_input(conn, spec.ticket_type, spec.input)
            row = await repo.insert(conn, new.row())
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

    async def run_now(self, tenant: UUID, principal: UUID | None, name: str) -> Fire:
        """Fire once now, outside the timetable (a disabled schedule too); ``last_tick`` does not move."""
        now = datetime.now(UTC)
        async with self.db.tenant(tenant) as conn:
            schedule = await self._get(conn, name)
        # ":run:" keeps the key apart from every timetable tick's key, so a manual run never stands in for one.
        key = f"schedule:{schedule.id}:run:{now.isoformat()}"
        [created] = await self.tickets.create(tenant, principal, [schedule.ticket_request(key)])
        fired_by = f"run:key:{principal}" if principal else "run"
        async with self.db.tenant(tenant) as conn:
            row = await repo.insert_fire(conn, schedule_id=schedule.id, tick=now, tenant_id=tenant,
                                         ticket_id=created.id, fired_by=fired_by)
        log.info("schedule run by hand", schedule=name, tenant=str(tenant), ticket=str(created.id))
        # No row: a run at the very same instant recorded it first, with this same ticket (the same key).
        return Fire(**row) if row is not None else Fire(now, created.id, fired_by, now)

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
        size = len(jsontext.compact(value))
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
