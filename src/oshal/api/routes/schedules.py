"""/v1/schedules: cron schedules that create tickets. Anyone in the tenant reads; operators change."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, model_validator
from pydantic_core import PydanticCustomError

from oshal.api.deps import Caller, Operator, Schedules
from oshal.api.validation import exactly_one_of, one_given
from oshal.control.schedules import UNCHANGED, Fire, Schedule, ScheduleChange, ScheduleSpec
from oshal.workflows.cron import describe_cron

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,79}$"
Policy = Literal["skip", "catch_up_once"]
_POLICY_HELP = ("What happens to ticks missed while no scheduler ran: 'skip' fires the latest only if it is at "
                "most a minute late, 'catch_up_once' fires it once however late.")


def _schedule_name(value: str) -> str:
    if not re.fullmatch(NAME_PATTERN, value):
        raise PydanticCustomError(
            "schedule_name", "a schedule name is 1 to 80 lowercase letters, digits and '-', starting with a "
            "letter or digit (e.g. nightly-report); got {value}", {"value": repr(value)})
    return value


ScheduleName = Annotated[str, AfterValidator(_schedule_name)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleCreate(_In):
    """Tickets for one ticket type (``type``) or one bot (``bot``): exactly one of the two."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=exactly_one_of("type", "bot"))

    name: ScheduleName = Field(json_schema_extra={"pattern": NAME_PATTERN},
                               description="Unique in the tenant; lowercase letters, digits and '-'.")
    cron: str = Field(min_length=1, max_length=200, examples=["*/5 * * * *", "0 9 * * 1-5", "@daily"],
                      description="Five cron fields (minute hour day-of-month month day-of-week) or an alias.")
    timezone: str = Field(default="UTC", min_length=1, max_length=64, examples=["Europe/Berlin"],
                          description="IANA time zone the cron fields are read in.")
    type: str | None = Field(default=None, min_length=1, max_length=40,
                             description="Ticket type (workflow name) of the tickets it creates; or give bot.")
    bot: str | None = Field(default=None, min_length=1, max_length=40,
                            description="Bot the tickets it creates go to; or give type.")
    input: JsonValue = Field(default_factory=dict, description="The input of every ticket it creates.")
    policy: Policy = Field(default="skip", description=_POLICY_HELP)
    _addressed = one_given("type", "bot", 'give exactly one of "type" (a ticket type) or "bot" (a bot name)')


class ScheduleUpdate(_In):
    """Only the fields given change (at least one). A schedule's name and target (type or bot) never change."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    cron: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    input: JsonValue = Field(default=None, description="Replaces the input of the tickets it creates.")
    policy: Policy | None = Field(default=None, description=_POLICY_HELP)
    enabled: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> ScheduleUpdate:
        if not self.model_fields_set:
            raise ValueError("nothing to change: give at least one of cron, timezone, input, policy, enabled")
        return self

    def change(self) -> ScheduleChange:
        return ScheduleChange(cron=self.cron, timezone=self.timezone, policy=self.policy, enabled=self.enabled,
                              input=self.input if "input" in self.model_fields_set else UNCHANGED)


class FireOut(BaseModel):
    tick: dt.datetime
    ticket_id: UUID
    fired_by: str = Field(description="The scheduler instance, or run:key:<id> for a run by hand.")
    fired_at: dt.datetime


class ScheduleOut(BaseModel):
    id: UUID
    name: str
    cron: str
    timezone: str
    summary: str = Field(description='The timetable in words, e.g. "every 5 minutes (UTC)".')
    type: str | None
    bot: str | None
    input: Any
    policy: Policy
    enabled: bool
    last_tick: dt.datetime | None = Field(description="The latest tick handled (fired or skipped).")
    next_tick: dt.datetime | None = Field(description="When it fires next; null while disabled.")
    created_by: UUID | None
    created_at: dt.datetime


class ScheduleDetail(ScheduleOut):
    fires: list[FireOut] = Field(description="The most recent fires, newest first.")


class RunOut(BaseModel):
    schedule: str
    ticket_id: UUID
    tick: dt.datetime = Field(description="When it was fired; recorded among the schedule's fires.")


def _out(schedule: Schedule) -> ScheduleOut:
    return ScheduleOut(
        id=schedule.id, name=schedule.name, cron=schedule.cron, timezone=schedule.timezone,
        summary=describe_cron(schedule.cron, schedule.timezone), type=schedule.ticket_type, bot=schedule.bot,
        input=schedule.input, policy=schedule.policy, enabled=schedule.enabled, last_tick=schedule.last_tick,
        next_tick=schedule.next_tick, created_by=schedule.created_by, created_at=schedule.created_at)


def _fire_out(fire: Fire) -> FireOut:
    return FireOut(tick=fire.tick, ticket_id=fire.ticket_id, fired_by=fire.fired_by, fired_at=fire.fired_at)


@router.post("", status_code=201, response_model=ScheduleOut)
async def create_schedule(body: ScheduleCreate, schedules: Schedules, who: Operator) -> ScheduleOut:
    """Create a schedule. The cron, time zone, and the type or bot are checked now, not at the first tick."""
    spec = ScheduleSpec(name=body.name, cron=body.cron, timezone=body.timezone, ticket_type=body.type,
                        bot=body.bot, input=body.input, policy=body.policy)
    return _out(await schedules.create(who.tenant_id, who.key_id, spec))


@router.get("", response_model=list[ScheduleOut])
async def list_schedules(schedules: Schedules, who: Caller) -> list[ScheduleOut]:
    """The tenant's schedules, by name."""
    return [_out(s) for s in await schedules.listing(who.tenant_id)]


@router.get("/{name}", response_model=ScheduleDetail)
async def show_schedule(name: str, schedules: Schedules, who: Caller) -> ScheduleDetail:
    """One schedule with its most recent fires."""
    schedule, fires = await schedules.show(who.tenant_id, name)
    return ScheduleDetail(**_out(schedule).model_dump(), fires=[_fire_out(f) for f in fires])


@router.patch("/{name}", response_model=ScheduleOut)
async def update_schedule(name: str, body: ScheduleUpdate, schedules: Schedules, who: Operator) -> ScheduleOut:
    """Change cron, time zone, input, policy or enabled. A new timetable starts from now: no catch-up."""
    return _out(await schedules.update(who.tenant_id, name, body.change()))


@router.post("/{name}/disable", response_model=ScheduleOut)
async def disable_schedule(name: str, schedules: Schedules, who: Operator) -> ScheduleOut:
    """Stop firing (schedules are never deleted; their fires stay on record)."""
    return _out(await schedules.disable(who.tenant_id, name))


@router.post("/{name}/enable", response_model=ScheduleOut)
async def enable_schedule(name: str, schedules: Schedules, who: Operator) -> ScheduleOut:
    """Fire again from the next tick on; ticks that passed while disabled are not owed."""
    return _out(await schedules.enable(who.tenant_id, name))


@router.post("/{name}/run", status_code=201, response_model=RunOut)
async def run_schedule(name: str, schedules: Schedules, who: Operator) -> RunOut:
    """Create the schedule's ticket now, outside its timetable (disabled schedules too)."""
    result = await schedules.run_now(who.tenant_id, who.key_id, name)
    return RunOut(schedule=name, ticket_id=result.ticket_id, tick=result.tick)
