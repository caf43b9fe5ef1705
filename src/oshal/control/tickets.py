"""The ticket service: the platform without HTTP. Create (commit, then dispatch), read, wait, cancel, requeue."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from oshal.control.bot_registry import BotRegistry
from oshal.control.events import EventHub
from oshal.errors import Conflict, Invalid, NotFound, TooLarge
from oshal.mesh.dispatcher import Dispatcher
from oshal.mesh.envelopes import Envelope
from oshal.store import tickets as repo
from oshal.store import workflows as workflow_repo
from oshal.store.db import Database
from oshal.types import TERMINAL_STATUSES, TicketStatus, new_id
from oshal.workflows.runner import Outcome, WorkflowRunner
from oshal.workflows.states import RESTING


@dataclass(frozen=True, slots=True)
class TicketRequest:
    bot: str | None
    input: Any
    idempotency_key: str | None = None
    type: str | None = None  # a workflow name: the run decides which bots work on it
    hold: bool = False  # typed tickets only: wait in backlog until an operator approves


@dataclass(frozen=True, slots=True)
class Created:
    id: UUID
    status: str
    created: bool  # False when an idempotency key returned an existing ticket


class TicketService:
    def __init__(self, db: Database, registry: BotRegistry, events: EventHub, dispatcher: Dispatcher,
                 runner: WorkflowRunner, *, max_input_bytes: int) -> None:
        self.runner = runner
        self.db = db
        self.registry = registry
        self.events = events
        self.dispatcher = dispatcher
        self.max_input_bytes = max_input_bytes

    async def create(self, tenant: UUID, principal: UUID | None, requests: Sequence[TicketRequest]) -> list[Created]:
        """Commit tickets and their dispatch records in one transaction, then append them to their lanes.

        A crash between the commit and the append loses nothing: the sweeper re-drives dispatched phases
        that make no progress.
        """
        if any(r.type is not None for r in requests):
            if any(r.type is None for r in requests):
                raise Invalid("a batch holds either typed tickets or bot tickets, not both",
                              hint="send the typed tickets and the bot tickets in two batches")
            gate = asyncio.Semaphore(4)  # each typed ticket is a transaction of its own; a few at a time

            async def one(n: int, request: TicketRequest) -> Created:
                async with gate:
                    return await self._create_typed(tenant, principal, request, n)

            return list(await asyncio.gather(*(one(n, r) for n, r in enumerate(requests))))
        created, envelopes = await self._commit(tenant, principal, requests)
        await self.dispatcher.send_committed(envelopes)
        return created

    async def create_and_wait(self, tenant: UUID, principal: UUID | None, request: TicketRequest,
                              timeout_s: float) -> tuple[Created, dict[str, Any]]:
        """Create one ticket and wait for it; the watch starts before dispatch, so no result can slip past."""
        if request.type is not None:
            ticket = new_id()
            async with self.events.watch(str(ticket)) as changes:
                created = await self._create_typed(tenant, principal, request, 0, ticket)
                if not created.created:
                    return created, await self.wait(tenant, created.id, timeout_s)
                row = await self.get(tenant, created.id)
                return created, await self._until_terminal(tenant, created.id, changes, timeout_s, row)
        [created], envelopes = await self._commit(tenant, principal, [request])
        if not created.created:
            return created, await self.wait(tenant, created.id, timeout_s)
        async with self.events.watch(str(created.id)) as changes:
            if token := self.events.token:  # the collector, wherever it runs, hands this process the finished row
                envelopes = [e.waited_in(token) for e in envelopes]
            await self.dispatcher.send_committed(envelopes)
            return created, await self._until_terminal(tenant, created.id, changes, timeout_s, None)

    def _body(self, n: int, value: Any) -> str:
        body = repo.dumps(value)
        if len(body) > self.max_input_bytes:
            raise TooLarge(
                f"ticket {n}: input is {len(body)} bytes; the limit is {self.max_input_bytes}",
                hint="send large payloads by reference, or raise OSHAL_MAX_INPUT_BYTES")
        return body

    async def _create_typed(self, tenant: UUID, principal: UUID | None, request: TicketRequest, n: int,
                            ticket: UUID | None = None, *, replay_of: UUID | None = None) -> Created:
        """A workflow ticket: the ticket, its run and its first steps in one transaction, then dispatch."""
        assert request.type is not None
        if request.bot is not None:
            raise Invalid(f"ticket {n}: give a bot or a type, not both",
                          hint="a type's workflow decides which bots work on the ticket")
        body = self._body(n, request.input)
        digest = _request_hash(f"type:{request.type}", request.input) if request.idempotency_key else None
        ticket = ticket or new_id()
        async with self.db.tenant(tenant) as conn:
            definition = await self.runner.definition(conn, request.type)
            problem = definition.input_problem(request.input)
            if problem is not None:
                raise Invalid(f"ticket {n}: {problem}", hint="the ticket type's input_schema says what the input "
                              f"must look like (oshal workflow show {definition.name})")
            status = TicketStatus.BACKLOG if request.hold else TicketStatus.IN_PROGRESS
            inserted = await workflow_repo.insert_ticket(
                conn, tenant, ticket, type_=definition.name, bot=None, input_json=body, status=status,
                by=principal, key=request.idempotency_key, request_hash=digest, replay_of=replay_of)
            if not inserted:
                assert request.idempotency_key is not None
                prior = (await repo.by_idempotency_keys(conn, [request.idempotency_key]))[request.idempotency_key]
                if bytes(prior["request_hash"] or b"") != digest:
                    raise Conflict(f"idempotency key {request.idempotency_key!r} was already used for a "
                                   "different request", hint="use a new key for a new request")
                return Created(prior["id"], str(prior["status"]), False)
            outcome = await self.runner.start_in(conn, tenant, ticket, definition, request.input,
                                                 hold=request.hold)
        await self.runner.deliver(outcome)
        return Created(ticket, _final_status(outcome, status), True)

    async def replay(self, tenant: UUID, principal: UUID | None, original: UUID) -> Created:
        """A new ticket that re-runs ``original`` with its recorded model and tool responses standing in for the
        providers and external APIs: the same steps, $0 spent, nothing external touched."""
        async with self.db.tenant(tenant) as conn:
            row = await repo.replay_source(conn, original)
        if row is None:
            raise NotFound(f"ticket {original} not found")
        if row["status"] not in REPLAYABLE:
            raise Conflict(f"ticket {original} is {row['status']}; only a finished ticket can be replayed",
                           hint="wait for its work to end (done, failed, escalated or waiting on the customer)")
        if row["parent_id"] is not None:
            raise Invalid(f"ticket {original} is part of workflow ticket {row['parent_id']}; replay that one")
        source = row["replay_of"] or original  # a replay of a replay answers from the first recordings
        if row["type"] is not None:
            return await self._create_typed(tenant, principal, TicketRequest(None, row["input"], type=row["type"]),
                                            0, replay_of=source)
        ticket, phase, bot = new_id(), new_id(), str(row["bot"])
        async with self.db.tenant(tenant) as conn:
            await workflow_repo.insert_ticket(conn, tenant, ticket, type_=None, bot=bot, input_json=repo.dumps(
                row["input"]), status=TicketStatus.IN_PROGRESS, by=principal, replay_of=source)
            await workflow_repo.insert_phases(conn, tenant, ticket, [(phase, 0, "", bot, None)])
        await self.dispatcher.send_committed([self.dispatcher.envelope(tenant, ticket, phase, bot, row["input"])])
        return Created(ticket, TicketStatus.IN_PROGRESS, True)

    async def _commit(self, tenant: UUID, principal: UUID | None,
                      requests: Sequence[TicketRequest]) -> tuple[list[Created], list[Envelope]]:
        if not requests:
            raise Invalid("no tickets given", hint="send at least one ticket")
        await self.registry.require({r.bot for r in requests if r.bot is not None})
        rows: list[repo.NewTicket] = []
        seen_keys: dict[str, bytes] = {}
        for n, request in enumerate(requests):
            if request.bot is None:
                raise Invalid(f"ticket {n}: give a bot or a type", hint='e.g. {"bot": "echo"} or {"type": "ticket"}')
            if request.hold:
                raise Invalid(f"ticket {n}: hold applies to typed (workflow) tickets only")
            body = self._body(n, request.input)
            key = request.idempotency_key
            digest = None
            if key is not None:  # the request hash only serves to compare idempotent retries
                digest = _request_hash(request.bot, request.input)
                if key in seen_keys and seen_keys[key] != digest:
                    raise Conflict(f"idempotency key {key!r} is used twice in this batch with different bodies")
                seen_keys[key] = digest
            rows.append(repo.NewTicket(new_id(), new_id(), request.bot, body, key, digest))

        inserted = {row["id"]: row["exhausted"]
                    for row in await self.db.call(repo.insert_dispatched(tenant, principal, rows))}
        existing: dict[str, dict[str, Any]] = {}
        if len(inserted) < len(rows):  # idempotency keys seen before: those tickets are committed already
            async with self.db.tenant(tenant) as conn:
                existing = await repo.by_idempotency_keys(
                    conn, [r.idempotency_key for r in rows if r.id not in inserted and r.idempotency_key])
        result: list[Created] = []
        envelopes: list[Envelope] = []
        for row, request in zip(rows, requests, strict=True):
            if row.id in inserted:
                if inserted[row.id] is not None:  # held: a budget above it is exhausted (resumes when raised)
                    result.append(Created(row.id, TicketStatus.PAUSED, True))
                    continue
                result.append(Created(row.id, TicketStatus.IN_PROGRESS, True))
                envelopes.append(self.dispatcher.envelope(tenant, row.id, row.phase_id, row.bot, request.input))
                continue
            assert row.idempotency_key is not None
            prior = existing[row.idempotency_key]
            if bytes(prior["request_hash"]) != row.request_hash:
                raise Conflict(
                    f"idempotency key {row.idempotency_key!r} was already used for a different request",
                    hint="use a new key for a new request; resend the same body to get the same ticket")
            result.append(Created(prior["id"], str(prior["status"]), False))
        return result, envelopes

    async def get(self, tenant: UUID, ticket_id: UUID) -> dict[str, Any]:
        rows = await self.db.call(repo.get(tenant, ticket_id))
        if not rows:
            raise NotFound(f"ticket {ticket_id} not found")
        return rows[0]

    async def wait(self, tenant: UUID, ticket_id: UUID, timeout_s: float) -> dict[str, Any]:
        """Return once the ticket rests (finished, or waiting for a person) or ``timeout_s`` passed.

        Woken by events, not polling.
        """
        async with self.events.watch(str(ticket_id)) as changes:
            row = await self.get(tenant, ticket_id)
            return await self._until_terminal(tenant, ticket_id, changes, timeout_s, row)

    async def follow(self, tenant: UUID, ticket_id: UUID,
                     keep_alive_s: float = 15.0) -> AsyncIterator[dict[str, Any] | None]:
        """The ticket now, then again on every change until it ends; None every ``keep_alive_s`` without a change
        (a server-sent-event stream's keep-alive)."""
        async with self.events.watch(str(ticket_id)) as changes:
            row = await self.get(tenant, ticket_id)
            yield row
            while row["status"] not in TERMINAL_STATUSES:  # resting states still change: keep following
                try:
                    await asyncio.wait_for(changes.get(), keep_alive_s)
                except TimeoutError:
                    yield None
                    continue
                row = await self.get(tenant, ticket_id)
                yield row

    async def _until_terminal(self, tenant: UUID, ticket_id: UUID, changes: asyncio.Queue[str], timeout_s: float,
                              row: dict[str, Any] | None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while row is None or row["status"] not in RESTING:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                status = await asyncio.wait_for(changes.get(), remaining)
            except TimeoutError:
                break
            if status in RESTING:
                row = self._handed_over(tenant, ticket_id, status) or await self.get(tenant, ticket_id)
        return row if row is not None else await self.get(tenant, ticket_id)

    def _handed_over(self, tenant: UUID, ticket_id: UUID, status: str) -> dict[str, Any] | None:
        """The row the collector read as it finished the ticket (handed to this process), if it is this tenant's
        ticket in the status just announced; else None, and the waiter reads the ticket itself."""
        row = self.events.finished_row(str(ticket_id))
        if row is None or row["tenant_id"] != tenant or row["id"] != ticket_id or row["status"] != status:
            return None
        return row

    async def list(self, tenant: UUID, *, status: str | None, bot: str | None, cursor: UUID | None,
                   limit: int) -> tuple[list[dict[str, Any]], UUID | None]:
        async with self.db.tenant(tenant) as conn:
            rows = await repo.page(conn, status=status, bot=bot, before=cursor, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1]["id"] if more else None)

    async def counts(self, tenant: UUID) -> dict[str, int]:
        async with self.db.tenant(tenant) as conn:
            return await repo.counts(conn)

    async def timeline(self, tenant: UUID, ticket_id: UUID) -> dict[str, Any]:
        async with self.db.tenant(tenant) as conn:
            if await repo.status(conn, ticket_id) is None:
                raise NotFound(f"ticket {ticket_id} not found")
            events = await workflow_repo.timeline(conn, ticket_id)
            phases = await workflow_repo.phases_of(conn, ticket_id)
            run = await workflow_repo.run(conn, ticket_id)
            artifacts = await workflow_repo.artifacts(conn, ticket_id)
        return {"ticket_id": ticket_id, "events": events, "phases": phases, "run": run,
                "artifacts": [{k: v for k, v in a.items() if k != "object_key"} for a in artifacts]}


# Its work has ended (the last two rest with a person, not with a bot).
REPLAYABLE = frozenset({TicketStatus.DONE, TicketStatus.FAILED, TicketStatus.DEAD_LETTER, TicketStatus.ESCALATED,
                         TicketStatus.CUSTOMER_ACTION})


def _request_hash(target: str, value: Any) -> bytes:
    return hashlib.sha256(f"{target}\x00{json.dumps(value, sort_keys=True)}".encode()).digest()


def _final_status(outcome: Outcome, status: str) -> str:
    return outcome.changes[-1][1] if outcome.changes else status

