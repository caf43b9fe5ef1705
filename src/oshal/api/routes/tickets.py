"""/v1/tickets: create (single and batch), read, wait, stream events, list, timeline, and lifecycle actions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from oshal.api.deps import Caller, Db, Operator, Settings, TicketLifecycle, Tickets
from oshal.api.schemas import (
    TicketAction,
    TicketBatchCreate,
    TicketBatchCreated,
    TicketCreate,
    TicketCreated,
    TicketOut,
    TicketPage,
    TicketWaited,
    Timeline,
    ticket_out,
    ticket_waited,
)
from oshal.control.auth import Principal
from oshal.control.metrics import TICKETS_CREATED
from oshal.control.replay_diff import replay_diff
from oshal.control.ticket_actions import Lifecycle
from oshal.control.tickets import TicketRequest, TicketService
from oshal.errors import TooLarge
from oshal.types import TicketStatus
from oshal.workflows.states import OPERATOR_ACTIONS, Action

if TYPE_CHECKING:
    OperatorAction = Action
else:  # the {action} path parameter (and its schema in the OpenAPI document): the operators' part of Action
    OperatorAction = StrEnum("OperatorAction", {action.name: action.value for action in OPERATOR_ACTIONS})

router = APIRouter(prefix="/v1/tickets", tags=["tickets"])


def _json(model: BaseModel, status_code: int = 200) -> Response:
    """The models are built by us from typed rows; serializing once skips FastAPI's re-validation (hot path)."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


@router.post("", status_code=201, response_model=TicketCreated | TicketWaited)
async def create_ticket(
    body: TicketCreate, tickets: Tickets, settings: Settings, who: Caller,
    wait: Annotated[float, Query(ge=0, le=300, description="Also wait up to this many seconds for the result "
                                                         "and return the whole ticket")] = 0,
) -> Response:
    """Create a ticket for a bot. An idempotency key makes retries safe: same key, same ticket (200)."""
    request = TicketRequest(body.bot, body.input, body.idempotency_key, body.type, body.hold)
    result: BaseModel
    if wait > 0:
        created, row = await tickets.create_and_wait(who.tenant_id, who.key_id, request,
                                                     min(wait, settings.wait_max_s))
        result = ticket_waited(row, created.created)
    else:
        [created] = await tickets.create(who.tenant_id, who.key_id, [request])
        result = TicketCreated(id=created.id, status=TicketStatus(created.status), created=created.created)
    if created.created:
        TICKETS_CREATED.inc()
    return _json(result, 201 if created.created else 200)


@router.post("/batch", status_code=201, response_model=TicketBatchCreated)
async def create_batch(body: TicketBatchCreate, tickets: Tickets, settings: Settings,
                       who: Caller) -> TicketBatchCreated:
    """Create many tickets in one transaction (all or nothing); up to OSHAL_MAX_BATCH per call."""
    if len(body.tickets) > settings.max_batch:
        raise TooLarge(f"{len(body.tickets)} tickets in one batch; the limit is {settings.max_batch}",
                       hint="split the batch")
    created = await tickets.create(
        who.tenant_id, who.key_id,
        [TicketRequest(t.bot, t.input, t.idempotency_key, t.type, t.hold) for t in body.tickets])
    fresh = sum(1 for c in created if c.created)
    TICKETS_CREATED.inc(fresh)
    return TicketBatchCreated(
        tickets=[TicketCreated(id=c.id, status=TicketStatus(c.status), created=c.created) for c in created],
        created=fresh, existing=len(created) - fresh)


