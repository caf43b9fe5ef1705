"""API request and response models (pydantic at the edge)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from oshal.api.validation import exactly_one_of, one_given
from oshal.types import Role, TicketStatus


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TicketCreate(_In):
    """A ticket for one bot (``bot``) or one ticket type (``type``): exactly one of the two."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=exactly_one_of("bot", "type"))
    bot: str | None = Field(default=None, min_length=1, max_length=40,
                            description="Name of the bot that owns the work (or give a type).")
    type: str | None = Field(default=None, min_length=1, max_length=40,
                             description="A ticket type (workflow name); its workflow decides which bots work on it.")
    input: JsonValue = Field(default_factory=dict, description="Any JSON value; the bot's intent reads it.")
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200,
                                        description="Same key + same body returns the same ticket.")
    hold: bool = Field(default=False, description="Typed tickets: wait in backlog until an operator approves.")
    _addressed = one_given("bot", "type", 'give exactly one of "bot" (a bot name) or "type" (a workflow name)')


class TicketAction(_In):
    reason: str | None = Field(default=None, max_length=500, description="Why; recorded in the timeline.")


class TimelineEntry(BaseModel):
    at: dt.datetime
    from_status: str | None
    to_status: str
    phase: str | None
    actor: str
    reason: str | None


class Timeline(BaseModel):
    ticket_id: UUID
    events: list[TimelineEntry]
    phases: list[dict[str, Any]]
    run: dict[str, Any] | None
    artifacts: list[dict[str, Any]]


class TicketBatchCreate(_In):
    tickets: list[TicketCreate] = Field(min_length=1, max_length=10_000)


class TicketCreated(BaseModel):
    id: UUID
    status: TicketStatus
    created: bool


class TicketBatchCreated(BaseModel):
    tickets: list[TicketCreated]
    created: int
    existing: int


class TicketOut(BaseModel):
    id: UUID
    bot: str | None
    type: str | None = None
    status: TicketStatus
    phase: str | None = Field(default=None, description="The workflow step in progress (typed tickets).")
    status_reason: str | None = None
    parent_id: UUID | None = None
    input: Any
    result: Any = None
    error: str | None = None
    idempotency_key: str | None = None
    attempts: int
    deliveries: int | None = None
    consumer: str | None = None
    created_at: dt.datetime
    dispatched_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    duration_ms: float | None = None
    calls: int
    cost_micros: int
    cost_usd: str
    replay_of: UUID | None = Field(default=None, description="The ticket this one replays (offline, $0).")
    duplicates: int = Field(default=0, description="Successful executions beyond the first of a phase: they ran "
                            "(after a crash or a lost Redis) and their model calls are billed.")


class TicketWaited(TicketOut):
    created: bool


class TicketPage(BaseModel):
    items: list[TicketOut]
    next_cursor: UUID | None


class TenantCreate(_In):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")


class TenantOut(BaseModel):
    id: UUID
    name: str
    created_at: dt.datetime


class KeyCreate(_In):
    tenant: str | None = Field(default=None, description="Tenant id or name; default: the caller's tenant.")
    role: Role = Role.MEMBER
    name: str = Field(default="", max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class KeyOut(BaseModel):
    id: UUID
    tenant_id: UUID
    prefix: str
    role: Role
    name: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself. Shown once; store it now.")


class BotOut(BaseModel):
    name: str
    description: str
    harness: str
    provider: str
    model: str
    capabilities: list[str]
    lane: str
    status: Literal["online", "offline"]
    replicas: int
    replicas_desired: int
    concurrency: int
    pending: int
    lag: int
    kill_switch: str | None = Field(default=None, description="Why the bot is stopped, when a kill switch holds it.")


class LedgerEntry(BaseModel):
    call_id: str
    tenant_id: UUID
    ticket_id: UUID
    bot: str
    provider: str
    model: str
    attempt: int
    input_tokens: int
    output_tokens: int
    cached_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int = 0
    cost_micros: int = Field(description="What the call is charged: the provider's reported cost when there is one.")
    price_source: str
    computed_cost_micros: int | None = Field(default=None, description="What our effective price computes.")
    reported_cost_micros: int | None = Field(default=None, description="What the provider reported, if it did.")
    reservation_id: UUID | None = None
    created_at: dt.datetime


class LedgerPage(BaseModel):
    items: list[LedgerEntry]
    next_cursor: str | None


class LedgerSummaryRow(BaseModel):
    key: str
    calls: int
    input_tokens: int
    output_tokens: int
    cached_read_tokens: int
    cache_write_tokens: int
    cost_micros: int
    cost_usd: str


class LedgerSummary(BaseModel):
    by: str
    rows: list[LedgerSummaryRow]
    total_micros: int
    total_usd: str


def usd(micros: int) -> str:
    return f"{micros / 1_000_000:.6f}"


def ticket_out(row: dict[str, Any]) -> TicketOut:
    return TicketOut(**_ticket_fields(row))


def ticket_waited(row: dict[str, Any], created: bool) -> TicketWaited:
    """The ticket as :func:`ticket_out` shows it, and whether this request created it (validated once)."""
    return TicketWaited(**_ticket_fields(row), created=created)


def _ticket_fields(row: dict[str, Any]) -> dict[str, Any]:
    started, finished = row.get("started_at"), row.get("finished_at")
    created = row["created_at"]
    duration = (finished - created).total_seconds() * 1000 if finished else None
    cost = int(row.get("cost_micros") or 0)
    return dict(
        id=row["id"], bot=row["bot"], type=row.get("type"), status=row["status"], phase=row.get("phase"),
        status_reason=row.get("status_reason"), parent_id=row.get("parent_id"), input=row["input"],
        result=row.get("result"), error=row.get("error"), idempotency_key=row.get("idempotency_key"),
        attempts=row.get("attempt") or 0,
        deliveries=row.get("deliveries"), consumer=row.get("consumer"), created_at=created,
        dispatched_at=row.get("dispatched_at"), started_at=started, finished_at=finished,
        duration_ms=duration, calls=int(row.get("calls") or 0), cost_micros=cost, cost_usd=usd(cost),
        replay_of=row.get("replay_of"), duplicates=int(row.get("duplicates") or 0),
    )