@router.get("", response_model=TicketPage)
async def list_tickets(
    tickets: Tickets, who: Caller,
    status: Annotated[TicketStatus | None, Query()] = None,
    bot: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Annotated[UUID | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> TicketPage:
    """Newest first, with cursor pagination."""
    rows, next_cursor = await tickets.list(who.tenant_id, status=status, bot=bot, cursor=cursor, limit=limit)
    return TicketPage(items=[ticket_out(r) for r in rows], next_cursor=next_cursor)


@router.get("/counts")
async def ticket_counts(tickets: Tickets, who: Caller) -> dict[str, int]:
    """How many of the caller's tickets are in each status."""
    counts = await tickets.counts(who.tenant_id)
    return {status.value: counts.get(status.value, 0) for status in TicketStatus}


@router.get("/{ticket_id}", response_model=TicketOut)
async def get_ticket(
    ticket_id: UUID, tickets: Tickets, settings: Settings, who: Caller,
    wait: Annotated[float, Query(ge=0, le=300, description="Block up to this many seconds for a terminal state")] = 0,
) -> Response:
    if wait > 0:
        row = await tickets.wait(who.tenant_id, ticket_id, min(wait, settings.wait_max_s))
    else:
        row = await tickets.get(who.tenant_id, ticket_id)
    return _json(ticket_out(row))


@router.get("/{ticket_id}/events", response_class=StreamingResponse, responses={200: {
    "description": "Server-sent events", "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
async def ticket_events(ticket_id: UUID, tickets: Tickets, who: Caller) -> StreamingResponse:
    """Server-sent events: the current state, then every change, ending at a terminal state."""
    await tickets.get(who.tenant_id, ticket_id)  # an unknown ticket is a 404 before the stream starts

    async def stream() -> AsyncIterator[bytes]:
        async for row in tickets.follow(who.tenant_id, ticket_id):
            yield b": keep-alive\n\n" if row is None else _sse(row)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _sse(row: dict[str, object]) -> bytes:
    body = ticket_out(row).model_dump_json()
    return f"event: {row['status']}\ndata: {body}\n\n".encode()


@router.post("/{ticket_id}/cancel", response_model=TicketOut)
async def cancel_ticket(ticket_id: UUID, tickets: Tickets, lifecycle: TicketLifecycle, who: Caller,
                        body: TicketAction | None = None) -> TicketOut:
    """Cancel a ticket that has not finished (its open work and child tickets too)."""
    return await _act(tickets, lifecycle, who, ticket_id, Action.CANCEL, body)


@router.post("/{ticket_id}/replay", status_code=201)
async def replay_ticket(ticket_id: UUID, tickets: Tickets, who: Caller) -> dict[str, Any]:
    """Re-run a finished ticket offline: recorded model and tool responses stand in for the providers and
    external APIs, so it spends nothing and touches nothing outside. Compare with GET .../replay-diff."""
    created = await tickets.replay(who.tenant_id, who.key_id, ticket_id)
    return {"id": str(created.id), "status": created.status, "replay_of": str(ticket_id)}


@router.get("/{ticket_id}/replay-diff")
async def diff_replay(ticket_id: UUID, db: Db, who: Caller) -> dict[str, Any]:
    """For a replay ticket: the calls whose requests differ from the original's, the results, and the spend."""
    return await replay_diff(db, who.tenant_id, ticket_id)


@router.post("/{ticket_id}/{action}", response_model=TicketOut)
async def act_on_ticket(ticket_id: UUID, action: OperatorAction, tickets: Tickets, lifecycle: TicketLifecycle,
                        who: Operator, body: TicketAction | None = None) -> TicketOut:
    """Operator actions: approve, reject, pause, resume, requeue, escalate, close. An action the ticket's
    state does not allow is a 409 that lists the actions it does allow."""
    return await _act(tickets, lifecycle, who, ticket_id, Action(action), body)


async def _act(tickets: TicketService, lifecycle: Lifecycle, who: Principal, ticket_id: UUID, action: Action,
               body: TicketAction | None) -> TicketOut:
    await lifecycle.act(who.tenant_id, ticket_id, action, actor=f"key:{who.key_id}",
                        reason=body.reason if body else None)
    return ticket_out(await tickets.get(who.tenant_id, ticket_id))


@router.get("/{ticket_id}/timeline", response_model=Timeline)
async def ticket_timeline(ticket_id: UUID, tickets: Tickets, who: Caller) -> Timeline:
    """Every transition (who, when, why), the phases dispatched, the workflow run and the artifacts."""
    return Timeline(**await tickets.timeline(who.tenant_id, ticket_id))


dead_letters = APIRouter(tags=["tickets"])


@dead_letters.get("/v1/dead-letters", response_model=TicketPage)
async def list_dead_letters(
    tickets: Tickets, who: Caller,
    bot: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Annotated[UUID | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> TicketPage:
    """Tickets in dead letter, with their last error; requeue with POST /v1/tickets/{id}/requeue."""
    rows, next_cursor = await tickets.list(who.tenant_id, status=TicketStatus.DEAD_LETTER, bot=bot,
                                           cursor=cursor, limit=limit)
    return TicketPage(items=[ticket_out(r) for r in rows], next_cursor=next_cursor)


__all__ = ["dead_letters", "router"]
